"""Shared fixtures: throwaway SQLite and PostgreSQL databases, fixture projects, the app."""

from __future__ import annotations

import functools
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient

from service.api.app import create_app
from service.migrator.runners import RunnerPool
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


def _postgres_reachable() -> bool:
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


@pytest.fixture(autouse=True)
def _runners_stop_with_the_test(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every runner process a test's apps and workers start is stopped when the test ends."""
    pools: list[RunnerPool] = []
    original = RunnerPool.__init__

    def tracked(self: RunnerPool, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        pools.append(self)

    monkeypatch.setattr(RunnerPool, "__init__", tracked)
    yield
    for pool in pools:
        pool.close()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """The PostgreSQL test server; skips (or fails under REQUIRE_POSTGRES=1) without it."""
    if not _postgres_reachable():
        if os.environ.get("REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL is required but unreachable at {PG_ADMIN_URL}")
        pytest.skip("PostgreSQL is not reachable")
    server = PostgresServer()
    yield server
    server.drop_all()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_database(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Callable[[], str]:
    """A factory of empty databases of the test's backend; each returns its URL."""

    def make() -> str:
        if backend == "sqlite":
            path = tmp_path / f"migctl_test_{uuid.uuid4().hex[:12]}.db"
            sqlite3.connect(path).close()  # an empty database, as a fresh server's would be
            return f"sqlite:///{path}"
        server: PostgresServer = request.getfixturevalue("postgres_server")
        return server.create_database()

    return make


@pytest.fixture
def database_url(make_database: Callable[[], str]) -> str:
    return make_database()


@pytest.fixture
def project(tmp_path: Path) -> Callable[[str], Path]:
    """Copy a fixture project (or `example`) into tmp_path; returns its alembic.ini path."""

    def copy(name: str) -> Path:
        source = EXAMPLE if name == "example" else FIXTURES / name
        target = tmp_path / "projects" / name
        if target.exists():
            return target / "alembic.ini"
        shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.db"))
        return target / "alembic.ini"

    return copy


def alembic(ini: Path, url: str, *args: str, check: bool = True, seed: int = 0) -> str:
    """Run the alembic CLI on a copy of `ini` whose sqlalchemy.url is `url`; return stdout."""
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
        [ALEMBIC, "-c", str(cli_ini), *args],
        cwd=ini.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"alembic {' '.join(args)} failed:\n{result.stderr}")
    return result.stdout


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


@pytest.fixture
def make_client() -> Callable[..., FlaskClient]:
    return client_for


def first_token_lines(output: str) -> list[str]:
    """The first word of each unindented line: how the alembic CLI lists revisions."""
    return [line.split()[0] for line in output.splitlines() if line and not line[0].isspace()]
