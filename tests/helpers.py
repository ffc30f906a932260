"""Plain test helpers, imported by name; the fixtures that use them live in conftest.py."""

from __future__ import annotations

import functools
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask.testing import FlaskClient

from service.api.app import create_app
from service.secrets import Secret
from service.services.control import upgrade_control_schema
from service.settings import ManagedDatabase, Settings
from service.store.db import ControlStore

FIXTURES = Path(__file__).parent / "fixtures"
EXAMPLE = Path(__file__).parent.parent / "examples" / "shop"
PG_ADMIN_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
)
ALEMBIC = str(Path(sys.executable).with_name("alembic"))
MIGCTL = str(Path(sys.executable).with_name("migctl"))


def postgres_reachable() -> bool:
    engine = sa.create_engine(PG_ADMIN_URL, connect_args={"connect_timeout": 3})
    try:
        with engine.connect():
            return True
    except sa.exc.OperationalError:
        return False
    finally:
        engine.dispose()


class PostgresServer:
    """Creates throwaway databases on the test server and drops them all at the end."""

    def __init__(self) -> None:
        self.engine = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        self.created: list[str] = []

    def create_database(self) -> str:
        name = f"migctl_test_{uuid.uuid4().hex[:12]}"
        with self.engine.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
        self.created.append(name)
        return self.engine.url.set(database=name).render_as_string(hide_password=False)

    def drop_all(self) -> None:
        with self.engine.connect() as connection:
            for name in self.created:
                connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self.engine.dispose()


def alembic(
    ini: Path, url: str, *args: str, check: bool = True, seed: int = 0, executable: str = ALEMBIC
) -> str:
    """Run the alembic CLI (migctl's, or `executable`) on a copy of `ini` whose sqlalchemy.url
    is `url`; return stdout."""
    cli_ini = ini.with_name("alembic.cli.ini")
    lines = ini.read_text().splitlines()
    cli_ini.write_text(
        "\n".join(
            f"sqlalchemy.url = {url.replace('%', '%%')}"
            if line.startswith("sqlalchemy.url")
            else line
            for line in lines
        )
        + "\n"
    )
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "PYTHONWARNINGS": "ignore",
        "PYTHONHASHSEED": str(seed),
    }
    result = subprocess.run(
        [executable, "-c", str(cli_ini), *args],
        cwd=ini.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"alembic {' '.join(args)} failed:\n{result.stderr}")
    return result.stdout


def first_token_lines(output: str) -> list[str]:
    """The first word of each unindented line: how the alembic CLI lists revisions."""
    return [line.split()[0] for line in output.splitlines() if line and not line[0].isspace()]


def stamp(url: str, *revisions: str) -> None:
    """Record `revisions` in alembic_version, as `alembic stamp` would, without running them."""
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "CREATE TABLE IF NOT EXISTS alembic_version (version_num VARCHAR(32) PRIMARY KEY)"
            )
        )
        connection.execute(sa.text("DELETE FROM alembic_version"))
        for revision in revisions:
            connection.execute(sa.text("INSERT INTO alembic_version VALUES (:r)"), {"r": revision})
    engine.dispose()


def table_names(url: str, schema: str | None = None) -> list[str]:
    engine = sa.create_engine(url)
    try:
        return sa.inspect(engine).get_table_names(schema=schema)
    finally:
        engine.dispose()


def managed(
    name: str, ini: Path, url: str, env: Mapping[str, str] | None = None, **extra: str
) -> ManagedDatabase:
    return ManagedDatabase(
        name=name,
        url=Secret(url),
        alembic_config=ini,
        env={key: Secret(value) for key, value in (env or {}).items()},
        **extra,
    )


@functools.cache
def _control_template() -> Path:
    """A control database with the schema applied, made once per test process."""
    path = Path(tempfile.mkdtemp(prefix="migctl-control-")) / "template.db"
    store = ControlStore(f"sqlite:///{path}")
    upgrade_control_schema(store)
    store.dispose()
    return path


def fresh_control_url() -> str:
    """A migrated, empty SQLite control database of its own."""
    target = Path(tempfile.mkdtemp(prefix="migctl-control-")) / "control.db"
    shutil.copyfile(_control_template(), target)
    return f"sqlite:///{target}"


def settings_for(*databases: ManagedDatabase, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "databases": tuple(databases),
        "script_rescan_seconds": 0,
        "control_database_url": Secret(fresh_control_url()),
    }
    return Settings(**{**values, **overrides})


def client_for(*databases: ManagedDatabase, rescan_seconds: float = 0) -> FlaskClient:
    """A test client; by default every request checks every project file (no rescan delay)."""
    app = create_app(settings_for(*databases, script_rescan_seconds=rescan_seconds))
    app.config["TESTING"] = True
    return app.test_client()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(url: str, timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return int(response.status)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def serve(cwd: Path, environ: dict[str, str]) -> Iterator[str]:
    """`migctl serve` on a free loopback port, as the Dockerfile's CMD runs it; yields its URL,
    then stops it with SIGTERM and expects a clean exit."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIGCTL_")}
    env.pop("PYTHONHASHSEED", None)
    process = subprocess.Popen(
        [MIGCTL, "serve", "--bind", f"127.0.0.1:{port}"],
        cwd=cwd,
        env={**env, **environ},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    yield f"http://127.0.0.1:{port}"
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output


FAST = {
    "MIGCTL_HEARTBEAT_SECONDS": "0.5",
    "MIGCTL_LEASE_SECONDS": "3",
    "MIGCTL_WORKER_POLL_SECONDS": "0.2",
    "MIGCTL_LOG_LEVEL": "WARNING",
}


class Processes:
    """Starts migctl processes with a common environment and stops them all at the end."""

    def __init__(self, cwd: Path, environ: dict[str, str]) -> None:
        base = {k: v for k, v in os.environ.items() if not k.startswith("MIGCTL_")}
        self.cwd, self.env = cwd, {**base, **FAST, **environ}
        self.started: list[subprocess.Popen[str]] = []

    def api(self) -> str:
        port = free_port()
        self.start("serve", "--no-worker", "--bind", f"127.0.0.1:{port}", "--workers", "1")
        wait_for(f"http://127.0.0.1:{port}/health/live")
        return f"http://127.0.0.1:{port}/api/v1"

    def start(self, *args: str, **extra: str) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [MIGCTL, *args],
            cwd=self.cwd,
            env={**self.env, **extra},
            text=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.started.append(process)
        return process

    def stop_all(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.terminate()
        for process in self.started:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
