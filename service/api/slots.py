"""Slots: at most N requests of a kind at once in this process, for those that hold a thread
long (long polls; server-sent event streams later). Beyond N, a request is told at once."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

WAITERS = "migctl.waiters"
STREAMS = "migctl.streams"


class Slots:
    """A counting limiter that never blocks: `take()` either holds a slot or says no."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._free = threading.BoundedSemaphore(limit) if limit > 0 else None

    @contextmanager
    def take(self) -> Iterator[bool]:
        """True (a slot is held until the block ends), or False at once when all are taken."""
        taken = self._free is not None and self._free.acquire(blocking=False)
        try:
            yield taken
        finally:
            if taken and self._free is not None:
                self._free.release()

    def acquire(self) -> bool:
        """Hold a slot beyond one block (a streamed response); True if one was free."""
        return self._free is not None and self._free.acquire(blocking=False)

    def release(self) -> None:
        if self._free is not None:
            self._free.release()
