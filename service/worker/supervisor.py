"""`migctl serve`'s worker: started beside the API, restarted whenever it exits.

The supervisor is a process of its own (`migctl worker --supervised`) rather than a thread of
serve: serve's main process becomes gunicorn's master, which reaps every child it has
(`waitpid(-1)`), so it would swallow the worker's exit status.
"""

from __future__ import annotations

import logging
import signal
import socket
import subprocess
import sys
import threading
import time
from types import FrameType

from sqlalchemy.exc import SQLAlchemyError

from service.errors import MigctlError
from service.retrying import Backoff
from service.services.control import ControlStore
from service.services.workers import worker_process_ended
from service.settings import Settings
from service.worker.signals import set_soon

logger = logging.getLogger(__name__)
FIRST_DELAY, MAX_DELAY = 1.0, 60.0
HEALTHY_AFTER = 60.0  # a worker that ran this long was well: the next restart is quick again


def start_supervisor() -> subprocess.Popen[bytes]:
    """Serve's side: the supervisor, stopped with SIGTERM when serve dies without saying so."""
    command = [sys.executable, "-m", "service.cli", "worker", "--supervised"]
    return subprocess.Popen(command, preexec_fn=_terminate_with_parent)


def stop_supervisor(process: subprocess.Popen[bytes]) -> None:
    """Serve's own shutdown: the worker finishes its running operation (its grace period)."""
    process.terminate()
    process.wait()


class Supervisor:
    """Runs `migctl worker` until SIGTERM or SIGINT, restarting it with backoff."""

    def __init__(self, settings: Settings, worker_args: tuple[str, ...] = ()) -> None:
        self.settings, self.worker_args = settings, worker_args
        self.stopping = threading.Event()
        self.backoff = Backoff(FIRST_DELAY, MAX_DELAY, jitter=0)
        self._child: subprocess.Popen[bytes] | None = None

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        while not self.stopping.is_set():
            started = time.monotonic()
            code = self._run_worker()
            if self.stopping.is_set():
                break
            if time.monotonic() - started >= HEALTHY_AFTER:
                self.backoff.reset()
            self._restart_after(code)
        return 0

    def _run_worker(self) -> int:
        command = [sys.executable, "-m", "service.cli", "worker", *self.worker_args]
        self._child = subprocess.Popen(command, preexec_fn=_terminate_with_parent)
        if self.stopping.is_set():  # a stop that arrived while it started
            self._child.terminate()
        return self._child.wait()

    def _restart_after(self, code: int) -> None:
        assert self._child is not None
        delay = self.backoff.next()
        logger.error(
            "worker process %d %s; starting another in %g s", self._child.pid, _how(code), delay
        )
        self._forget(self._child.pid)
        self.stopping.wait(delay)

    def _forget(self, pid: int) -> None:
        """Readiness sees at once that this worker is gone, not after its heartbeat ages."""
        store = ControlStore(self.settings.control_database_url.reveal())
        try:
            worker_process_ended(store, socket.gethostname(), pid)
        except (MigctlError, SQLAlchemyError) as exc:
            logger.warning("cannot record that worker process %d ended: %s", pid, exc)
        finally:
            store.dispose()

    def _stop(self, signum: int, _frame: FrameType | None) -> None:
        set_soon(self.stopping)
        if self._child is not None and self._child.returncode is None:
            self._child.send_signal(signal.SIGTERM)


def _how(code: int) -> str:
    if code < 0:
        return f"was killed by {signal.Signals(-code).name} (exit code {code})"
    return f"exited with code {code}"


def _terminate_with_parent() -> None:
    """In the child: SIGTERM (a graceful stop) when the parent dies, so none is orphaned."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def supervise(settings: Settings, worker_args: tuple[str, ...] = ()) -> int:
    return Supervisor(settings, worker_args).run()
