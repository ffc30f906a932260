"""What every process the runner forks does first: die with its parent, keep its own output."""

from __future__ import annotations

import contextlib
import os
import signal


def die_with_parent() -> None:
    """SIGKILL when the parent dies, so nothing outlives migctl (Linux; elsewhere a no-op)."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def output_to(descriptor: int) -> None:
    """Point stdout and stderr at `descriptor`: prints and logging reach migctl's log."""
    os.dup2(descriptor, 1)
    os.dup2(descriptor, 2)
    os.close(descriptor)


def exit_code(status: int) -> int:
    """A wait status as subprocess reports it: the code, or minus the signal."""
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status)
    return os.WEXITSTATUS(status)
