"""Retrying through outages: backoff delays, and logging an outage once, not once per attempt."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable


class Backoff:
    """Exponential delays, capped, with jitter so that many clients do not retry in step."""

    def __init__(self, first: float, cap: float, jitter: float = 0.5) -> None:
        self.first, self.cap, self.jitter = first, cap, jitter
        self._attempt = 0

    def next(self) -> float:
        """The delay before the next attempt: up to `jitter` of it is random."""
        delay = min(self.cap, self.first * 2.0**self._attempt)
        if delay < self.cap:  # once capped, stop counting: 2.0**n would overflow in a long outage
            self._attempt += 1
        return delay * (1 - self.jitter * random.random())

    def reset(self) -> None:
        self._attempt = 0


class Outage:
    """Logs the first failure of a run of them, and the success that ends it."""

    def __init__(self, logger: logging.Logger, subject: str, level: int = logging.ERROR) -> None:
        self.logger, self.subject, self.level = logger, subject, level
        self._lock = threading.Lock()  # the worker's presence thread shares its worker's
        self._since: float | None = None
        self._failures = 0

    @property
    def ongoing(self) -> bool:
        return self._since is not None

    def failed(self, error: BaseException) -> None:
        with self._lock:
            self._failures += 1
            first = self._since is None
            if first:
                self._since = time.monotonic()
        level = self.level if first else logging.DEBUG
        self.logger.log(level, "%s: %s; retrying until it answers", self.subject, reason(error))

    def recovered(self) -> None:
        with self._lock:
            if self._since is None:
                return
            lasted, failures = time.monotonic() - self._since, self._failures
            self._since, self._failures = None, 0
        self.logger.warning(
            "%s: answers again after %.1f s (%d failed attempts)", self.subject, lasted, failures
        )


def reason(error: BaseException) -> str:
    """The first line of what the driver said (never the SQL or SQLAlchemy's links)."""
    cause = getattr(error, "orig", None) or error
    return (str(cause).strip().splitlines() or [type(error).__name__])[0]


def until_done(
    action: Callable[[], object],
    retry_on: tuple[type[BaseException], ...],
    stopping: threading.Event,
    outage: Outage,
    backoff: Backoff,
) -> bool:
    """Run `action` until it raises none of `retry_on`; False when `stopping` ended the wait."""
    while True:
        try:
            action()
        except retry_on as exc:
            outage.failed(exc)
            if stopping.wait(backoff.next()):
                return False
        else:
            outage.recovered()
            return True
