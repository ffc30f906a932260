"""Several hosts on one PostgreSQL control database: two API processes and three worker
groups (each its own process group, as a host would be), one killed mid-rollout."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.helpers import FIXTURES, MIGCTL, PostgresServer, Processes

pytestmark = pytest.mark.postgresql
DATABASES = 12
SLOW_REVISION = '''"""slow: waits, then records that it ran"""
import time

import sqlalchemy as sa
from alembic import op

revision = "a5000005"
down_revision = "a4000004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("applied_log", sa.Column("id", sa.Integer, primary_key=True))
    op.execute("INSERT INTO applied_log (id) VALUES (1)")
    time.sleep(2)  # uncommitted, long enough for a worker host to die in the middle


def downgrade() -> None:
    op.drop_table("applied_log")
'''


def _slow_project(tmp_path: Path) -> Path:
    target = tmp_path / "slow"
    shutil.copytree(FIXTURES / "linear", target, ignore=shutil.ignore_patterns("__pycache__"))
    (target / "migrations" / "versions" / "a5000005_slow.py").write_text(SLOW_REVISION)
    return target / "alembic.ini"


def _databases_file(tmp_path: Path, ini: Path, urls: list[str]) -> Path:
    path = tmp_path / "databases.toml"
    path.write_text(
        "".join(
            f'[databases.tenant-{i:02d}]\nurl = "{url}"\n'
            f'alembic_config = "{ini}"\nenvironment = "staging"\n'
            for i, url in enumerate(urls)
        )
    )
    return path


def _call(url: str, body: dict[str, Any] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def _wait_until_running_on(control_url: str, pid: int) -> None:
    """Until the worker of `pid` (its id is host:pid:suffix) is migrating a database."""
    engine = sa.create_engine(control_url)
    query = sa.text(
        "SELECT count(*) FROM migctl_operations WHERE status = 'running' AND worker_id LIKE :w "
        "AND executing_at IS NOT NULL"
    )
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            with engine.connect() as connection:
                if connection.execute(query, {"w": f"%:{pid}:%"}).scalar():
                    return
            time.sleep(0.1)
    finally:
        engine.dispose()
    raise AssertionError("no operation ran on the worker to kill")


@pytest.fixture
def hosts(tmp_path: Path) -> Iterator[list[subprocess.Popen[str]]]:
    """Worker groups, each in a session of its own; all killed at the end."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


def test_a_rollout_finishes_when_a_worker_host_dies_and_every_database_is_upgraded_once(
    tmp_path: Path,
    postgres_server: PostgresServer,
    processes: Callable[[dict[str, str]], Processes],
    hosts: list[subprocess.Popen[str]],
) -> None:
    ini = _slow_project(tmp_path)
    urls = [postgres_server.create_database() for _ in range(DATABASES)]
    environ = {
        "MIGCTL_DATABASES_FILE": str(_databases_file(tmp_path, ini, urls)),
        "MIGCTL_CONTROL_DATABASE_URL": postgres_server.create_database(),
    }
    group = processes(environ)
    first_api, second_api = group.api(), group.api()
    for _ in range(3):
        hosts.append(
            subprocess.Popen(
                [MIGCTL, "worker", "--concurrency", "2"],
                cwd=tmp_path,
                env=group.env,
                text=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # a host of its own: killed as a whole
            )
        )
    body = {"action": "upgrade", "revision": "heads", "selector": {"environment": "staging"}}
    rollout = _call(f"{first_api}/rollouts", {**body, "max_parallel": 4})
    doomed = hosts[0]
    _wait_until_running_on(environ["MIGCTL_CONTROL_DATABASE_URL"], doomed.pid)
    os.killpg(doomed.pid, signal.SIGKILL)
    doomed.wait(timeout=30)

    deadline = time.monotonic() + 150
    while (ended := _call(f"{second_api}/rollouts/{rollout['id']}"))["status"] == "running":
        assert time.monotonic() < deadline, ended["totals"]
        time.sleep(0.5)

    operations = _call(f"{second_api}/operations?page_size=100")
    assert ended["status"] == "succeeded", [
        (op["database"], op["status"], op["error"]["message"]) for op in operations if op["error"]
    ]
    assert ended["totals"] == {"succeeded": DATABASES}
    for url in urls:  # the killed step rolled back: each table holds one row
        engine = sa.create_engine(url)
        with engine.connect() as connection:
            assert connection.execute(sa.text("SELECT count(*) FROM applied_log")).scalar() == 1
            version = connection.execute(sa.text("SELECT version_num FROM alembic_version"))
            assert version.scalar() == "a5000005"
        engine.dispose()
    interrupted = [op["database"] for op in operations if op["status"] == "interrupted"]
    assert interrupted, "the kill hit no migration"
    for database in interrupted:  # and each was queued again, and that one succeeded
        again = [op["status"] for op in operations if op["database"] == database]
        assert again[0] == "succeeded"
