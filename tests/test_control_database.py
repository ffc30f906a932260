"""The control database: schema, append-only audit table, claims, one running per database."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import threading
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa

from service.secrets import Secret
from service.services import workers
from service.services.control import control_schema_behind, upgrade_control_schema
from service.services.health import Check, readiness
from service.services.registry import Registry
from service.settings import Settings
from service.store import operations as ops
from service.store import workers as store_workers
from service.store.db import ControlStore, utcnow
from service.store.tables import audit_events
from tests.helpers import MIGCTL, PostgresServer, fresh_control_url

LEASE = dt.timedelta(seconds=30)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)])
def store(request: pytest.FixtureRequest) -> Iterator[ControlStore]:
    if request.param == "sqlite":
        made = ControlStore(fresh_control_url())
    else:
        server: PostgresServer = request.getfixturevalue("postgres_server")
        made = ControlStore(server.create_database())
        upgrade_control_schema(made)
    yield made
    made.dispose()


def queued(database: str = "db", n: int = 1) -> dict[str, object]:
    return {
        "database": database,
        "action": "upgrade",
        "revision": f"heads-{n}",
        "target_revisions": [],
        "purge": False,
        "status": "queued",
        "actor": "test",
        "planned_steps": [],
        "requested_at": utcnow(),
    }


def enqueue(store: ControlStore, *databases: str) -> list[int]:
    with store.transaction() as connection:
        return [ops.insert(connection, queued(name, n)).id for n, name in enumerate(databases)]


def claim(store: ControlStore, worker: str) -> int | None:
    with store.transaction() as connection:
        record = ops.claim_next(connection, worker, utcnow(), LEASE)
    return None if record is None else record.id


def test_applying_the_schema_twice_is_harmless_and_leaves_it_current(store: ControlStore) -> None:
    upgrade_control_schema(store)
    assert control_schema_behind(store) is False


def test_a_database_runs_its_operations_one_at_a_time_and_in_order(store: ControlStore) -> None:
    first, second, other = enqueue(store, "db", "db", "other")
    assert claim(store, "w1") == first
    assert claim(store, "w2") == other  # db has a running operation: skip to the next database
    assert claim(store, "w3") is None
    with store.transaction() as connection:
        ops.transition(connection, first, from_status="running", to_status="succeeded")
    assert claim(store, "w3") == second


def test_the_index_refuses_a_second_running_operation_for_one_database(
    store: ControlStore,
) -> None:
    first, second = enqueue(store, "db", "db")
    assert claim(store, "w1") == first
    with pytest.raises(sa.exc.IntegrityError), store.transaction() as connection:
        ops.transition(connection, second, from_status="queued", to_status="running")


def test_concurrent_claimers_never_claim_an_operation_twice(store: ControlStore) -> None:
    enqueue(store, *(f"db{n}" for n in range(40)))
    claimed: list[int] = []

    def claimer(name: str) -> None:
        while (found := claim(store, name)) is not None:
            claimed.append(found)

    threads = [threading.Thread(target=claimer, args=(f"w{n}",)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(claimed) == sorted(set(claimed)) and len(claimed) == 40


def test_a_lost_lease_stops_the_heartbeat(store: ControlStore) -> None:
    (operation,) = enqueue(store, "db")
    assert claim(store, "w1") == operation
    with store.transaction() as connection:
        assert ops.heartbeat(connection, operation, "w1", utcnow(), LEASE)
        assert not ops.heartbeat(connection, operation, "someone-else", utcnow(), LEASE)
        later = utcnow() + dt.timedelta(minutes=5)
        assert [r.id for r in ops.expired(connection, later)] == [operation]


@pytest.mark.postgresql
def test_on_postgresql_the_audit_table_refuses_update_delete_and_truncate(
    postgres_server: PostgresServer,
) -> None:
    store = ControlStore(postgres_server.create_database())
    upgrade_control_schema(store)
    with store.transaction() as connection:
        connection.execute(
            audit_events.insert().values(
                occurred_at=utcnow(), actor="a", action="x", outcome="y", details={}
            )
        )
    for statement in (
        "UPDATE migctl_audit_events SET actor = 'b'",
        "DELETE FROM migctl_audit_events",
        "TRUNCATE migctl_audit_events",
    ):
        with pytest.raises(sa.exc.InternalError, match="append-only"), store.transaction() as c:
            c.execute(sa.text(statement))
    store.dispose()


def test_readiness_fails_while_the_control_schema_is_behind(
    tmp_path: object, make_settings: Callable[[str], Settings]
) -> None:
    empty = ControlStore(f"sqlite:///{tmp_path}/empty.db")
    ready = readiness(Registry(make_settings(empty.url)), empty)
    assert ready.status == "unavailable"
    assert ready.checks[0].code == "control-schema-behind"
    empty.dispose()


@pytest.fixture
def make_settings() -> Callable[[str], Settings]:
    return lambda url: Settings(databases=(), control_database_url=Secret(url))


def test_control_db_upgrade_creates_the_table_where_workers_record_themselves(
    make_database: Callable[[], str],
) -> None:
    url = make_database()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MIGCTL_")}
    result = subprocess.run(
        [MIGCTL, "control-db", "upgrade"],
        env={**environ, "MIGCTL_CONTROL_DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    engine = sa.create_engine(url)
    columns = {column["name"] for column in sa.inspect(engine).get_columns("migctl_workers")}
    engine.dispose()
    assert columns == {"id", "host", "pid", "started_at", "seen_at", "stopped_at"}


def worker_check(store: ControlStore, expected: bool) -> tuple[str, Check]:
    settings = Settings(databases=(), control_database_url=Secret(store.url))
    ready = readiness(Registry(settings), store, expect_worker=expected, poll_seconds=0.5)
    return ready.status, next(check for check in ready.checks if check.name == "worker")


def test_readiness_needs_a_worker_seen_lately_where_one_is_expected(
    store: ControlStore,
) -> None:
    status, check = worker_check(store, expected=True)
    assert (status, check.code) == ("unavailable", "worker-down")
    workers.worker_seen(store, "w1", "host-a", 101)
    status, check = worker_check(store, expected=True)
    assert status == "ready" and check.ok
    assert check.detail is not None and check.detail.startswith("1 alive")
    workers.worker_stopped(store, "w1")
    assert worker_check(store, expected=True)[0] == "unavailable"
    with store.transaction() as connection:  # a worker that stopped heartbeating 4 s ago
        store_workers.seen(connection, "w2", "host-a", 102, utcnow() - dt.timedelta(seconds=4))
    status, check = worker_check(store, expected=True)
    assert (status, check.code) == ("unavailable", "worker-down")
    assert check.detail is not None and "no worker seen within 3 s" in check.detail


def test_without_an_expected_worker_readiness_reports_workers_as_news_only(
    store: ControlStore,
) -> None:
    status, check = worker_check(store, expected=False)
    assert (status, check.ok, check.code) == ("ready", True, None)
    workers.worker_seen(store, "w1", "host-a", 101)
    workers.worker_process_ended(store, "host-a", 101)  # what serve's supervisor records
    status, check = worker_check(store, expected=False)
    assert status == "ready" and check.detail is not None and "stopped" in check.detail
