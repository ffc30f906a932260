"""Stopping from a signal handler without the deadlock of Event.set() in one."""

from __future__ import annotations

import threading


def set_soon(event: threading.Event) -> None:
    """Set `event` from a signal handler, on a thread of its own.

    The handler runs in the main thread between two bytecodes, possibly inside that thread's
    own `event.wait()` while it holds the lock `set()` takes: a worker hung so on SIGTERM,
    its main thread waiting for itself. The new thread takes the lock once it is released.
    """
    threading.Thread(target=event.set, name="stop-signal", daemon=True).start()
