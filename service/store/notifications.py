"""Wake-ups for workers: PostgreSQL LISTEN on the queue channel, or plain polling."""

from __future__ import annotations

import contextlib
import logging
import select
import threading
import time
from types import TracebackType
from typing import Any

from service.retrying import Backoff, Outage
from service.store.db import DATABASE_ERRORS, ControlStore
from service.store.operations import QUEUE_CHANNEL

logger = logging.getLogger(__name__)
# select() on a socket the server closed, or a connection psycopg2 already gave up on.
LISTEN_ERRORS: tuple[type[Exception], ...] = (*DATABASE_ERRORS, OSError, ValueError)


class QueueListener:
    """`wait()` returns when an operation is queued (PostgreSQL) or after the poll interval.

    The LISTEN connection is the one that lives across idle time, so it is the first to meet a
    server restart: it is then dropped, and while it reconnects with backoff, `wait()` just
    sleeps the poll interval (the worker's polling finds the work meanwhile).
    """

    def __init__(self, store: ControlStore, backoff: Backoff | None = None) -> None:
        self.store = store
        self.backoff = backoff or Backoff(first=0.5, cap=15.0)
        self.outage = Outage(logger, "queue listener (LISTEN)", logging.WARNING)
        self._raw: Any = None
        self._reconnect_at = 0.0

    def __enter__(self) -> QueueListener:
        if self.store.dialect == "postgresql":
            self._listen()
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        self._drop()

    def wait(self, timeout: float, stopping: threading.Event) -> None:
        if not self._ready():
            stopping.wait(timeout)
            return
        connection = self._raw.driver_connection
        try:
            select.select([connection], [], [], timeout)
            connection.poll()
            connection.notifies.clear()
        except LISTEN_ERRORS as exc:
            self._lost(exc)
            stopping.wait(timeout)

    def _ready(self) -> bool:
        """Listening, after reconnecting first when a lost connection is due for it."""
        if self.store.dialect != "postgresql":
            return False
        if self._raw is None and time.monotonic() >= self._reconnect_at:
            self._listen()
        return self._raw is not None

    def _listen(self) -> None:
        try:
            self._raw = self.store.engine.raw_connection()
            self._raw.driver_connection.set_isolation_level(0)  # autocommit, for LISTEN
            with self._raw.driver_connection.cursor() as cursor:
                cursor.execute(f"LISTEN {QUEUE_CHANNEL}")
        except LISTEN_ERRORS as exc:
            self._lost(exc)
            return
        self.backoff.reset()
        self.outage.recovered()

    def _lost(self, error: Exception) -> None:
        self._drop()
        self.outage.failed(error)
        self._reconnect_at = time.monotonic() + self.backoff.next()

    def _drop(self) -> None:
        if self._raw is not None:
            with contextlib.suppress(*LISTEN_ERRORS):
                self._raw.invalidate()  # never hand a LISTENing connection back to the pool
            self._raw = None
