"""Worker presence: each worker renews its row; readiness asks whether one is alive."""

from __future__ import annotations

import datetime as dt

from service.store import workers
from service.store.db import ControlStore, utcnow
from service.store.workers import WorkerRecord as WorkerRecord

# A worker renews its row every poll interval: missing three in a row, it is taken for dead.
MISSED_BEATS, FLOOR_SECONDS = 3, 3.0


def stale_after(poll_seconds: float) -> dt.timedelta:
    return dt.timedelta(seconds=max(MISSED_BEATS * poll_seconds, FLOOR_SECONDS))


def worker_seen(store: ControlStore, worker_id: str, host: str, pid: int) -> None:
    with store.transaction() as connection:
        workers.seen(connection, worker_id, host, pid, utcnow())


def worker_stopped(store: ControlStore, worker_id: str) -> None:
    with store.transaction() as connection:
        workers.stopped(connection, worker_id, utcnow())


def worker_process_ended(store: ControlStore, host: str, pid: int) -> None:
    """Its supervisor saw the process end: readiness need not wait for its beats to age."""
    with store.transaction() as connection:
        workers.process_ended(connection, host, pid, utcnow())


def known_workers(store: ControlStore) -> list[WorkerRecord]:
    with store.transaction() as connection:
        return workers.latest(connection)
