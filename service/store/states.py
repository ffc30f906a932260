"""The cached state of each managed database: written by workers, read by fleet views."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from service.lifecycle import Status
from service.store.db import aware
from service.store.tables import database_states, operations


@dataclass(frozen=True)
class CachedState:
    database: str
    state: str
    current_heads: list[str]
    pending_count: int | None
    problem_code: str | None
    refreshed_at: dt.datetime


def save(connection: sa.Connection, states: Iterable[CachedState]) -> None:
    """Insert or replace each database's row."""
    rows = [vars(state) for state in states]
    if not rows:
        return
    insert: Any = (postgresql if connection.dialect.name == "postgresql" else sqlite).insert(
        database_states
    )
    fresh = {key: insert.excluded[key] for key in rows[0] if key != "database"}
    connection.execute(insert.on_conflict_do_update(index_elements=["database"], set_=fresh), rows)


def load_all(connection: sa.Connection) -> dict[str, CachedState]:
    return {
        row.database: CachedState(**{**row._mapping, "refreshed_at": aware(row.refreshed_at)})
        for row in connection.execute(sa.select(database_states))
    }


def state_names(connection: sa.Connection) -> dict[str, str]:
    """Each database's cached state word alone: what counting a fleet needs."""
    query = sa.select(database_states.c.database, database_states.c.state)
    return {row.database: row.state for row in connection.execute(query)}


def stale(connection: sa.Connection, names: Iterable[str], older_than: dt.datetime) -> set[str]:
    """Of `names`: those never read, read before `older_than`, or with an operation that
    ended since they were read (so a fleet view follows a rollout closely)."""
    wanted = set(names)
    fresh_rows = sa.select(database_states.c.database, database_states.c.refreshed_at).where(
        database_states.c.refreshed_at >= older_than
    )
    fresh = {row.database: aware(row.refreshed_at) for row in connection.execute(fresh_rows)}
    ended = sa.select(operations.c.database, sa.func.max(operations.c.finished_at)).where(
        operations.c.finished_at.is_not(None)
    )
    for database, finished_at in connection.execute(ended.group_by(operations.c.database)):
        read_at, ended_at = fresh.get(database), aware(finished_at)
        if read_at is not None and ended_at is not None and ended_at >= read_at:
            del fresh[database]
    return wanted - set(fresh)


def last_operations(connection: sa.Connection) -> dict[str, tuple[int, str]]:
    """Each database's newest operation: (id, status)."""
    newest = (
        sa.select(sa.func.max(operations.c.id).label("id"))
        .group_by(operations.c.database)
        .subquery()
    )
    query = sa.select(operations.c.database, operations.c.id, operations.c.status).join(
        newest, newest.c.id == operations.c.id
    )
    return {row.database: (row.id, row.status) for row in connection.execute(query)}


def running(connection: sa.Connection) -> dict[str, int]:
    query = sa.select(operations.c.database, operations.c.id).where(
        operations.c.status == Status.RUNNING
    )
    return {row.database: row.id for row in connection.execute(query)}
