"""Behind PgBouncer in transaction mode (issue 8.9): the migration lock never leaks.

Each test starts its own PgBouncer (Debian's package; pool_mode = transaction, pool size 5, in a
temporary folder, on a free port) in front of the shared PostgreSQL, with light pgbench traffic
through it on the managed database, as a busy application would make.
"""

from __future__ import annotations

import dataclasses
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient

from service.api.context import SERVICES
from service.runner.errors import RunnerError
from service.runner.locks import migration_lock
from service.secrets import Secret
from service.services import execution
from service.worker.loop import Worker
from tests.helpers import PostgresServer, client_for, free_port, managed

pytestmark = pytest.mark.postgresql

ALIAS = "pooled_app"  # the database's name through the pooler only: no such database behind it


def pgbouncer_config(folder: Path, port: int, database: str) -> str:
    return (
        "[databases]\n"
        f"{ALIAS} = host=127.0.0.1 port=5432 dbname={database}\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = trust\nauth_file = {folder / 'users.txt'}\n"
        "pool_mode = transaction\ndefault_pool_size = 5\nmax_client_conn = 200\n"
        "ignore_startup_parameters = extra_float_digits,options\n"
        f"logfile = {folder / 'pgbouncer.log'}\n"
    )


def wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 15
    engine = sa.create_engine(f"postgresql+psycopg2://postgres@127.0.0.1:{port}/{ALIAS}")
    try:
        while True:
            try:
                with engine.connect() as connection:
                    connection.execute(sa.text("SELECT 1"))
                return
            except sa.exc.OperationalError:
                assert process.poll() is None, log.read_text() if log.exists() else "no log"
                assert time.monotonic() < deadline, "PgBouncer did not come up"
                time.sleep(0.2)
    finally:
        engine.dispose()


