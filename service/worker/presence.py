"""A worker's heartbeat in the control database, which readiness reads."""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from types import TracebackType

from sqlalchemy.exc import SQLAlchemyError

from service.errors import MigctlError
from service.retrying import Outage
from service.services import workers
from service.services.control import ControlStore

logger = logging.getLogger(__name__)
MIN_INTERVAL = 0.1


class Presence:
    """Renews this worker's `seen_at` every poll interval, and marks it stopped at the end.

    From a thread of its own: the loop may spend seconds reading heads through a runner or
    ending a job, and a live worker must not look dead to readiness meanwhile.
    """

    def __init__(self, store: ControlStore, worker_id: str, interval: float) -> None:
        self.store, self.worker_id = store, worker_id
        self.interval = max(interval, MIN_INTERVAL)
        self.outage = Outage(logger, f"worker {worker_id}: heartbeat", logging.WARNING)
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="migctl-presence", daemon=True)

    def __enter__(self) -> Presence:
        self._thread.start()
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        self._halt.set()
        self._thread.join()
        self._try(lambda: workers.worker_stopped(self.store, self.worker_id))

    def _beat(self) -> None:
        host, pid = socket.gethostname(), os.getpid()
        while True:
            self._try(lambda: workers.worker_seen(self.store, self.worker_id, host, pid))
            if self._halt.wait(self.interval):
                return

    def _try(self, action: Callable[[], None]) -> None:
        try:
            action()
        except (MigctlError, SQLAlchemyError) as exc:  # the loop meets the same outage
            self.outage.failed(exc)
        else:
            self.outage.recovered()
