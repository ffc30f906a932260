"""Wake-ups for workers: PostgreSQL LISTEN on the queue channel, or plain polling."""

from __future__ import annotations

import select
import threading
from types import TracebackType
from typing import Any

from service.store.db import ControlStore
from service.store.operations import QUEUE_CHANNEL


class QueueListener:
    """`wait()` returns when an operation is queued (PostgreSQL) or after the poll interval."""

    def __init__(self, store: ControlStore) -> None:
        self.store = store
        self._raw: Any = None

    def __enter__(self) -> QueueListener:
        if self.store.dialect == "postgresql":
            self._raw = self.store.engine.raw_connection()
            self._raw.driver_connection.set_isolation_level(0)  # autocommit, for LISTEN
            with self._raw.driver_connection.cursor() as cursor:
                cursor.execute(f"LISTEN {QUEUE_CHANNEL}")
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        if self._raw is not None:
            self._raw.invalidate()  # never hand a LISTENing connection back to the pool
            self._raw = None

    def wait(self, timeout: float, stopping: threading.Event) -> None:
        if self._raw is None:
            stopping.wait(timeout)
            return
        connection = self._raw.driver_connection
        try:
            select.select([connection], [], [], timeout)
            connection.poll()
            connection.notifies.clear()
        except (OSError, ValueError):
            stopping.wait(timeout)  # polling still finds the work
