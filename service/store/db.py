"""Engines for the control database (SQLite: WAL, busy timeout, BEGIN IMMEDIATE) and its clock."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg2
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import make_url

from service.errors import ControlDatabaseUnavailableError

SQLITE_BUSY_TIMEOUT_MS = 30_000

# Anything the control database or its drivers raise, through SQLAlchemy or not (LISTEN).
DATABASE_ERRORS: tuple[type[Exception], ...] = (
    sa.exc.SQLAlchemyError,
    psycopg2.Error,
    sqlite3.Error,
)
# What a control database that is down, restarting or unreachable raises: worth waiting out.
UNAVAILABLE: tuple[type[Exception], ...] = (
    ControlDatabaseUnavailableError,
    sa.exc.OperationalError,
    sa.exc.InterfaceError,
    sa.exc.DisconnectionError,
    psycopg2.OperationalError,
    psycopg2.InterfaceError,
    sqlite3.OperationalError,
)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def aware(value: dt.datetime | None) -> dt.datetime | None:
    # SQLite hands DateTime(timezone=True) back naive; every time migctl writes is UTC.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value


def make_engine(url: str, **kwargs: Any) -> sa.Engine:
    """An engine whose transactions are real ones on SQLite too (docs/alembic-in-a-service.md,
    "SQLite transactions are real only if migctl issues BEGIN")."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        connect_args = {"connect_timeout": 5} if parsed.get_backend_name() == "postgresql" else {}
        return sa.create_engine(parsed, pool_pre_ping=True, connect_args=connect_args, **kwargs)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(parsed, connect_args={"timeout": 30}, **kwargs)
    event.listen(engine, "connect", _sqlite_connect)
    event.listen(engine, "begin", _sqlite_begin)
    return engine


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # pysqlite's own transaction handling lets DDL autocommit: take control of BEGIN.
    dbapi_connection.isolation_level = None
    dbapi_connection.execute("PRAGMA journal_mode=WAL")
    dbapi_connection.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    dbapi_connection.execute("PRAGMA foreign_keys=ON")


def _sqlite_begin(connection: sa.Connection) -> None:
    # Take the write lock up front: claimers serialise here instead of failing at COMMIT.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


AUDIT_LISTENERS = "migctl_audit_listeners"


class ControlStore:
    """The control database: one engine per process, short transactions on it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine: sa.Engine | None = None
        # Called with (connection, event) after each audit event is written, in its
        # transaction: the webhook outbox adds its delivery rows there.
        self.audit_listeners: list[Callable[[sa.Connection, Any], None]] = []

    @property
    def engine(self) -> sa.Engine:
        if self._engine is None:
            self._engine = make_engine(self.url)
        return self._engine

    @property
    def dialect(self) -> str:
        return make_url(self.url).get_backend_name()

    @contextmanager
    def transaction(self) -> Iterator[sa.Connection]:
        """A connection in a transaction, committed on success and rolled back on error."""
        try:
            with self.engine.begin() as connection:
                connection.info[AUDIT_LISTENERS] = self.audit_listeners
                yield connection
        except (sa.exc.OperationalError, sa.exc.ProgrammingError, sa.exc.InterfaceError) as exc:
            # Down, unreachable, or its schema behind: a 503 that names it, never a 500.
            raise ControlDatabaseUnavailableError(_first_line(exc)) from exc

    def dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


def _first_line(exc: sa.exc.DBAPIError) -> str:
    reason = exc.orig if exc.orig is not None else exc
    return (str(reason).strip().splitlines() or ["unavailable"])[0]
