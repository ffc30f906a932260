"""Queued operations through the API, run in-process by the worker's use cases."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient

from service.api.app import create_app
from service.api.context import SERVICES
from service.services import execution
from service.worker import supervision
from service.worker.loop import Worker
from tests.helpers import alembic, client_for, first_token_lines, managed, settings_for
from tests.test_worker_processes import with_slow_revision

WORKER = "test-worker"


def post(client: FlaskClient, db: str = "db", headers: dict[str, str] | None = None, **body: Any):
    return client.post(f"/api/v1/databases/{db}/operations", json=body, headers=headers or {})


def run_next(client: FlaskClient) -> str:
    """What `migctl worker` does for one operation, in this process."""
    services = client.application.extensions[SERVICES]
    worker = Worker(services.settings, services)
    record = execution.claim_next(services.store, worker.worker_id, 30)
    assert record is not None, "nothing to claim"
    worker._run(record)
    ended = execution.load_operation(services.store, record.id)
    assert ended is not None
    return str(ended.status)


def operation(client: FlaskClient, operation_id: int) -> Any:
    response = client.get(f"/api/v1/operations/{operation_id}")
    assert response.status_code == 200
    return response.json


def events(client: FlaskClient, **query: Any) -> list[dict[str, Any]]:
    return client.get("/api/v1/audit-events", query_string=query).json


def current(ini: Path, url: str) -> list[str]:
    return sorted(first_token_lines(alembic(ini, url, "current")))


@pytest.fixture
def linear(project: Callable[[str], Path], database_url: str) -> tuple[FlaskClient, Path, str]:
    ini = project("linear")
    return client_for(managed("db", ini, database_url)), ini, database_url


def test_an_upgrade_is_queued_run_step_by_step_and_audited(
    linear: tuple[FlaskClient, Path, str],
) -> None:
    client, ini, url = linear
    response = post(client, action="upgrade", revision="heads", reason="release 42")
    assert response.status_code == 202
    queued = response.json
    assert response.headers["Location"] == f"/api/v1/operations/{queued['id']}"
    assert queued["status"] == "queued" and len(queued["planned_steps"]) == 4
    assert run_next(client) == "succeeded"
    done = operation(client, queued["id"])
    assert done["status"] == "succeeded" and done["heads_after"] == ["a4000004"]
    assert [step["revision"] for step in done["steps"]] == [
        "a1000001",
        "a2000002",
        "a3000003",
        "a4000004",
    ]
    assert all(step["statement_count"] >= 1 and step["sql"] for step in done["steps"])
    assert current(ini, url) == ["a4000004"]
    actions = [event["action"] for event in events(client, operation_id=queued["id"])]
    assert actions == ["operation.succeeded", "operation.started", "operation.requested"]


def test_an_upgrade_with_nothing_to_do_succeeds_with_zero_steps(
    linear: tuple[FlaskClient, Path, str],
) -> None:
    client, ini, url = linear
    alembic(ini, url, "upgrade", "heads")
    queued = post(client, action="upgrade", revision="heads").json
    assert queued["planned_steps"] == []
    assert run_next(client) == "succeeded"
    assert operation(client, queued["id"])["steps"] == []


def test_the_same_idempotency_key_and_body_give_back_the_same_operation(
    linear: tuple[FlaskClient, Path, str],
) -> None:
    client, _, _ = linear
    key = {"Idempotency-Key": "deploy-1234"}
    first = post(client, headers=key, action="upgrade", revision="heads")
    again = post(client, headers=key, action="upgrade", revision="heads")
    assert first.status_code == again.status_code == 202
    assert first.json["id"] == again.json["id"]
    other = post(client, headers=key, action="upgrade", revision="a2000002")
    assert other.status_code == 409 and other.json["code"] == "idempotency-key-reused"
    assert len(client.get("/api/v1/operations").json) == 1
    refused = events(client, action="operation.refused")
    assert refused[0]["details"]["code"] == "idempotency-key-reused"


def test_expected_current_is_checked_when_queued_and_again_under_the_lock(
    linear: tuple[FlaskClient, Path, str],
) -> None:
    client, ini, url = linear
    refused = post(client, action="upgrade", revision="heads", expected_current=["a2000002"])
    assert refused.status_code == 409 and refused.json["code"] == "precondition-failed"
    assert refused.json["current"] == []
    queued = post(client, action="upgrade", revision="heads", expected_current=[]).json
    alembic(ini, url, "upgrade", "a1000001")  # someone migrates in between
    assert run_next(client) == "failed"
    failed = operation(client, queued["id"])
    assert failed["error"]["code"] == "precondition-failed" and failed["steps"] == []
    assert current(ini, url) == ["a1000001"]


def test_a_queued_operation_can_be_cancelled_once_and_a_running_one_not(
    linear: tuple[FlaskClient, Path, str],
) -> None:
    client, _, _ = linear
    queued = post(client, action="upgrade", revision="heads").json
    cancelled = client.post(f"/api/v1/operations/{queued['id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json["status"] == "cancelled"
    again = client.post(f"/api/v1/operations/{queued['id']}/cancel")
    assert again.status_code == 409 and again.json["code"] == "operation-not-cancellable"
    assert again.json["operation_status"] == "cancelled"
    assert client.post("/api/v1/operations/999999/cancel").status_code == 404
    outcomes = [e["outcome"] for e in events(client, action="operation.cancelled")]
    assert outcomes == ["refused", "cancelled"]


def test_wait_returns_as_soon_as_the_operation_ends(
    linear: tuple[FlaskClient, Path, str],
) -> None:
    client, _, _ = linear
    queued = post(client, action="upgrade", revision="heads").json
    runner = threading.Timer(0.5, run_next, args=(client,))
    runner.start()
    started = time.monotonic()
    body = client.get(f"/api/v1/operations/{queued['id']}?wait=30").json
    runner.join()
    assert body["status"] == "succeeded" and time.monotonic() - started < 15
    assert client.get(f"/api/v1/operations/{queued['id']}?wait=61").status_code == 422


def test_a_downgrade_and_a_stamp_with_purge_leave_what_the_cli_reports(
    linear: tuple[FlaskClient, Path, str],
) -> None:
    client, ini, url = linear
    alembic(ini, url, "upgrade", "heads")
    post(client, action="downgrade", revision="-2")
    assert run_next(client) == "succeeded"
    assert current(ini, url) == ["a2000002"]
    stamp = post(client, action="stamp", revision="a4000004", purge=True)
    assert stamp.status_code == 202
    assert run_next(client) == "succeeded"
    assert current(ini, url) == ["a4000004"]
    assert post(client, action="upgrade", revision="heads", purge=True).status_code == 422


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"action": "upgrade", "revision": "zzzz9999"}, 404, "revision-not-found"),
        ({"action": "upgrade", "revision": "+9"}, 422, "invalid-relative-step"),
        ({"action": "downgrade", "revision": "a3000003"}, 422, "revision-unresolvable"),
        ({"action": "explode", "revision": "heads"}, 422, "validation-failed"),
        ({"action": "upgrade"}, 422, "validation-failed"),
        ({"action": "upgrade", "revision": "heads", "extra": 1}, 422, "validation-failed"),
    ],
)
def test_bad_requests_are_refused_with_a_problem_and_an_audit_event(
    linear: tuple[FlaskClient, Path, str], body: dict[str, Any], status: int, code: str
) -> None:
    client, _, _ = linear
    response = post(client, **body)
    assert (response.status_code, response.json["code"]) == (status, code)
    if code != "validation-failed":
        assert events(client, action="operation.refused")[0]["details"]["code"] == code


def test_a_relative_step_an_operation_cannot_walk_says_where_it_fails(
    linear: tuple[FlaskClient, Path, str],
) -> None:
    client, _, _ = linear
    response = post(client, action="upgrade", revision="+9")
    assert response.json["code"] == "invalid-relative-step"
    assert "walks past the head: only 4 revisions above base" in response.json["detail"]


def test_an_unknown_database_is_404_and_audited(linear: tuple[FlaskClient, Path, str]) -> None:
    client, _, _ = linear
    response = post(client, db="nope", action="upgrade", revision="heads")
    assert response.status_code == 404 and response.json["code"] == "database-not-found"
    assert events(client, database="nope")[0]["action"] == "operation.refused"


def test_a_relative_downgrade_from_several_heads_is_refused(
    project: Callable[[str], Path], database_url: str
) -> None:
    ini = project("two_heads")
    alembic(ini, database_url, "upgrade", "heads")
    client = client_for(managed("db", ini, database_url))
    response = post(client, action="downgrade", revision="-1")
    assert response.status_code == 409 and response.json["code"] == "multiple-heads"
    assert post(client, action="downgrade", revision="billing@-1").status_code == 202


FAILING = '''"""fails halfway
"""
import sqlalchemy as sa
from alembic import op

revision = "n4000004"
down_revision = "n3000003"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table("half_done", sa.Column("id", sa.Integer, primary_key=True))
    op.execute("INSERT INTO no_such_table VALUES (1)")


def downgrade():
    op.drop_table("half_done")
'''


def with_failing_revision(ini: Path, per_migration: bool) -> Path:
    (ini.parent / "migrations" / "versions" / "2026" / "n4000004_fails.py").write_text(FAILING)
    if per_migration:
        env_py = ini.parent / "migrations" / "env.py"
        env_py.write_text(
            env_py.read_text().replace(
                "context.configure(connection=connection, target_metadata=target_metadata)",
                "context.configure(connection=connection, target_metadata=target_metadata, "
                "transaction_per_migration=True)",
            )
        )
    return ini


@pytest.mark.parametrize("per_migration", [True, False])
def test_a_failing_revision_fails_the_operation_and_records_where_and_what(
    project: Callable[[str], Path], database_url: str, backend: str, per_migration: bool
) -> None:
    ini = with_failing_revision(project("nested_versions"), per_migration)  # env.py takes ours
    client = client_for(managed("db", ini, database_url))
    alembic(ini, database_url, "upgrade", "n1000001")
    queued = post(client, action="upgrade", revision="heads").json
    assert run_next(client) == "failed"
    failed = operation(client, queued["id"])
    assert failed["error"]["code"] == "migration-failed"
    assert failed["error"]["revision"] == "n4000004"
    assert "no_such_table" in failed["error"]["sql"]
    single_transaction = backend == "postgresql" and not per_migration
    expected = ["n1000001"] if single_transaction else ["n3000003"]
    assert current(ini, database_url) == expected == failed["heads_after"]
    outcomes = [step["outcome"] for step in failed["steps"]]
    earlier = ["rolled_back"] * 2 if single_transaction else ["succeeded"] * 2
    assert outcomes == [*earlier, "failed"]
    assert "half_done" not in sa.inspect(sa.create_engine(database_url)).get_table_names()
    failures = events(client, action="operation.failed")
    assert failures[0]["details"]["heads_after"] == expected


@pytest.mark.parametrize("per_migration", [True, False])
def test_the_failing_revisions_step_is_listed_as_failed_with_its_sql_after_the_earlier_steps(
    project: Callable[[str], Path], database_url: str, backend: str, per_migration: bool
) -> None:
    ini = with_failing_revision(project("nested_versions"), per_migration)
    client = client_for(managed("db", ini, database_url))
    alembic(ini, database_url, "upgrade", "n1000001")
    queued = post(client, action="upgrade", revision="heads").json
    assert run_next(client) == "failed"
    steps = operation(client, queued["id"])["steps"]
    assert [step["revision"] for step in steps] == ["n2000002", "n3000003", "n4000004"]
    failed = steps[-1]
    assert failed["outcome"] == "failed" and failed["position"] == 3
    assert "half_done" in failed["sql"] and "no_such_table" in failed["sql"]
    assert failed["statement_count"] == 2
    rolled_back = backend == "postgresql" and not per_migration
    earlier = "rolled_back" if rolled_back else "succeeded"
    assert [step["outcome"] for step in steps[:2]] == [earlier, earlier]


@pytest.mark.parametrize(
    ("env_py_tail", "message"),
    [("import sys\nsys.exit(3)\n", "SystemExit: 3"), ("import no_such_module_xyz\n", "No module")],
)
def test_a_broken_env_py_fails_the_operation_with_a_clear_message(
    linear: tuple[FlaskClient, Path, str], env_py_tail: str, message: str
) -> None:
    client, ini, _ = linear
    queued = post(client, action="upgrade", revision="heads").json
    env_py = ini.parent / "migrations" / "env.py"
    env_py.write_text(env_py_tail + env_py.read_text())
    assert run_next(client) == "failed"
    failed = operation(client, queued["id"])
    assert (
        failed["error"]["code"] == "project-unavailable" and message in failed["error"]["message"]
    )


def test_the_audit_log_pages_by_cursor_and_stays_stable_as_events_arrive(
    linear: tuple[FlaskClient, Path, str],
) -> None:
    client, _, _ = linear
    for _ in range(5):
        post(client, action="upgrade", revision="heads")
    first = client.get("/api/v1/audit-events?limit=2")
    assert len(first.json) == 2 and 'rel="next"' in first.headers["Link"]
    post(client, action="upgrade", revision="heads")  # a new event arrives meanwhile
    cursor = first.json[-1]["id"]
    second = client.get(f"/api/v1/audit-events?limit=2&before={cursor}").json
    assert [e["id"] for e in second] == [cursor - 1, cursor - 2]


def test_operations_are_listed_newest_first_with_filters(
    linear: tuple[FlaskClient, Path, str],
) -> None:
    client, _, _ = linear
    ids = [post(client, action="upgrade", revision="heads").json["id"] for _ in range(3)]
    client.post(f"/api/v1/operations/{ids[0]}/cancel")
    listed = client.get("/api/v1/databases/db/operations?status=queued").json
    assert [o["id"] for o in listed] == [ids[2], ids[1]]
    assert client.get("/api/v1/operations?status=cancelled").json[0]["id"] == ids[0]
    assert client.get("/api/v1/databases/nope/operations").status_code == 404


TRANSACTION_CONTROL = ("BEGIN", "COMMIT")
ROWS = re.compile(r"^-- executed for (\d+) rows$", re.MULTILINE)


def first_words(sql: str) -> list[str]:
    """Each statement's verb and object, once per row it ran for; no transaction control."""
    words = []
    for statement in (s.strip() for s in sql.split(";\n")):
        rows = ROWS.search(statement)
        code = [line for line in statement.splitlines() if line and not line.startswith("--")]
        verb = " ".join(" ".join(code).split()[:2]).upper()
        if verb and verb.split()[0] not in TRANSACTION_CONTROL:
            words += [verb] * (int(rows.group(1)) if rows else 1)
    return words


