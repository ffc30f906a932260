"""Bounded locks: a step that waits longer than lock_timeout fails and names who blocked it."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.helpers import PostgresServer, alembic, client_for, first_token_lines, managed
from tests.projects import FIXTURES, write_project
from tests.test_operations import events, run_next

pytestmark = pytest.mark.postgresql

BLOCKING_QUERY = "SELECT count(*) FROM account /* the report that never ends */"


def test_a_step_waiting_past_lock_timeout_fails_naming_the_blocking_session_and_rolls_back(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    url = postgres_server.create_database()
    ini = write_project(
        tmp_path / "project",
        'op.create_table("invoice", sa.Column("id", sa.Integer, primary_key=True))',
        'op.add_column("account", sa.Column("age", sa.Integer))',
    )
    alembic(ini, url, "upgrade", "r0")
    client = client_for(managed("db", ini, url, lock_timeout="300ms", lint="off"))
    blocker = sa.create_engine(url).connect()
    try:
        blocker.execute(sa.text(BLOCKING_QUERY))  # its transaction stays open: ACCESS SHARE
        queued = client.post(
            "/api/v1/databases/db/operations", json={"action": "upgrade", "revision": "heads"}
        ).json
        assert run_next(client) == "failed"
        pid = blocker.execute(sa.text("SELECT pg_backend_pid()")).scalar()
    finally:
        blocker.close()
    ended = client.get(f"/api/v1/operations/{queued['id']}").json
    assert ended["error"]["code"] == "lock-timeout"
    assert ended["error"]["revision"] == "r2"
    assert f"pid {pid}" in ended["error"]["message"]
    assert "the report that never ends" in ended["error"]["message"]
    # One transaction for the whole upgrade (env.py's): nothing of it stays.
    assert ended["heads_after"] == ["r0"]
    assert first_token_lines(alembic(ini, url, "current")) == ["r0"]
    [failed] = [e for e in events(client, database="db") if e["action"] == "operation.failed"]
    [held] = failed["details"]["blockers"]
    assert held["pid"] == pid and held["state"] == "idle in transaction"
    assert held["query"] == BLOCKING_QUERY and held["mode"] == "AccessShareLock"
    assert held["query_start"]


def test_without_a_blocker_the_same_upgrade_runs_under_the_timeouts(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    url = postgres_server.create_database()
    ini = write_project(
        tmp_path / "project",
        'op.add_column("account", sa.Column("age", sa.Integer))',
    )
    alembic(ini, url, "upgrade", "r0")
    database = managed("db", ini, url, lock_timeout="300ms", statement_timeout="30s")
    client = client_for(database)
    queued = client.post(
        "/api/v1/databases/db/operations", json={"action": "upgrade", "revision": "heads"}
    ).json
    assert run_next(client) == "succeeded"
    step = client.get(f"/api/v1/operations/{queued['id']}").json["steps"][0]
    assert "lock_timeout" not in step["sql"]  # migctl's own SET belongs to no step
    assert first_token_lines(alembic(ini, url, "current")) == ["r1"]


def test_a_step_running_past_statement_timeout_fails_and_says_so(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    url = postgres_server.create_database()
    ini = write_project(tmp_path / "project", 'op.execute("SELECT pg_sleep(5)")')
    alembic(ini, url, "upgrade", "r0")
    client = client_for(managed("db", ini, url, statement_timeout="300ms"))
    queued = client.post(
        "/api/v1/databases/db/operations", json={"action": "upgrade", "revision": "heads"}
    ).json
    assert run_next(client) == "failed"
    error = client.get(f"/api/v1/operations/{queued['id']}").json["error"]
    assert error["code"] == "migration-failed" and error["revision"] == "r1"
    assert "statement timeout" in error["message"]


def test_with_a_transaction_per_revision_the_database_stays_at_the_last_completed_one(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    url = postgres_server.create_database()
    generic = (FIXTURES / "linear" / "migrations" / "env.py").read_text()
    per_revision = tmp_path / "env_per_revision.py"
    per_revision.write_text(
        generic.replace(
            "context.configure(connection=connection, target_metadata=target_metadata)",
            "context.configure(connection=connection, target_metadata=target_metadata, "
            "transaction_per_migration=True)",
        )
    )
    ini = write_project(
        tmp_path / "project",
        'op.create_table("invoice", sa.Column("id", sa.Integer, primary_key=True))',
        'op.add_column("account", sa.Column("age", sa.Integer))',
        env_py=per_revision,
    )
    alembic(ini, url, "upgrade", "r0")
    client = client_for(managed("db", ini, url, lock_timeout="300ms", lint="off"))
    blocker = sa.create_engine(url).connect()
    try:
        blocker.execute(sa.text(BLOCKING_QUERY))
        queued = client.post(
            "/api/v1/databases/db/operations", json={"action": "upgrade", "revision": "heads"}
        ).json
        assert run_next(client) == "failed"
    finally:
        blocker.close()
    ended = client.get(f"/api/v1/operations/{queued['id']}").json
    assert ended["error"]["code"] == "lock-timeout" and ended["error"]["revision"] == "r2"
    assert ended["heads_after"] == ["r1"]
    assert [s["outcome"] for s in ended["steps"]] == ["succeeded", "failed"]
