"""Worker processes: each records itself, renews `seen_at`, and says when it stops."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from service.store.db import aware
from service.store.tables import workers

FORGET_AFTER = dt.timedelta(days=7)


@dataclass(frozen=True)
class WorkerRecord:
    id: str
    host: str
    pid: int
    started_at: dt.datetime
    seen_at: dt.datetime
    stopped_at: dt.datetime | None

    def alive(self, since: dt.datetime) -> bool:
        return self.stopped_at is None and self.seen_at >= since


def seen(connection: sa.Connection, worker_id: str, host: str, pid: int, now: dt.datetime) -> None:
    """Renew `seen_at` (one UPDATE); the first time, record the worker instead."""
    update = (
        workers.update()
        .where(workers.c.id == worker_id, workers.c.stopped_at.is_(None))
        .values(seen_at=now)
    )
    if connection.execute(update).rowcount == 0:
        connection.execute(workers.delete().where(workers.c.seen_at < now - FORGET_AFTER))
        values = {"host": host, "pid": pid, "started_at": now, "seen_at": now}
        connection.execute(workers.insert().values(id=worker_id, **values))


def stopped(connection: sa.Connection, worker_id: str, now: dt.datetime) -> None:
    connection.execute(
        workers.update()
        .where(workers.c.id == worker_id, workers.c.stopped_at.is_(None))
        .values(stopped_at=now)
    )


def process_ended(connection: sa.Connection, host: str, pid: int, now: dt.datetime) -> None:
    """The worker process `pid` of `host` is gone without saying so (killed, crashed)."""
    connection.execute(
        workers.update()
        .where(workers.c.host == host, workers.c.pid == pid, workers.c.stopped_at.is_(None))
        .values(stopped_at=now)
    )


def latest(connection: sa.Connection, limit: int = 20) -> list[WorkerRecord]:
    """The workers seen most recently, most recent first."""
    query = sa.select(workers).order_by(workers.c.seen_at.desc()).limit(limit)
    return [_worker(row) for row in connection.execute(query)]


def _worker(row: sa.Row[Any]) -> WorkerRecord:
    values = dict(row._mapping)
    for key in ("started_at", "seen_at", "stopped_at"):
        values[key] = aware(values[key])
    return WorkerRecord(**values)
