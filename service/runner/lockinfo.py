"""Who holds a database's migration lock, what that session waits for, and stale leases."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

from .engines import backend, create_engine
from .locks import ADVISORY_KEY, LEASE_TABLE, LOCK_NAME
from .state import _connected
from .timeouts import APPLICATION_NAME

_QUERY_CHARS = 200
_MASK = 0xFFFFFFFF
_SESSION = (
    "a.pid, a.state, a.query_start, a.backend_start, a.application_name, "
    "left(a.query, :chars) AS query"
)
_HOLDER = f"""
SELECT {_SESSION} FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.classid = :classid AND l.objid = :objid
  AND l.objsubid = 1
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""
_WAITS_FOR = """
SELECT l.locktype, CAST(CAST(l.relation AS regclass) AS text) AS relation, l.mode
FROM pg_locks l WHERE l.pid = :pid AND NOT l.granted
"""
# The job's migrating session: env.py may have opened its own beside the lock's.
_MIGRATING = f"""
SELECT {_SESSION} FROM pg_stat_activity a
WHERE a.application_name = :app AND a.datname = current_database() ORDER BY a.pid LIMIT 1
"""
_BLOCKERS = f"""
SELECT {_SESSION} FROM pg_stat_activity a
WHERE a.pid = ANY(pg_blocking_pids(:pid)) ORDER BY a.pid
"""


def inspect(request: dict[str, Any]) -> dict[str, Any]:
    """The holder of the lock of `request["kind"]`, and for PostgreSQL what it waits for."""
    url, kind = request["url"], request.get("kind") or "advisory"
    name = backend(url)
    engine = create_engine(url, migrating=False)
    try:
        with _connected(engine, request["database"]) as connection:
            if name == "postgresql" and kind == "table":
                return {"kind": "table", "lease": _lease(connection)}
            if name == "postgresql":
                return {"kind": "advisory", **_advisory(connection)}
            if name in ("mysql", "mariadb"):
                used = connection.execute(sa.text("SELECT IS_USED_LOCK(:n)"), {"n": LOCK_NAME})
                holder = used.scalar()
                return {"kind": "named", "holder": None if holder is None else {"pid": holder}}
            return {"kind": "none", "holder": None}
    finally:
        engine.dispose()


def release_lease(request: dict[str, Any]) -> dict[str, Any]:
    """Clear the lease row when its holder let it expire; what it was, and whether cleared."""
    engine = create_engine(request["url"], migrating=False)
    try:
        with _connected(engine, request["database"]) as connection:
            lease = _lease(connection)
            if lease is None or not lease["expired"]:
                return {"lease": lease, "released": False}
            connection.execute(
                sa.text(
                    f"UPDATE {LEASE_TABLE} SET holder = NULL, expires_at = NULL "
                    "WHERE name = :n AND holder = :h AND expires_at < :now"
                ),
                {"n": LOCK_NAME, "h": lease["holder"], "now": _now()},
            )
            connection.commit()
            return {"lease": lease, "released": True}
    finally:
        engine.dispose()


def _advisory(connection: Any) -> dict[str, Any]:
    key = ADVISORY_KEY & ((1 << 64) - 1)
    row = connection.execute(
        sa.text(_HOLDER),
        {"chars": _QUERY_CHARS, "classid": (key >> 32) & _MASK, "objid": key & _MASK},
    ).first()
    if row is None:
        return {"holder": None, "migrating": None, "waiting_for": [], "blocked_by": []}
    migrating = connection.execute(
        sa.text(_MIGRATING), {"chars": _QUERY_CHARS, "app": APPLICATION_NAME}
    ).first()
    subject = migrating.pid if migrating is not None else row.pid
    waits = connection.execute(sa.text(_WAITS_FOR), {"pid": subject})
    blockers = connection.execute(sa.text(_BLOCKERS), {"pid": subject, "chars": _QUERY_CHARS})
    return {
        "holder": _session(row),
        "migrating": None if migrating is None else _session(migrating),
        "waiting_for": [
            {"locktype": w.locktype, "relation": w.relation, "mode": w.mode} for w in waits
        ],
        "blocked_by": [_session(b) for b in blockers],
    }


def _lease(connection: Any) -> dict[str, Any] | None:
    if not sa.inspect(connection).has_table(LEASE_TABLE):
        return None
    row = connection.execute(
        sa.text(f"SELECT holder, expires_at FROM {LEASE_TABLE} WHERE name = :n"), {"n": LOCK_NAME}
    ).first()
    if row is None or row.holder is None:
        return None
    expires = (
        row.expires_at if row.expires_at.tzinfo else row.expires_at.replace(tzinfo=dt.timezone.utc)
    )
    return {"holder": row.holder, "expires_at": expires.isoformat(), "expired": expires < _now()}


def _session(row: Any) -> dict[str, Any]:
    return {
        "pid": int(row.pid),
        "state": row.state,
        "query_start": row.query_start.isoformat() if row.query_start else None,
        "backend_start": row.backend_start.isoformat() if row.backend_start else None,
        "application_name": row.application_name,
        "query": row.query,
    }


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)
