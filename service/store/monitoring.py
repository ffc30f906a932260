"""Figures for /metrics, each one query on the control tables."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from service.lifecycle import FINISHED, Status
from service.store.db import aware
from service.store.tables import operations, workers


def queue(connection: sa.Connection) -> tuple[int, dt.datetime | None]:
    """How many operations are queued, and when the oldest of them was requested."""
    query = sa.select(sa.func.count(), sa.func.min(operations.c.requested_at)).where(
        operations.c.status == Status.QUEUED
    )
    count, oldest = connection.execute(query).one()
    return int(count), aware(oldest)


def running(connection: sa.Connection) -> int:
    query = sa.select(sa.func.count()).where(operations.c.status == Status.RUNNING)
    return int(connection.execute(query).scalar_one())


def last_heartbeat(connection: sa.Connection) -> dt.datetime | None:
    """The newest heartbeat of a worker that has not said it stopped."""
    query = sa.select(sa.func.max(workers.c.seen_at)).where(workers.c.stopped_at.is_(None))
    return aware(connection.execute(query).scalar())


def ended_counts(connection: sa.Connection) -> dict[tuple[str, str, str], int]:
    """Finished operations per (database, action, status)."""
    columns = (operations.c.database, operations.c.action, operations.c.status)
    query = (
        sa.select(*columns, sa.func.count())
        .where(operations.c.status.in_(sorted(FINISHED)))
        .group_by(*columns)
    )
    return {(db, action, status): int(n) for db, action, status, n in connection.execute(query)}