def decides_online_or_offline(ini: Path, revision: str) -> bool:
    """A revision that runs other SQL online than offline, on purpose (it reads data)."""
    versions = ini.parent / "migrations" / "versions"
    return "is_offline_mode" in next(versions.glob(f"{revision}*.py")).read_text()


@pytest.mark.parametrize("name", ["example", "branched"])
def test_a_steps_sql_and_count_match_the_preview_of_its_revision(
    project: Callable[[str], Path], database_url: str, name: str
) -> None:
    ini = project(name)
    client = client_for(managed("db", ini, database_url))
    preview = client.get("/api/v1/databases/db/sql", query_string={"from": "base"}).json
    post(client, action="upgrade", revision="heads")
    assert run_next(client) == "succeeded"
    steps = client.get("/api/v1/operations?page_size=1").json[0]
    done = operation(client, steps["id"])["steps"]
    assert [s["revision"] for s in done] == [s["revision"] for s in preview["revisions"]]
    for step, segment in zip(done, preview["revisions"], strict=True):
        assert step["statement_count"] == segment["statement_count"], step["revision"]
        assert not step["sql"].lstrip().upper().startswith("BEGIN"), step["revision"]
        if not decides_online_or_offline(ini, step["revision"]):
            assert first_words(step["sql"]) == first_words(segment["sql"]), step["revision"]


