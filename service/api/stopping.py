"""This server process is stopping: event streams end at once instead of holding it up."""

from __future__ import annotations

import signal
import threading
from typing import Any

# Set on SIGTERM in a gunicorn worker; a stream then ends and its client resumes elsewhere
# with Last-Event-ID, instead of being cut after gunicorn's graceful timeout.
STOPPING = threading.Event()


def watch_sigterm(_worker: Any) -> None:
    """gunicorn's post_worker_init hook: chain a handler before the worker's own."""
    previous = signal.getsignal(signal.SIGTERM)

    def stop(signum: int, frame: Any) -> None:
        STOPPING.set()
        if callable(previous):
            previous(signum, frame)

    signal.signal(signal.SIGTERM, stop)
