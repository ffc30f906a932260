"""Bounded waits on the migration connection, and who blocked a step that timed out."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from .engines import backend, create_engine

APPLICATION_NAME = "migctl migration"
_PG_LOCK_TIMEOUT = "55P03"  # lock_not_available
_MYSQL_LOCK_WAIT = 1205  # ER_LOCK_WAIT_TIMEOUT (metadata locks too)
_QUERY_CHARS = 200
# The relations a DDL statement locks, by name: ALTER/DROP/LOCK/TRUNCATE TABLE x, ... ON x.
_RELATIONS = re.compile(
    r"\b(?:TABLE|ON|INDEX|REFERENCES)\s+(?:ONLY\s+|CONCURRENTLY\s+)?(?:IF\s+(?:NOT\s+)?EXISTS\s+)?"
    r"((?:\"[^\"]+\"|[\w$]+)(?:\.(?:\"[^\"]+\"|[\w$]+))?)",
    re.IGNORECASE,
)
_DURATION = re.compile(r"^\s*([0-9]+)\s*(us|ms|s|min|h|d)?\s*$")
_SECONDS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "min": 60.0, "h": 3600.0, "d": 86400.0}

_BLOCKERS_SQL = """
SELECT DISTINCT a.pid, a.state, a.query_start, left(a.query, :chars) AS query, l.mode
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.granted AND l.pid <> :me AND l.locktype = 'relation'
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND (l.relation = ANY(CAST(:relations AS oid[])) OR cardinality(CAST(:relations AS oid[])) = 0)
ORDER BY a.pid
"""
# MariaDB keeps no record of metadata locks by default (performance_schema is off): the
# sessions with an open transaction, using this database or none, can hold the table's lock.
_MYSQL_BLOCKERS_SQL = """
SELECT p.ID AS pid, p.COMMAND AS command, p.STATE AS state, t.trx_started,
  NOW() - INTERVAL p.TIME SECOND AS query_start, LEFT(p.INFO, :chars) AS query
FROM information_schema.INNODB_TRX t
JOIN information_schema.PROCESSLIST p ON p.ID = t.trx_mysql_thread_id
WHERE p.ID <> :me AND (p.DB = DATABASE() OR p.DB IS NULL)
ORDER BY t.trx_started, p.ID
"""


def apply(connection: Any, url: str, timeouts: Mapping[str, str | None]) -> int | None:
    """SET the session's lock_timeout and statement_timeout (MySQL: lock_wait_timeout), and
    its application_name on PostgreSQL; returns the session's id (PostgreSQL's backend pid,
    MySQL's CONNECTION_ID()) that the blockers query leaves out."""
    name = backend(url)
    lock, statement = timeouts.get("lock_timeout"), timeouts.get("statement_timeout")
    if name == "postgresql":
        # How GET .../locks finds the migrating session when env.py connects by itself.
        connection.execute(sa.text(f"SET application_name = '{APPLICATION_NAME}'"))
        for setting, value in (("lock_timeout", lock), ("statement_timeout", statement)):
            if value:
                connection.execute(sa.text(f"SET {setting} = '{_checked(value)}'"))
        return int(connection.execute(sa.text("SELECT pg_backend_pid()")).scalar())
    if name in ("mysql", "mariadb"):
        if lock:
            seconds = max(1, round(_seconds(lock)))
            connection.execute(sa.text(f"SET SESSION lock_wait_timeout = {seconds}"))
        return int(connection.execute(sa.text("SELECT CONNECTION_ID()")).scalar())
    return None


def is_lock_timeout(exc: BaseException) -> bool:
    orig = getattr(exc, "orig", None)
    if getattr(orig, "pgcode", None) == _PG_LOCK_TIMEOUT:
        return True
    args: Any = getattr(orig, "args", None) or ()
    return bool(args) and args[0] == _MYSQL_LOCK_WAIT


def blockers(url: str, statement: str, own_pid: int | None) -> list[dict[str, Any]]:
    """The sessions holding locks on the relations `statement` names (PostgreSQL), or with
    an open transaction (MySQL, MariaDB), read on a connection of its own: the failed one's
    transaction is aborted."""
    name = backend(url)
    if own_pid is None or name not in ("postgresql", "mysql", "mariadb"):
        return []
    engine = create_engine(url, migrating=False)
    try:
        with engine.connect() as connection:
            if name == "postgresql":
                return _pg_blockers(connection, statement, own_pid)
            rows = connection.execute(
                sa.text(_MYSQL_BLOCKERS_SQL), {"chars": _QUERY_CHARS, "me": own_pid}
            )
            return [_mysql_blocker(row) for row in rows]
    except sa.exc.SQLAlchemyError:
        return []
    finally:
        engine.dispose()


def _pg_blockers(connection: Any, statement: str, own_pid: int) -> list[dict[str, Any]]:
    relations = [
        oid
        for oid in (
            connection.execute(sa.text("SELECT CAST(to_regclass(:n) AS oid)"), {"n": n}).scalar()
            for n in _RELATIONS.findall(statement)
        )
        if oid is not None
    ]
    rows = connection.execute(
        sa.text(_BLOCKERS_SQL), {"chars": _QUERY_CHARS, "me": own_pid, "relations": relations}
    )
    return [_blocker(row) for row in rows]


def _mysql_blocker(row: Any) -> dict[str, Any]:
    """A session with an open transaction: its id, command and state, its query."""
    started = row.query_start
    return {
        "pid": int(row.pid),
        "state": f"{row.command}: {row.state}" if row.state else row.command,
        "query_start": started.isoformat() if started is not None else None,
        "query": row.query,
        "mode": None,
        "transaction_start": row.trx_started.isoformat(),
    }


def _blocker(row: Any) -> dict[str, Any]:
    started = row.query_start
    return {
        "pid": int(row.pid),
        "state": row.state,
        "query_start": started.isoformat() if started is not None else None,
        "query": row.query,
        "mode": row.mode,
    }


def _checked(value: str) -> str:
    if not _DURATION.match(value):
        raise ValueError(f"not a duration: {value!r}")
    return value.strip()


def _seconds(value: str) -> float:
    match = _DURATION.match(value)
    if match is None:
        raise ValueError(f"not a duration: {value!r}")
    return int(match.group(1)) * _SECONDS[match.group(2) or "ms"]
