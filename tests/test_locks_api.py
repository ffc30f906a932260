"""GET .../locks shows who holds the migration lock and what it waits for; release is guarded."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from service.runner.locks import ADVISORY_KEY, LEASE_TABLE, LOCK_NAME
from tests.helpers import PostgresServer, alembic, client_for, managed
from tests.projects import write_project
from tests.test_operations import run_next

pytestmark = pytest.mark.postgresql


@pytest.fixture
def url(tmp_path: Path, postgres_server: PostgresServer) -> str:
    return postgres_server.create_database()


def test_the_lock_holder_is_shown_with_the_table_lock_it_waits_for_and_who_blocks_it(
    tmp_path: Path, url: str
) -> None:
    ini = write_project(tmp_path / "project")
    alembic(ini, url, "upgrade", "r0")
    client = client_for(managed("db", ini, url))
    engine = sa.create_engine(url)
    holder, reader = engine.connect(), engine.connect()
    try:
        holder.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": ADVISORY_KEY})
        holder.commit()
        holder_pid = holder.execute(sa.text("SELECT pg_backend_pid()")).scalar()
        reader.execute(sa.text("SELECT count(*) FROM account /* a long report */"))
        reader_pid = reader.execute(sa.text("SELECT pg_backend_pid()")).scalar()
        migrating = threading.Thread(
            target=lambda: holder.execute(sa.text("ALTER TABLE account ADD COLUMN x integer"))
        )
        migrating.start()
        try:
            status = wait_until_waiting(client)
            assert status["kind"] == "advisory"
            assert status["holder"]["pid"] == holder_pid
            assert status["holder"]["query"].startswith("ALTER TABLE account")
            wanted = {"locktype": "relation", "relation": "account", "mode": "AccessExclusiveLock"}
            assert wanted in status["waiting_for"]
            [blocker] = status["blocked_by"]
            assert blocker["pid"] == reader_pid and blocker["state"] == "idle in transaction"
            refused = client.post("/api/v1/databases/db/locks/release")
            assert refused.status_code == 409 and refused.json["code"] == "lock-held"
        finally:
            reader.rollback()
            migrating.join(10)
    finally:
        holder.close()
        reader.close()
        engine.dispose()
    assert client.get("/api/v1/databases/db/locks").json["holder"] is None


def wait_until_waiting(client, attempts: int = 50) -> dict:
    for _ in range(attempts):
        status = client.get("/api/v1/databases/db/locks").json
        if status.get("waiting_for"):
            return status
        threading.Event().wait(0.1)
    raise AssertionError(f"the holder never waited: {status}")


def lease(url: str, interval: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                f"CREATE TABLE {LEASE_TABLE} (name VARCHAR(64) PRIMARY KEY, "
                "holder VARCHAR(255), expires_at TIMESTAMP WITH TIME ZONE)"
            )
        )
        connection.execute(
            sa.text(f"INSERT INTO {LEASE_TABLE} VALUES (:n, 'gone-host:41:7', now() + {interval})"),
            {"n": LOCK_NAME},
        )
    engine.dispose()


def test_an_expired_lease_is_released_by_an_admin_and_audited(tmp_path: Path, url: str) -> None:
    ini = write_project(tmp_path / "project")
    lease(url, "interval '-1 minute'")
    client = client_for(managed("db", ini, url, lock="table"))
    before = client.get("/api/v1/databases/db/locks").json
    assert before["lease"]["holder"] == "gone-host:41:7" and before["lease"]["expired"] is True
    answer = client.post("/api/v1/databases/db/locks/release")
    assert answer.status_code == 200, answer.json
    assert answer.json["lease"] is None
    [event] = client.get("/api/v1/audit-events", query_string={"action": "lock.released"}).json
    assert event["outcome"] == "released"
    assert event["details"]["lease"]["holder"] == "gone-host:41:7"


def test_a_live_lease_is_not_released(tmp_path: Path, url: str) -> None:
    ini = write_project(tmp_path / "project")
    lease(url, "interval '1 hour'")
    client = client_for(managed("db", ini, url, lock="table"))
    answer = client.post("/api/v1/databases/db/locks/release")
    assert answer.status_code == 409 and answer.json["code"] == "lock-held"
    assert answer.json["lease"]["holder"] == "gone-host:41:7"
    assert client.get("/api/v1/databases/db/locks").json["lease"]["expired"] is False


def test_a_secret_of_the_database_in_the_holders_query_is_redacted(
    tmp_path: Path, url: str
) -> None:
    ini = write_project(tmp_path / "project")
    client = client_for(managed("db", ini, url, env={"API_KEY": "k-8f2c-very-secret"}))
    engine = sa.create_engine(url)
    holder = engine.connect()
    try:
        holder.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": ADVISORY_KEY})
        holder.execute(sa.text("SELECT 1 /* k-8f2c-very-secret */"))
        answer = client.get("/api/v1/databases/db/locks")
    finally:
        holder.close()
        engine.dispose()
    assert answer.json["holder"]["query"] == "SELECT 1 /* *** */"
    assert "k-8f2c-very-secret" not in answer.get_data(as_text=True)


def test_while_an_operation_waits_for_a_table_the_locks_show_its_job_and_the_blocker(
    tmp_path: Path, url: str
) -> None:
    ini = write_project(
        tmp_path / "project", 'op.add_column("account", sa.Column("age", sa.Integer))'
    )
    alembic(ini, url, "upgrade", "r0")
    client = client_for(managed("db", ini, url, lock_timeout="20s", lint="off"))
    engine = sa.create_engine(url)
    reader = engine.connect()
    ended: list[str] = []
    try:
        reader.execute(sa.text("SELECT count(*) FROM account /* the nightly export */"))
        queued = client.post(
            "/api/v1/databases/db/operations", json={"action": "upgrade", "revision": "heads"}
        ).json
        running = threading.Thread(target=lambda: ended.append(run_next(client)))
        running.start()
        try:
            status = wait_until_waiting(client, attempts=200)
            assert status["operation"]["id"] == queued["id"]
            # The generic env.py migrates on a connection of its own, beside the lock's
            assert status["migrating"]["query"].startswith("ALTER TABLE account ADD COLUMN age")
            assert status["holder"]["pid"] != status["migrating"]["pid"]
            [blocker] = status["blocked_by"]
            assert blocker["query"] == "SELECT count(*) FROM account /* the nightly export */"
        finally:
            reader.rollback()
            running.join(60)
    finally:
        reader.close()
        engine.dispose()
    assert ended == ["succeeded"]
