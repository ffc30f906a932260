"""Rollouts through the API, advanced and run by an in-process worker."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient

from service.api.context import SERVICES
from service.api.resources.rollouts import TargetSchema, target_json
from service.services import execution, rollout_runs
from service.store import rollouts
from service.store.rollouts import TargetRecord
from service.worker.loop import Worker
from tests.helpers import client_for, managed

HEAD = "a4000004"


def fleet_client(ini: Path, urls: list[str]) -> FlaskClient:
    return client_for(
        *(
            managed(f"db{i}", ini, url, environment="staging", labels={"tier": "a" if i else "b"})
            for i, url in enumerate(urls)
        )
    )


def heads(url: str) -> list[str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            if not sa.inspect(connection).has_table("alembic_version"):
                return []
            return list(connection.execute(sa.text("SELECT version_num FROM alembic_version")))
    finally:
        engine.dispose()


def run_rollout(client: FlaskClient, rollout_id: int, concurrency: int = 4) -> dict[str, Any]:
    """What workers do, in this process, until the rollout ends; checks max_parallel meanwhile."""
    services = client.application.extensions[SERVICES]
    worker = Worker(services.settings, services, concurrency=concurrency)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        worker._rollouts_seen = 0.0
        worker._once()
        body = client.get(f"/api/v1/rollouts/{rollout_id}").json
        active = body["totals"].get("queued", 0) + body["totals"].get("running", 0)
        assert active <= body["max_parallel"]
        if body["status"] != "running" and not active:
            worker._join_running()
            return dict(client.get(f"/api/v1/rollouts/{rollout_id}").json)
        time.sleep(0.05)
    raise AssertionError("the rollout did not end")


def start(client: FlaskClient, headers: dict[str, str] | None = None, **body: Any) -> Any:
    values = {"action": "upgrade", "revision": "heads", "selector": {"environment": "staging"}}
    return client.post("/api/v1/rollouts", json={**values, **body}, headers=headers or {})


def test_a_rollout_upgrades_every_selected_database_once_canary_first_a_few_at_a_time(
    project: Callable[[str], Path], make_database: Callable[[], str]
) -> None:
    urls = [make_database() for _ in range(5)]
    client = fleet_client(project("linear"), urls)
    response = start(client, max_parallel=2, canary=1)
    assert response.status_code == 202, response.json
    assert response.headers["Location"].endswith(f"/rollouts/{response.json['id']}")
    assert response.json["totals"] == {"pending": 5}

    body = run_rollout(client, response.json["id"])

    assert body["status"] == "succeeded" and body["totals"] == {"succeeded": 5}
    assert body["eta_seconds"] == 0
    assert all(heads(url) == [(HEAD,)] for url in urls)
    operations = client.get("/api/v1/operations", query_string={"page_size": 100}).json
    assert sorted(op["database"] for op in operations) == [f"db{i}" for i in range(5)]
    assert {op["rollout_id"] for op in operations} == {body["id"]}
    canary = body["targets"][0]
    assert canary["canary"] and canary["database"] == "db0"
    assert all(t["started_at"] >= canary["finished_at"] for t in body["targets"][1:])
    actions = [e["action"] for e in client.get("/api/v1/audit-events").json]
    assert actions.count("operation.requested") == 5 and "rollout.finished" in actions


def test_a_failure_stops_the_rollout_and_the_databases_after_it_are_never_touched(
    project: Callable[[str], Path], make_database: Callable[[], str]
) -> None:
    urls = [make_database() for _ in range(4)]
    engine = sa.create_engine(urls[1])
    with engine.begin() as connection:  # its first migration creates this table: it fails
        connection.execute(sa.text("CREATE TABLE account (id INTEGER PRIMARY KEY)"))
    engine.dispose()
    client = fleet_client(project("linear"), urls)

    body = run_rollout(
        client, start(client, selector={"names": ["db0", "db1", "db2", "db3"]}).json["id"]
    )

    assert body["status"] == "failed"
    assert [t["state"] for t in body["targets"]] == ["succeeded", "failed", "skipped", "skipped"]
    assert heads(urls[2]) == [] and heads(urls[3]) == []
    why = "rollout failed after 1 failure(s) (db1), more than max_failures 0"
    failed = body["targets"][1]["problem"]
    assert failed["code"] == "migration-failed" and "account" in failed["detail"]
    assert body["targets"][3]["problem"] == {"code": "rollout-stopped", "detail": why}


def broken(url: str) -> None:
    """Its first migration creates this table: it fails there."""
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE account (id INTEGER PRIMARY KEY)"))
    engine.dispose()


def test_when_the_canary_fails_the_databases_never_queued_say_skipped_with_the_reason(
    project: Callable[[str], Path], make_database: Callable[[], str]
) -> None:
    urls = [make_database() for _ in range(3)]
    broken(urls[0])
    client = fleet_client(project("linear"), urls)

    body = run_rollout(client, start(client, canary=1, max_parallel=3).json["id"])

    assert body["status"] == "failed"
    assert body["totals"] == {"failed": 1, "skipped": 2}
    assert [t["state"] for t in body["targets"]] == ["failed", "skipped", "skipped"]
    reason = {"code": "rollout-stopped", "detail": "rollout failed at canary db0"}
    assert [t["problem"] for t in body["targets"][1:]] == [reason, reason]
    assert heads(urls[1]) == [] and heads(urls[2]) == []


def test_max_failures_lets_a_rollout_go_past_a_failure_and_end_failed(
    project: Callable[[str], Path], make_database: Callable[[], str]
) -> None:
    urls = [make_database() for _ in range(3)]
    engine = sa.create_engine(urls[0])
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE account (id INTEGER PRIMARY KEY)"))
    engine.dispose()
    client = fleet_client(project("linear"), urls)

    body = run_rollout(client, start(client, stop_on_failure=False, max_parallel=3).json["id"])

    assert body["status"] == "failed"
    assert body["totals"] == {"failed": 1, "succeeded": 2}


def test_a_paused_rollout_queues_nothing_until_resumed_and_a_cancelled_one_stays_cancelled(
    project: Callable[[str], Path], make_database: Callable[[], str]
) -> None:
    client = fleet_client(project("linear"), [make_database() for _ in range(2)])
    services = client.application.extensions[SERVICES]
    rollout_id = start(client).json["id"]

    assert client.post(f"/api/v1/rollouts/{rollout_id}/pause").json["status"] == "paused"
    assert rollout_runs.advance_all(services, "w", 30) == 0
    assert client.post(f"/api/v1/rollouts/{rollout_id}/resume").json["status"] == "running"
    assert rollout_runs.advance_all(services, "w", 30) == 1
    cancelled = client.post(f"/api/v1/rollouts/{rollout_id}/cancel").json
    assert cancelled["status"] == "cancelled"
    assert [t["state"] for t in cancelled["targets"]] == ["cancelled", "skipped"]
    assert cancelled["totals"] == {"cancelled": 1, "skipped": 1}
    skipped = cancelled["targets"][1]["problem"]
    assert skipped["code"] == "rollout-stopped"
    assert skipped["detail"].startswith("rollout cancelled by ")
    actions = [(e["action"], e["outcome"]) for e in client.get("/api/v1/audit-events").json]
    assert ("operation.cancelled", "cancelled") in actions
    assert ("rollout.cancelled", "accepted") in actions

    refused = client.post(f"/api/v1/rollouts/{rollout_id}/resume")
    assert refused.status_code == 409
    assert refused.json["code"] == "rollout-conflict"
    assert refused.json["rollout_status"] == "cancelled"


def test_the_same_idempotency_key_gives_the_same_rollout_and_another_body_is_refused(
    project: Callable[[str], Path], make_database: Callable[[], str]
) -> None:
    client = fleet_client(project("linear"), [make_database()])
    key = {"Idempotency-Key": "deploy-42"}
    first, again = start(client, headers=key), start(client, headers=key)
    assert first.status_code == again.status_code == 202
    assert first.json["id"] == again.json["id"]
    other = start(client, headers=key, max_parallel=3)
    assert other.status_code == 409 and other.json["code"] == "idempotency-key-reused"


@pytest.mark.parametrize(
    ("selector", "status", "code"),
    [
        ({"environment": "production"}, 422, "selection-empty"),
        ({"labels": ["tier=c"]}, 422, "selection-empty"),
        ({"names": ["nope"]}, 404, "database-not-found"),
    ],
)
def test_a_selector_that_picks_nothing_is_refused(
    project: Callable[[str], Path],
    make_database: Callable[[], str],
    selector: dict[str, Any],
    status: int,
    code: str,
) -> None:
    client = fleet_client(project("linear"), [make_database()])
    response = start(client, selector=selector)
    assert response.status_code == status and response.json["code"] == code


def test_labels_select_the_databases_of_a_rollout(
    project: Callable[[str], Path], make_database: Callable[[], str]
) -> None:
    client = fleet_client(project("linear"), [make_database() for _ in range(3)])
    body = start(client, selector={"labels": ["tier=a"]}).json
    assert [t["database"] for t in body["targets"]] == ["db1", "db2"]


def test_an_operation_interrupted_by_a_dead_worker_is_queued_again_only_where_ddl_is_transactional(
    project: Callable[[str], Path], make_database: Callable[[], str], backend: str
) -> None:
    urls = [make_database() for _ in range(2)]
    client = fleet_client(project("linear"), urls)
    services = client.application.extensions[SERVICES]
    rollout_id = start(client, max_parallel=2, stop_on_failure=False).json["id"]
    assert rollout_runs.advance_all(services, "w", 30) == 2
    claimed = execution.claim_next(services.store, "dead-worker", 30)
    assert claimed is not None
    execution.interrupt(services.registry, services.store, claimed, "its worker died")

    body = run_rollout(client, rollout_id)

    tried = client.get("/api/v1/operations", query_string={"database": claimed.database}).json
    target = next(t for t in body["targets"] if t["database"] == claimed.database)
    if backend == "postgresql":  # the open step rolled back: safe to queue again
        assert body["status"] == "succeeded" and body["totals"] == {"succeeded": 2}
        assert all(heads(url) == [(HEAD,)] for url in urls)
        assert [op["status"] for op in tried] == ["succeeded", "interrupted"]
        assert target["operation_id"] == tried[0]["id"]
    else:  # SQLite's DDL is not transactional: a step may be half done, a person must look
        assert body["status"] == "failed" and body["totals"] == {"interrupted": 1, "succeeded": 1}
        assert [op["status"] for op in tried] == ["interrupted"]


def test_an_operation_queued_while_its_rollout_was_being_cancelled_is_cancelled_too(
    project: Callable[[str], Path], make_database: Callable[[], str]
) -> None:
    client = fleet_client(project("linear"), [make_database()])
    services = client.application.extensions[SERVICES]
    rollout_id = start(client).json["id"]
    with services.store.transaction() as connection:  # what a worker read before the cancel
        record = rollouts.get(connection, rollout_id)
    assert record is not None
    assert client.post(f"/api/v1/rollouts/{rollout_id}/cancel").status_code == 200

    assert rollout_runs._launch(services, record, record.targets[0])

    body = client.get(f"/api/v1/rollouts/{rollout_id}").json
    assert body["status"] == "cancelled" and body["totals"] == {"cancelled": 1}


def test_a_database_whose_operation_is_refused_shows_the_refusal_as_its_problem(
    project: Callable[[str], Path], make_database: Callable[[], str]
) -> None:
    client = fleet_client(project("linear"), [make_database() for _ in range(2)])

    body = run_rollout(client, start(client, revision="ffffffff").json["id"])

    assert body["status"] == "failed" and body["totals"] == {"skipped": 2}
    refused, stopped = (t["problem"] for t in body["targets"])
    assert refused["code"] == "revision-not-found" and "ffffffff" in refused["detail"]
    assert stopped["code"] == "rollout-stopped"


def test_rollouts_are_listed_newest_first_a_page_at_a_time_and_filtered_by_status(
    project: Callable[[str], Path], make_database: Callable[[], str]
) -> None:
    client = fleet_client(project("linear"), [make_database() for _ in range(2)])
    first, second, third = (start(client, max_parallel=n).json["id"] for n in (1, 2, 3))
    client.post(f"/api/v1/rollouts/{second}/cancel")

    listed = client.get("/api/v1/rollouts")
    assert listed.status_code == 200
    assert [r["id"] for r in listed.json] == [third, second, first]
    assert listed.json[0]["totals"] == {"pending": 2} and "targets" not in listed.json[0]
    assert json.loads(listed.headers["X-Pagination"])["total"] == 3

    page = client.get("/api/v1/rollouts", query_string={"page": 2, "page_size": 2}).json
    assert [r["id"] for r in page] == [first]
    cancelled = client.get("/api/v1/rollouts", query_string={"status": "cancelled"}).json
    assert [(r["id"], r["status"]) for r in cancelled] == [(second, "cancelled")]
    wrong = client.get("/api/v1/rollouts", query_string={"status": "lost"})
    assert wrong.status_code == 422


def test_the_end_of_a_rollouts_operation_queues_its_next_database_at_once(
    project: Callable[[str], Path], make_database: Callable[[], str]
) -> None:
    client = fleet_client(project("linear"), [make_database() for _ in range(3)])
    rollout = start(client, max_parallel=1).json
    services = client.application.extensions[SERVICES]
    worker = Worker(services.settings, services, concurrency=1)
    worker._once()  # the loop's one look: queues db0 and runs it
    [running] = worker._running.values()
    running.join(60)  # no second look of the loop from here on

    body = client.get(f"/api/v1/rollouts/{rollout['id']}").json
    first, second, third = body["targets"]
    assert first["state"] == "succeeded"
    assert second["state"] == "queued" and second["operation_id"] is not None
    assert third["state"] == "pending"
    assert worker._free_slots() == 1  # and this worker may claim it


@pytest.mark.parametrize(
    "target",
    [
        TargetRecord(1, 0, "db0", True, None, None, None, None, None, None, None, None, 0),
        TargetRecord(
            2, 1, "db1", False, None, "rollout-stopped", "ended", None, None, None, None, None, 0
        ),
        TargetRecord(
            3,
            2,
            "db2",
            False,
            7,
            None,
            None,
            "failed",
            "migration-failed",
            "boom",
            dt.datetime(2026, 12, 2, 9, 0, tzinfo=dt.UTC),
            dt.datetime(2026, 12, 2, 9, 0, 1, 500, tzinfo=dt.UTC),
            2,
        ),
    ],
    ids=["pending", "skipped", "failed"],
)
def test_targets_are_served_exactly_as_their_documented_schema_says(target: TargetRecord) -> None:
    assert target_json(target) == TargetSchema().dump(target)
