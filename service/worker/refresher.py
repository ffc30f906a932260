"""A worker thread that keeps the fleet's cached database states fresh."""

from __future__ import annotations

import logging
import threading
from types import TracebackType

from service.errors import MigctlError
from service.retrying import Outage
from service.services import fleet
from service.services.control import DATABASE_ERRORS
from service.services.registry import Registry
from service.services.wiring import Services

logger = logging.getLogger(__name__)
CHECK_SECONDS = 1.0  # how soon an operation's end shows in the fleet views
TROUBLE: tuple[type[Exception], ...] = (MigctlError, *DATABASE_ERRORS)


class StateRefresher:
    """Rereads each database at most every `state_refresh_seconds`, and after each operation.

    Its own thread: reading a large fleet takes seconds, and claiming must not wait on it. Its
    own registry, so its own project runners: a read that hangs in env.py (its first one runs
    env.py to find the version table) never holds the runner a job starts through. Several
    workers may overlap on a database; the row they write is the same either way.
    """

    def __init__(self, services: Services, worker_id: str) -> None:
        self.services = services
        self.registry = Registry(services.settings)
        self.max_age = services.settings.state_refresh_seconds
        self.outage = Outage(logger, f"worker {worker_id}: state refresh", logging.WARNING)
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="migctl-states", daemon=True)

    def __enter__(self) -> StateRefresher:
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
        self.registry.close()

    def _loop(self) -> None:
        while not self._halt.is_set():
            try:
                fleet.refresh_states(self.registry, self.services.store, self.max_age)
            except TROUBLE as exc:
                self.outage.failed(exc)
            else:
                self.outage.recovered()
            self._halt.wait(min(CHECK_SECONDS, self.max_age or CHECK_SECONDS))
