"""The revisions a managed database records: env.py (in the runner) names the table once,
then one SELECT reads it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection, Engine, create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    NoSuchModuleError,
    OperationalError,
    ProgrammingError,
    SQLAlchemyError,
)

from service.errors import DatabaseUnavailableError, MigctlError, redacted
from service.migrator.scripts import ProjectScripts, RevisionGraph
from service.secrets import redact
from service.settings import ManagedDatabase


@dataclass(frozen=True)
class VersionTable:
    """Where env.py keeps the version rows, and whether it used the connection handed to it."""

    name: str
    schema: str | None
    accepts_connection: bool


class DatabaseState:
    """Reads one managed database's current heads without ever writing to it."""

    def __init__(self, database: ManagedDatabase, scripts: ProjectScripts) -> None:
        self.database = database
        self.scripts = scripts
        self._engine: Engine | None = None
        self._no_driver = False  # migctl cannot open this URL itself: the runner reads it
        self._lock = threading.Lock()
        self._discovered: tuple[str, VersionTable] | None = None
        self._env_py_failed: tuple[str, MigctlError] | None = None

    def current_heads(self, graph: RevisionGraph) -> tuple[str, ...]:
        """The version table's rows; () for a database that has none (nothing is created)."""
        if self._sqlite_file_missing():
            return ()
        discovered = self._discovered
        if discovered is None or discovered[0] != graph.signature:
            heads, table = self._discover_remembering_failure(graph)
            self._discovered = (graph.signature, table)
            return heads
        return self._read_heads(discovered[1])

    def env_py_failure(self, graph: RevisionGraph) -> MigctlError | None:
        """How env.py failed the last time it ran for this database, while the project's
        files are unchanged (readiness reports it without running env.py again)."""
        failed = self._env_py_failed
        return failed[1] if failed is not None and failed[0] == graph.signature else None

    def _discover_remembering_failure(
        self, graph: RevisionGraph
    ) -> tuple[tuple[str, ...], VersionTable]:
        try:
            found = self._discover(graph)
        except MigctlError as exc:
            if exc.code == "project-unavailable":
                self._env_py_failed = (graph.signature, exc)
            raise
        self._env_py_failed = None
        return found

    @property
    def version_table(self) -> VersionTable | None:
        """What env.py said about its version table, once a read has discovered it."""
        discovered = self._discovered
        return discovered[1] if discovered else None

    def dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()

    def _read_heads(self, table: VersionTable) -> tuple[str, ...]:
        """One SELECT on a pooled connection; a stale pooled connection is retried once."""
        if not self._driver_here():
            return self._read_heads_in_runner(table)
        for attempt in (1, 2):
            try:
                with self._connection() as connection:
                    return _select_heads(connection, table)
            except DatabaseUnavailableError as exc:
                stale = getattr(exc.__cause__, "connection_invalidated", False)
                if attempt == 2 or not stale:
                    raise
        raise AssertionError("unreachable")

    def _discover(self, graph: RevisionGraph) -> tuple[tuple[str, ...], VersionTable]:
        """env.py, run online in the runner with dont_mutate=True, names its version table."""
        found = self._ask(
            "discover",
            signature=graph.generation,
            database=self.database.name,
            url=self._url,
            environ=self._environ,
        )
        table = VersionTable(
            name=str(found["version_table"]),
            schema=found.get("version_table_schema"),
            accepts_connection=bool(found.get("accepts_connection")),
        )
        return tuple(found["heads"]), table

    def _driver_here(self) -> bool:
        """Whether migctl has the URL's driver; the project's environment may have it instead."""
        if self._engine is None and not self._no_driver:
            try:
                self._engine_or_new()
            except (NoSuchModuleError, ImportError):
                self._no_driver = True
        return not self._no_driver

    def _read_heads_in_runner(self, table: VersionTable) -> tuple[str, ...]:
        heads = self._ask(
            "heads",
            database=self.database.name,
            url=self._url,
            version_table=table.name,
            schema=table.schema,
        )
        return tuple(str(head) for head in heads)

    def _ask(self, op: str, **params: Any) -> Any:
        """A request to the project's runner; what it reports is redacted of our secrets."""
        try:
            return self.scripts.runner.request(op, **params)
        except MigctlError as exc:
            raise redacted(exc, self.secrets()) from None

    @property
    def _url(self) -> str:
        return self.database.url.reveal()

    @property
    def _environ(self) -> dict[str, str]:
        return env_py_environ(self.database, self._url)

    def secrets(self) -> list[str]:
        return self.database.secret_values()

    def _engine_or_new(self) -> Engine:
        with self._lock:
            if self._engine is None:
                try:
                    self._engine = _create_engine(self._url)
                except (NoSuchModuleError, ImportError):
                    raise
                except (ArgumentError, ValueError) as exc:
                    detail = f"The URL of database {self.database.name!r} cannot be used: {exc}"
                    raise DatabaseUnavailableError(redact(detail, self.secrets())) from None
            return self._engine

    @contextmanager
    def _connection(self) -> Iterator[Connection]:
        try:
            with self._engine_or_new().connect() as connection:
                yield connection
        except MigctlError:
            raise
        except (SQLAlchemyError, OSError) as exc:
            raise self._unavailable(exc) from exc

    def _unavailable(self, exc: BaseException) -> DatabaseUnavailableError:
        reason = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
        first_line = (str(reason).strip().splitlines() or [type(reason).__name__])[0]
        detail = f"Cannot read database {self.database.name!r}: {first_line}"
        return DatabaseUnavailableError(redact(detail, self.secrets()))

    def _sqlite_file_missing(self) -> bool:
        # Connecting would create the file: a read must not change a managed database.
        try:
            url = make_url(self._url)
        except ArgumentError:
            return False
        name = url.database or ""
        if url.get_backend_name() != "sqlite" or name in ("", ":memory:") or "mode=" in name:
            return False
        return not Path(name).exists()


def _select_heads(connection: Connection, table: VersionTable) -> tuple[str, ...]:
    # Straight to the table env.py named: one round trip instead of Alembic's three.
    version = sa.table(table.name, sa.column("version_num"), schema=table.schema)
    try:
        rows = connection.execute(sa.select(version.c.version_num)).scalars().all()
    except (ProgrammingError, OperationalError):
        connection.rollback()
        if sa.inspect(connection).has_table(table.name, schema=table.schema):
            raise
        return ()  # no version table yet: nothing applied, and a read creates nothing
    return tuple(rows)


def _create_engine(url: str) -> Engine:
    parsed = make_url(url)
    # A read that hangs on an unreachable host would hold a web worker: fail in seconds.
    connect_args = {"connect_timeout": 5} if parsed.get_backend_name() == "postgresql" else {}
    return create_engine(parsed, pool_size=2, connect_args=connect_args)


def env_py_environ(database: ManagedDatabase, url: str) -> dict[str, str]:
    """What env.py sees: DATABASE_URL (read by many env.py files) and the configured env."""
    configured = {key: value.reveal() for key, value in database.env.items()}
    return {"DATABASE_URL": url, **configured}