@pytest.fixture
def pooled(postgres_server: PostgresServer) -> Iterator[tuple[str, str]]:
    """(URL through PgBouncer, direct URL) of one fresh database with pgbench traffic on it."""
    binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    if not (os.access(binary, os.X_OK) and shutil.which("pgbench")):
        if os.environ.get("REQUIRE_POSTGRES") == "1":
            pytest.fail("pgbouncer and pgbench are needed (.ci/run installs them)")
        pytest.skip("pgbouncer or pgbench is not installed")
    direct = postgres_server.create_database()
    database = sa.engine.make_url(direct).database or ""
    folder = Path(tempfile.mkdtemp(prefix="migctl-pgbouncer-"))
    port = free_port()
    (folder / "users.txt").write_text('"postgres" ""\n')
    (folder / "pgbouncer.ini").write_text(pgbouncer_config(folder, port, database))
    # PgBouncer refuses to run as root: it drops to the postgres user, who must reach its files.
    as_user = ["-u", "postgres"] if os.geteuid() == 0 else []
    if as_user:
        owner = pwd.getpwnam("postgres")
        for path in (folder, *folder.iterdir()):
            os.chown(path, owner.pw_uid, owner.pw_gid)
    bouncer = subprocess.Popen([binary, *as_user, str(folder / "pgbouncer.ini")])
    traffic: subprocess.Popen[bytes] | None = None
    try:
        wait_for_port(port, bouncer, folder / "pgbouncer.log")
        pgbench = ["pgbench", "-h", "127.0.0.1", "-U", "postgres", "-n"]
        subprocess.run([*pgbench, "-p", "5432", "-i", "-q", database], check=True, timeout=120)
        traffic = subprocess.Popen(
            [*pgbench, "-p", str(port), "-c", "3", "-R", "30", "-T", "300", ALIAS],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/{ALIAS}", direct
    finally:
        for process in (traffic, bouncer):
            if process is not None:
                process.terminate()
                process.wait(timeout=30)
        shutil.rmtree(folder, ignore_errors=True)


def post(client: FlaskClient, **body: str) -> None:
    response = client.post("/api/v1/databases/db/operations", json=body)
    assert response.status_code == 202, response.json


def run_next(client: FlaskClient) -> Any:
    """What `migctl worker` does for one operation, in this process; returns the operation."""
    services = client.application.extensions[SERVICES]
    worker = Worker(services.settings, services)
    record = execution.claim_next(services.store, worker.worker_id, 30)
    assert record is not None, "nothing to claim"
    worker._run(record)
    return client.get(f"/api/v1/operations/{record.id}").json


def advisory_locks(direct: str) -> int:
    """Advisory locks held on the database by any session (pgbench's server ones too)."""
    engine = sa.create_engine(direct)
    try:
        with engine.connect() as connection:
            query = (
                "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database"
                " WHERE l.locktype = 'advisory' AND d.datname = current_database()"
            )
            return int(connection.execute(sa.text(query)).scalar_one())
    finally:
        engine.dispose()


def test_a_migration_through_a_transaction_pooler_is_refused_and_says_what_to_do(
    pooled: tuple[str, str], project: Callable[[str], Path]
) -> None:
    through_pooler, direct = pooled
    client = client_for(managed("db", project("linear"), through_pooler))
    post(client, action="upgrade", revision="heads")
    failed = run_next(client)
    assert failed["status"] == "failed", failed
    assert failed["error"]["code"] == "transaction-pooler"
    assert "migration_url" in failed["error"]["message"]
    assert 'lock = "table"' in failed["error"]["message"]
    assert failed["heads_after"] == [] and advisory_locks(direct) == 0


def test_migration_url_migrates_directly_while_reads_go_through_the_pooler(
    pooled: tuple[str, str], project: Callable[[str], Path]
) -> None:
    through_pooler, direct = pooled
    database = managed("db", project("linear"), through_pooler)
    client = client_for(dataclasses.replace(database, migration_url=Secret(direct)))
    post(client, action="upgrade", revision="heads")
    assert run_next(client)["status"] == "succeeded"
    # The pooler's name for the database exists nowhere else: these reads went through it.
    status = client.get("/api/v1/databases/db/status").json
    assert status["current_heads"] == ["a4000004"] and status["up_to_date"] is True
    post(client, action="downgrade", revision="a2000002")
    assert run_next(client)["heads_after"] == ["a2000002"]
    assert client.get("/api/v1/databases/db/status").json["current_heads"] == ["a2000002"]
    assert advisory_locks(direct) == 0


def test_the_table_lock_works_through_the_pooler_and_never_leaks(
    pooled: tuple[str, str], project: Callable[[str], Path]
) -> None:
    through_pooler, direct = pooled
    client = client_for(managed("db", project("linear"), through_pooler, lock="table"))
    post(client, action="upgrade", revision="heads")
    assert run_next(client)["status"] == "succeeded"
    post(client, action="downgrade", revision="a1000001")  # would wait and fail on a leak
    assert run_next(client)["heads_after"] == ["a1000001"]
    post(client, action="upgrade", revision="heads")
    assert run_next(client)["heads_after"] == ["a4000004"]
    engine = sa.create_engine(direct)
    with engine.connect() as connection:
        lease = connection.execute(sa.text("SELECT holder FROM migctl_migration_lock")).all()
    engine.dispose()
    assert lease == [(None,)] and advisory_locks(direct) == 0


def test_the_pooler_is_caught_every_time_under_traffic_and_a_direct_connection_never(
    pooled: tuple[str, str],
) -> None:
    """One probe misses about once in a few hundred when pgbench takes the freed server
    connection first: enough tries here to catch a check that trusts one probe."""
    through_pooler, direct = pooled
    for url, pooler, tries in ((through_pooler, True, 300), (direct, False, 20)):
        engine = sa.create_engine(url)
        with engine.connect() as connection:
            for _attempt in range(tries):
                try:
                    with migration_lock(url, connection, "advisory", wait_seconds=5):
                        assert advisory_locks(direct) == 1
                    assert not pooler, "a migration through the pooler was let through"
                except RunnerError as refused:
                    assert pooler and refused.code == "transaction-pooler", refused
        engine.dispose()
    assert advisory_locks(direct) == 0
