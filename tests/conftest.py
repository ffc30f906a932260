"""Shared fixtures: throwaway SQLite and PostgreSQL databases, fixture projects, the app.

Plain helpers (alembic(), managed(), settings_for() ...) are in tests/helpers.py.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from service.migrator.runners import RunnerPool
from tests.helpers import (
    EXAMPLE,
    FIXTURES,
    PG_ADMIN_URL,
    PostgresServer,
    Processes,
    client_for,
    postgres_reachable,
)


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
    if not postgres_reachable():
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


@pytest.fixture
def make_client() -> Callable[..., FlaskClient]:
    return client_for


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Callable[[dict[str, str]], Processes]]:
    """Groups of migctl processes (serve, worker ...) with a common environment, all stopped
    when the test ends."""
    made: list[Processes] = []

    def make(environ: dict[str, str]) -> Processes:
        made.append(Processes(tmp_path, environ))
        return made[-1]

    yield make
    for group in made:
        group.stop_all()
