"""MariaDB as a first-class backend: upgrade, downgrade, previews, GET_LOCK, committed DDL.

The project runs in the matrix venv that has PyMySQL (migctl's own venv has no MySQL driver,
so its reads of the version table go through the runner too). The test database is
throwaway, made and dropped with the `mysql` client on 127.0.0.1:3306 as root.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from service.api.app import create_app
from service.api.context import SERVICES
from service.services import execution
from service.worker.loop import Worker
from tests.helpers import alembic, first_token_lines, managed, settings_for
from tests.matrix import ENVIRONMENTS, Environment

MARIADB = ("127.0.0.1", "3306", "root")
ENVIRONMENT = next(e for e in ENVIRONMENTS if any(p.startswith("PyMySQL") for p in e.pins))


def sql(statement: str, database: str = "") -> list[list[str]]:
    """Run one statement with the mysql client; its rows, tab-separated fields split."""
    host, port, user = MARIADB
    result = subprocess.run(
        ["mysql", "-h", host, "-P", port, "-u", user, "-N", "-B", "-e", statement, database],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return [line.split("\t") for line in result.stdout.splitlines()]


def mariadb_reachable() -> bool:
    if shutil.which("mysql") is None:
        return False
    host, port, user = MARIADB
    ping = ["mysql", "-h", host, "-P", port, "-u", user, "-e", "SELECT 1"]
    return subprocess.run(ping, capture_output=True, timeout=30).returncode == 0


@pytest.fixture
def environment() -> Environment:
    if not ENVIRONMENT.ready or not mariadb_reachable():
        if os.environ.get("REQUIRE_MATRIX") == "1":
            pytest.fail(f"MariaDB at {MARIADB[0]}:{MARIADB[1]} and {ENVIRONMENT.name} are needed")
        pytest.skip("MariaDB or the matrix venv with PyMySQL is not there")
    return ENVIRONMENT


@pytest.fixture
def mariadb_url(environment: Environment) -> Iterator[str]:
    name = f"migctl_test_{uuid.uuid4().hex[:12]}"
    sql(f"CREATE DATABASE {name}")
    yield f"mysql+pymysql://root@127.0.0.1:3306/{name}"
    sql(f"DROP DATABASE IF EXISTS {name}")


def client_for(
    ini: Path, url: str, environment: Environment, lock_wait: float = 30, **extra: str
) -> FlaskClient:
    database = dataclasses.replace(
        managed("db", ini, url, **extra), python=(str(environment.interpreter),)
    )
    app = create_app(settings_for(database, job_start_timeout_seconds=lock_wait * 2))
    app.config["TESTING"] = True
    return app.test_client()


def post(client: FlaskClient, **body: str) -> int:
    response = client.post("/api/v1/databases/db/operations", json=body)
    assert response.status_code == 202, response.json
    return int(response.json["id"])


def run_next(client: FlaskClient) -> Any:
    """What `migctl worker` does for one operation, in this process; returns the operation."""
    services = client.application.extensions[SERVICES]
    worker = Worker(services.settings, services)
    record = execution.claim_next(services.store, worker.worker_id, 30)
    assert record is not None, "nothing to claim"
    worker._run(record)
    return client.get(f"/api/v1/operations/{record.id}").json


def schema(url: str) -> list[list[str]]:
    """Every column of every table, with its type and nullability, and the version rows."""
    database = url.rsplit("/", 1)[1]
    columns = sql(
        "SELECT table_name, column_name, column_type, is_nullable FROM information_schema.columns"
        f" WHERE table_schema = '{database}' ORDER BY table_name, ordinal_position"
    )
    return [*columns, *sql("SELECT version_num FROM alembic_version ORDER BY 1", database)]


def cli(environment: Environment, ini: Path, url: str, *args: str) -> str:
    return alembic(ini, url, *args, executable=str(environment.alembic))


def test_a_queued_upgrade_and_downgrade_on_mariadb_leave_what_the_cli_leaves(
    environment: Environment, project: Callable[[str], Path], mariadb_url: str
) -> None:
    ini = project("branched")
    by_cli = mariadb_url.rsplit("/", 1)[0] + f"/migctl_test_{uuid.uuid4().hex[:12]}"
    sql(f"CREATE DATABASE {by_cli.rsplit('/', 1)[1]}")
    try:
        client = client_for(ini, mariadb_url, environment)
        post(client, action="upgrade", revision="heads")
        assert run_next(client)["status"] == "succeeded"
        cli(environment, ini, by_cli, "upgrade", "heads")
        assert schema(mariadb_url) == schema(by_cli)
        status = client.get("/api/v1/databases/db/status").json
        assert status["up_to_date"] is True
        post(client, action="downgrade", revision="bx100001")
        done = run_next(client)
        cli(environment, ini, by_cli, "downgrade", "bx100001")
        assert schema(mariadb_url) == schema(by_cli)
        assert done["heads_after"] == sorted(
            first_token_lines(cli(environment, ini, by_cli, "current"))
        )
    finally:
        sql(f"DROP DATABASE IF EXISTS {by_cli.rsplit('/', 1)[1]}")


@pytest.mark.parametrize("action", ["upgrade", "downgrade"])
def test_a_preview_with_dialect_mysql_is_the_venvs_alembic_sql(
    environment: Environment, project: Callable[[str], Path], mariadb_url: str, action: str
) -> None:
    ini = project("branched")
    client = client_for(ini, mariadb_url, environment)
    span = {"from": "base", "to": "heads"} if action == "upgrade" else {"from": "heads"}
    query = {"action": action, "dialect": "mysql", "to": "base", **span}
    response = client.get("/api/v1/databases/db/sql", query_string=query)
    assert response.status_code == 200, response.json
    cli_range = "heads" if action == "upgrade" else "heads:base"
    expected = cli(environment, ini, "mysql://", action, cli_range, "--sql")
    assert response.json["sql"] == expected
    assert ("CREATE TABLE" if action == "upgrade" else "DROP TABLE") in expected


def with_revision(ini: Path, body: str) -> Path:
    """The linear project plus a revision a5000005 whose upgrade is `body`."""
    (ini.parent / "migrations" / "versions" / "a5000005_extra.py").write_text(
        "import sqlalchemy as sa\nfrom alembic import op\n\n"
        'revision = "a5000005"\ndown_revision = "a4000004"\n'
        "branch_labels = None\ndepends_on = None\n\n\n"
        f"def upgrade():\n{body}\n\n\ndef downgrade():\n    pass\n"
    )
    return ini


LOCK = "'migctl:migration'"


def test_a_job_holds_get_lock_while_it_migrates_and_releases_it_after(
    environment: Environment, project: Callable[[str], Path], mariadb_url: str
) -> None:
    seen = f'    op.execute("CREATE TABLE lock_seen AS SELECT IS_USED_LOCK({LOCK}) AS holder")'
    client = client_for(with_revision(project("linear"), seen), mariadb_url, environment)
    post(client, action="upgrade", revision="heads")
    assert run_next(client)["status"] == "succeeded"
    database = mariadb_url.rsplit("/", 1)[1]
    assert sql("SELECT holder IS NOT NULL FROM lock_seen", database) == [["1"]]
    assert sql(f"SELECT IS_FREE_LOCK({LOCK})") == [["1"]]


def test_a_job_waits_for_get_lock_held_elsewhere_then_fails_as_database_locked(
    environment: Environment, project: Callable[[str], Path], mariadb_url: str
) -> None:
    host, port, user = MARIADB
    holder = subprocess.Popen(
        [
            "mysql",
            "-h",
            host,
            "-P",
            port,
            "-u",
            user,
            "-N",
            "-B",
            "-e",
            f"SELECT GET_LOCK({LOCK}, 0); SELECT SLEEP(20)",
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while sql(f"SELECT IS_FREE_LOCK({LOCK})") != [["0"]]:
            assert time.monotonic() < deadline, "the other session never took the lock"
            time.sleep(0.1)
        client = client_for(project("linear"), mariadb_url, environment, lock_wait=1)
        post(client, action="upgrade", revision="heads")
        failed = run_next(client)
        assert failed["status"] == "failed" and failed["error"]["code"] == "database-locked"
        assert "GET_LOCK('migctl:migration')" in failed["error"]["message"]
    finally:
        holder.kill()
        holder.wait()
    deadline = time.monotonic() + 10
    while sql(f"SELECT IS_FREE_LOCK({LOCK})") != [["1"]]:
        assert time.monotonic() < deadline, "the killed session kept the lock"
        time.sleep(0.1)
    post(client, action="upgrade", revision="heads")
    assert run_next(client)["status"] == "succeeded"


def test_a_failed_step_on_mariadb_names_the_statements_that_had_already_committed(
    environment: Environment, project: Callable[[str], Path], mariadb_url: str
) -> None:
    body = (
        '    op.create_table("half_done", sa.Column("id", sa.Integer, primary_key=True))\n'
        '    op.execute("INSERT INTO half_done VALUES (1)")\n'
        '    op.execute("INSERT INTO no_such_table VALUES (1)")'
    )
    client = client_for(with_revision(project("linear"), body), mariadb_url, environment)
    post(client, action="upgrade", revision="heads")
    failed = run_next(client)
    assert failed["status"] == "failed" and failed["error"]["revision"] == "a5000005"
    message = failed["error"]["message"]
    assert "no_such_table" in message
    already = message.split("Already committed by the failed step", 1)[1]
    assert "CREATE TABLE half_done" in already and "INSERT" not in already
    events = client.get("/api/v1/audit-events", query_string={"action": "operation.failed"}).json
    committed = events[0]["details"]["committed_statements"]
    assert [statement.split("(")[0].strip() for statement in committed] == [
        "CREATE TABLE half_done"
    ]
    database = mariadb_url.rsplit("/", 1)[1]
    assert sql("SHOW TABLES LIKE 'half_done'", database) == [["half_done"]]
    assert sql("SELECT COUNT(*) FROM half_done", database) == [["0"]]  # its INSERT rolled back
    assert failed["heads_after"] == ["a4000004"]


@pytest.mark.parametrize(
    ("failing", "committed", "rows"),
    [
        # A DDL statement commits what came before it, even when it fails itself.
        ("ALTER TABLE no_such_table ADD COLUMN x INT", ["INSERT INTO account"], "1"),
        ("INSERT INTO no_such_table VALUES (1)", [], "0"),  # nothing but DML: all rolled back
    ],
)
def test_dml_before_a_failing_statement_is_committed_only_when_that_statement_is_ddl(
    environment: Environment,
    project: Callable[[str], Path],
    mariadb_url: str,
    failing: str,
    committed: list[str],
    rows: str,
) -> None:
    body = "    op.execute(\"INSERT INTO account (id, name) VALUES (1, 'x')\")\n"
    body += f'    op.execute("{failing}")'
    client = client_for(with_revision(project("linear"), body), mariadb_url, environment)
    post(client, action="upgrade", revision="heads")
    failed = run_next(client)
    assert failed["status"] == "failed" and failed["error"]["revision"] == "a5000005"
    events = client.get("/api/v1/audit-events", query_string={"action": "operation.failed"}).json
    listed = events[0]["details"]["committed_statements"]
    assert [statement.split(" (")[0] for statement in listed] == committed
    if not committed:
        assert "None of the failed step's statements had committed" in failed["error"]["message"]
    database = mariadb_url.rsplit("/", 1)[1]
    assert sql("SELECT COUNT(*) FROM account", database) == [[rows]]


REPORT = "SELECT 'the report that never ends', SLEEP(30)"


def test_a_step_waiting_past_lock_timeout_on_mariadb_fails_naming_the_session_holding_the_table(
    environment: Environment, project: Callable[[str], Path], mariadb_url: str
) -> None:
    ini = with_revision(
        project("linear"), '    op.add_column("account", sa.Column("age", sa.Integer))'
    )
    cli(environment, ini, mariadb_url, "upgrade", "a3000003")
    database = mariadb_url.rsplit("/", 1)[1]
    host, port, user = MARIADB
    reading = f"START TRANSACTION; SELECT * FROM account; {REPORT}"
    holder = subprocess.Popen(
        ["mysql", "-h", host, "-P", port, "-u", user, "-N", "-B", "-e", reading, database],
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        running = f"SELECT ID FROM information_schema.PROCESSLIST WHERE DB = '{database}'"
        while not (found := sql(f'{running} AND INFO = "{REPORT}"')):
            assert time.monotonic() < deadline, "the other session never read the table"
            time.sleep(0.1)
        [[session]] = found
        client = client_for(ini, mariadb_url, environment, lock_timeout="2s", lint="off")
        post(client, action="upgrade", revision="heads")
        began = time.monotonic()
        failed = run_next(client)
        waited = time.monotonic() - began
    finally:
        holder.kill()
        holder.wait()
    assert failed["status"] == "failed" and failed["error"]["code"] == "lock-timeout"
    assert failed["error"]["revision"] == "a5000005" and waited < 15
    message = failed["error"]["message"]
    assert f"pid {session} (Query: User sleep" in message and REPORT in message
    assert failed["heads_after"] == ["a4000004"]  # a4000004's step had completed
    assert sql("SELECT version_num FROM alembic_version", database) == [["a4000004"]]
    events = client.get("/api/v1/audit-events", query_string={"action": "operation.failed"}).json
    [held] = [b for b in events[0]["details"]["blockers"] if b["pid"] == int(session)]
    assert held["query"] == REPORT
    assert held["state"] == "Query: User sleep" and held["transaction_start"]
