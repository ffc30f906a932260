"""GET /metrics: who may read it, what the API observes, what the control database says, and
multiprocess mode across gunicorn workers and the worker process under `migctl serve`."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from pathlib import Path

from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from service.api.app import create_app
from service.api.context import SERVICES
from service.services import fleet
from service.services.access import Role
from service.services.tokens import new_token, token_entry
from tests.helpers import Processes, client_for, free_port, managed, settings_for, wait_for

STATUS_ROUTE = "/api/v1/databases/<dbname:db>/status"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(text: str, name: str, **labels: str) -> float | None:
    return samples(text).get((name, tuple(sorted(labels.items()))))


def scrape(client: FlaskClient) -> str:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain; version=0.0.4")
    return response.get_data(as_text=True)


def test_metrics_need_a_token_unless_metrics_are_public(
    project: Callable[[str], Path], tmp_path: Path
) -> None:
    token = new_token()
    tokens = tmp_path / "tokens.toml"
    tokens.write_text(token_entry("prometheus", Role.VIEWER, [], token))
    database = managed("db", project("linear"), f"sqlite:///{tmp_path / 'db.db'}")
    secured = create_app(settings_for(database, tokens_file=tokens)).test_client()
    assert secured.get("/metrics").status_code == 401
    allowed = secured.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert allowed.status_code == 200 and b"migctl_queue_depth" in allowed.data
    public = settings_for(database, tokens_file=tokens, metrics_public=True)
    assert create_app(public).test_client().get("/metrics").status_code == 200


def test_metrics_count_requests_by_route_template_and_report_queue_and_cached_states(
    project: Callable[[str], Path], tmp_path: Path
) -> None:
    client = client_for(managed("db", project("linear"), f"sqlite:///{tmp_path / 'db.db'}"))
    before = value(
        scrape(client), "migctl_http_requests_total", route=STATUS_ROUTE, method="GET", status="200"
    )
    for _ in range(3):
        assert client.get("/api/v1/databases/db/status").status_code == 200
    client.get("/no/such/path")
    services = client.application.extensions[SERVICES]
    fleet.refresh_states(services.registry, services.store, 60)
    queued = client.post(
        "/api/v1/databases/db/operations", json={"action": "upgrade", "revision": "heads"}
    )
    assert queued.status_code == 202

    text = scrape(client)

    after = value(
        text, "migctl_http_requests_total", route=STATUS_ROUTE, method="GET", status="200"
    )
    assert after == (before or 0) + 3
    assert value(text, "migctl_http_requests_total", route="unmatched", method="GET", status="404")
    assert value(
        text, "migctl_http_request_duration_seconds_count", route=STATUS_ROUTE, method="GET"
    )
    assert value(text, "migctl_queue_depth") == 1
    assert 0 <= (value(text, "migctl_queue_oldest_age_seconds") or -1) < 60
    assert value(text, "migctl_operations_running") == 0
    assert value(text, "migctl_database_pending_revisions", database="db") == 4
    assert value(text, "migctl_database_up_to_date", database="db") == 0


def _post(url: str, body: dict[str, object]) -> dict[str, object]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return dict(json.loads(response.read()))


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=60) as response:
        return str(response.read().decode())


def test_serve_merges_the_metrics_of_its_gunicorn_workers_and_of_its_worker_process(
    project: Callable[[str], Path],
    tmp_path: Path,
    processes: Callable[[dict[str, str]], Processes],
) -> None:
    group = processes(
        {
            "MIGCTL_DATABASE_URL": f"sqlite:///{tmp_path / 'app.db'}",
            "MIGCTL_ALEMBIC_CONFIG": str(project("linear")),
            "MIGCTL_CONTROL_DATABASE_URL": f"sqlite:///{tmp_path / 'control.db'}",
            "MIGCTL_STATE_REFRESH_SECONDS": "1",
        }
    )
    port = free_port()
    group.start("serve", "--bind", f"127.0.0.1:{port}", "--workers", "2")
    base = f"http://127.0.0.1:{port}"
    wait_for(f"{base}/health/live")
    for _ in range(20):
        _get(f"{base}/health/live")
    operation = _post(
        f"{base}/api/v1/databases/default/operations", {"action": "upgrade", "revision": "heads"}
    )
    ended = json.loads(_get(f"{base}/api/v1/operations/{operation['id']}?wait=50"))
    assert ended["status"] == "succeeded"

    text = _get(f"{base}/metrics")

    served = sum(
        v
        for (name, labels), v in samples(text).items()
        if name == "migctl_http_requests_total" and ("route", "/health/live") in labels
    )
    assert served >= 21
    succeeded = {"action": "upgrade", "status": "succeeded"}
    assert value(text, "migctl_operation_duration_seconds_count", **succeeded) == 1
    assert value(text, "migctl_step_duration_seconds_count", direction="upgrade") == 4
    assert value(text, "migctl_operations_total", database="default", **succeeded) == 1
    assert (value(text, "migctl_worker_heartbeat_age_seconds") or 99) < 10


def test_a_scoped_token_sees_only_its_databases_series(
    project: Callable[[str], Path], tmp_path: Path
) -> None:
    token = new_token()
    tokens = tmp_path / "tokens.toml"
    tokens.write_text(token_entry("team-a", Role.VIEWER, ["a"], token))
    ini = project("linear")
    databases = [managed(name, ini, f"sqlite:///{tmp_path / name}.db") for name in ("a", "b")]
    app = create_app(settings_for(*databases, tokens_file=tokens))
    services = app.extensions[SERVICES]
    fleet.refresh_states(services.registry, services.store, 60)
    response = app.test_client().get("/metrics", headers={"Authorization": f"Bearer {token}"})
    text = response.get_data(as_text=True)
    assert value(text, "migctl_database_pending_revisions", database="a") == 4
    assert value(text, "migctl_database_pending_revisions", database="b") is None