def test_every_event_of_an_operation_names_who_asked_and_the_worker_apart(
    linear: tuple[FlaskClient, Path, str],
) -> None:
    client, _ini, _url = linear
    headers = {"X-On-Behalf-Of": "alice (chat)"}
    queued = post(client, headers=headers, action="upgrade", revision="heads").json
    assert run_next(client) == "succeeded"
    trail = events(client, operation_id=queued["id"])
    assert [e["action"] for e in trail] == [
        "operation.succeeded",
        "operation.started",
        "operation.requested",
    ]
    assert {e["actor"] for e in trail} == {"anonymous"}
    assert {e["on_behalf_of"] for e in trail} == {"alice (chat)"}
    assert trail[-1]["worker"] is None
    assert trail[0]["worker"] is not None and trail[0]["worker"] == trail[1]["worker"]


def test_steps_a_job_reported_before_the_worker_stopped_it_are_recorded(
    project: Callable[[str], Path], database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(supervision, "BATCH_SECONDS", 60)  # held back until something else
    ini = with_slow_revision(project("linear"), 60)  # a5000005 sleeps past the grace period
    database = managed("db", ini, database_url)
    client = create_app(settings_for(database, shutdown_grace_seconds=0.5)).test_client()
    queued = post(client, action="upgrade", revision="heads").json
    services = client.application.extensions[SERVICES]
    worker = Worker(services.settings, services)
    record = execution.claim_next(services.store, worker.worker_id, 30)
    assert record is not None
    running = threading.Thread(target=worker._run, args=(record,))
    running.start()
    time.sleep(3)  # the four quick revisions ran; the slow one sleeps
    worker.stopping.set()
    running.join(30)

    done = operation(client, queued["id"])
    assert done["status"] == "interrupted"
    assert [step["revision"] for step in done["steps"]] == [
        "a1000001",
        "a2000002",
        "a3000003",
        "a4000004",
    ]
