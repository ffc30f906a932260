"""Operation events in commit order: append them, read those after an id, time past steps."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from service.lifecycle import StepOutcome
from service.store.audit import storable
from service.store.db import aware
from service.store.tables import events, operation_steps

# Held by every transaction that appends an event (PostgreSQL), until it commits: ids are then
# drawn in commit order, so a reader past id N never misses a smaller id committed later.
# SQLite's BEGIN IMMEDIATE serialises writers already.
_EVENT_ORDER_LOCK = 0x6D6967657674


@dataclass(frozen=True)
class EventRecord:
    id: int
    operation_id: int
    database: str
    kind: str
    payload: dict[str, Any]
    created_at: dt.datetime


@dataclass(frozen=True)
class NewEvent:
    operation_id: int
    database: str
    kind: str
    payload: Mapping[str, Any]
    created_at: dt.datetime


def append_many(connection: sa.Connection, new: Sequence[NewEvent]) -> None:
    """Insert events in order, in one statement (the steps a worker records together)."""
    if not new:
        return
    if connection.dialect.name == "postgresql":
        connection.execute(sa.select(sa.func.pg_advisory_xact_lock(_EVENT_ORDER_LOCK)))
    rows = [
        {
            "operation_id": event.operation_id,
            "database": event.database,
            "kind": event.kind,
            "payload": storable(dict(event.payload)),
            "created_at": event.created_at,
        }
        for event in new
    ]
    connection.execute(events.insert(), rows)


def after(
    connection: sa.Connection,
    last_id: int,
    *,
    operation_id: int | None = None,
    databases: frozenset[str] | None = None,
    limit: int = 100,
) -> list[EventRecord]:
    """Events with an id above `last_id`, oldest first; of one operation, or of `databases`."""
    conditions = [events.c.id > last_id]
    if operation_id is not None:
        conditions.append(events.c.operation_id == operation_id)
    if databases is not None:
        conditions.append(events.c.database.in_(sorted(databases)))
    query = sa.select(events).where(*conditions).order_by(events.c.id).limit(limit)
    return [
        EventRecord(**{**row._mapping, "created_at": aware(row.created_at)})
        for row in connection.execute(query)
    ]


def last_id(connection: sa.Connection) -> int:
    return int(connection.execute(sa.select(sa.func.max(events.c.id))).scalar() or 0)


def mean_step_seconds(
    connection: sa.Connection, steps: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], float]:
    """Mean duration of each (revision, direction) over every database's succeeded steps."""
    wanted = set(steps)
    if not wanted:
        return {}
    query = (
        sa.select(
            operation_steps.c.revision,
            operation_steps.c.direction,
            sa.func.avg(operation_steps.c.duration_ms),
        )
        .where(
            operation_steps.c.revision.in_(sorted({revision for revision, _ in wanted})),
            operation_steps.c.outcome == StepOutcome.SUCCEEDED,
        )
        .group_by(operation_steps.c.revision, operation_steps.c.direction)
    )
    return {
        (revision, direction): float(mean) / 1000
        for revision, direction, mean in connection.execute(query)
        if (revision, direction) in wanted
    }
