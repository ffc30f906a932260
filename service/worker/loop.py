"""The worker loop: claim an operation, run it in a child process, heartbeat, reap, repeat."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from types import FrameType

from service.errors import MigctlError
from service.lifecycle import JobEnd, Status
from service.retrying import Backoff, Outage, until_done
from service.services import execution
from service.services.control import DATABASE_ERRORS, UNAVAILABLE
from service.services.execution import OperationRecord, QueueListener
from service.services.wiring import build_services
from service.settings import Settings
from service.worker.presence import Presence
from service.worker.probe import read_heads_in_child

logger = logging.getLogger(__name__)
# Whatever the control database or its driver raise, the worker waits and tries again.
CONTROL_DATABASE_TROUBLE: tuple[type[Exception], ...] = (MigctlError, *DATABASE_ERRORS)


class Worker:
    """Runs queued operations one at a time until SIGTERM; each in a child process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.services = build_services(settings)
        self.registry, self.store = self.services.registry, self.services.store
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.stopping = threading.Event()
        self.outage = Outage(logger, f"worker {self.worker_id}: control database")
        self._spare: subprocess.Popen[bytes] | None = None

    def run(self) -> None:
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        logger.info("worker %s started", self.worker_id)
        poll = self.settings.worker_poll_seconds
        with QueueListener(self.store) as listener, Presence(self.store, self.worker_id, poll):
            while not self.stopping.is_set():
                if not self._attempt():
                    listener.wait(poll, self.stopping)
        self._drop_spare()
        self.services.close()
        logger.info("worker %s stopped", self.worker_id)

    def _attempt(self) -> bool:
        """One turn of the loop; a control database outage is waited out, never fatal."""
        try:
            worked = self._once()
        except CONTROL_DATABASE_TROUBLE as exc:
            self.outage.failed(exc)
            return False
        self.outage.recovered()
        return worked

    def _once(self) -> bool:
        """Reap, then claim and run one operation; False when there was nothing to run."""
        self._keep_a_spare()
        execution.reap_expired(self.registry, self.store, self._read_heads, self.worker_id)
        record = execution.claim_next(self.store, self.worker_id, self.settings.lease_seconds)
        if record is None:
            return False
        self._run_child(record)
        return True

    def _stop(self, signum: int, _frame: FrameType | None) -> None:
        logger.info("worker %s: signal %d, finishing the running operation", self.worker_id, signum)
        self.stopping.set()

    def _run_child(self, record: OperationRecord) -> None:
        child = self._take_spare(record.id) or _job_process(self.worker_id, record.id)
        logger.info("operation %d: job process %d", record.id, child.pid)
        self._keep_a_spare()  # warm while this job runs: the next claim need not wait for it
        self._end_when_recordable(record, self._supervise(record, child))

    def _keep_a_spare(self) -> None:
        """A job process that has imported everything waits for the next operation's id."""
        if self._spare is None or self._spare.poll() is not None:
            self._spare = _job_process(self.worker_id, None)

    def _take_spare(self, operation_id: int) -> subprocess.Popen[bytes] | None:
        spare, self._spare = self._spare, None
        if spare is None or spare.poll() is not None or spare.stdin is None:
            return None
        try:
            spare.stdin.write(f"{operation_id}\n".encode())
            spare.stdin.close()
        except OSError:
            return None
        return spare

    def _drop_spare(self) -> None:
        if self._spare is not None and self._spare.stdin is not None:
            self._spare.stdin.close()  # it reads EOF and exits
            self._spare.wait()

    def _supervise(self, record: OperationRecord, child: subprocess.Popen[bytes]) -> JobEnd:
        """Heartbeat while the child runs; stop it when it must; say how it ended."""
        started = renewed = time.monotonic()
        stop_deadline: float | None = None
        while True:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=min(self.settings.heartbeat_seconds, 1.0))
            if child.returncode is not None:
                return JobEnd.EXITED
            renewal = self._renew(record)
            if renewal is False or time.monotonic() - renewed > self.settings.lease_seconds:
                return _kill(child, JobEnd.LEASE_LOST)  # another worker may take over now
            if renewal:
                renewed = time.monotonic()
            if self._start_timed_out(record, started):
                return _kill(child, JobEnd.START_TIMEOUT)
            if self.stopping.is_set():
                grace = self.settings.shutdown_grace_seconds
                stop_deadline = stop_deadline or time.monotonic() + grace
                if time.monotonic() >= stop_deadline:
                    return _kill(child, JobEnd.SHUTDOWN)

    def _renew(self, record: OperationRecord) -> bool | None:
        """True: lease renewed; False: it is no longer ours; None: cannot tell right now."""
        try:
            return execution.heartbeat(
                self.store, record.id, self.worker_id, self.settings.lease_seconds
            )
        except CONTROL_DATABASE_TROUBLE as exc:
            self.outage.failed(exc)
            return None

    def _start_timed_out(self, record: OperationRecord, started: float) -> bool:
        if time.monotonic() - started < self.settings.job_start_timeout_seconds:
            return False
        try:
            current = execution.load_operation(self.store, record.id)
        except CONTROL_DATABASE_TROUBLE:
            return False
        return current is not None and current.executing_at is None

    def _end_when_recordable(self, record: OperationRecord, outcome: JobEnd) -> None:
        """`_end_abandoned`, through a control database outage: given up, the operation would
        stay `running` until its lease expired."""
        backoff = Backoff(first=max(self.settings.worker_poll_seconds, 0.1), cap=2.0)
        end = functools.partial(self._end_abandoned, record, outcome)
        until_done(end, UNAVAILABLE, self.stopping, self.outage, backoff)

    def _end_abandoned(self, record: OperationRecord, outcome: JobEnd) -> None:
        """A job that ended without recording its end: failed if it never began, else
        interrupted (the database may be part way)."""
        current = execution.load_operation(self.store, record.id)
        if current is None or current.status != Status.RUNNING:
            return
        never_began = current.executing_at is None and outcome != JobEnd.SHUTDOWN
        if outcome == JobEnd.START_TIMEOUT or never_began:
            execution.fail_before_start(
                self.registry,
                self.store,
                current,
                self.worker_id,
                outcome,
                self._read_heads,
                self.settings.job_start_timeout_seconds,
            )
        else:
            reason = f"The job process stopped ({outcome})."
            execution.interrupt(
                self.registry, self.store, current, reason, self._read_heads, self.worker_id
            )

    def _read_heads(self, database: str) -> list[str] | None:
        return read_heads_in_child(database, self.settings.job_start_timeout_seconds)


def _job_process(worker_id: str, operation_id: int | None) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "service.worker.job", worker_id]
    if operation_id is not None:
        command.append(str(operation_id))
    stdin = subprocess.PIPE if operation_id is None else subprocess.DEVNULL
    return subprocess.Popen(command, stdin=stdin, preexec_fn=_die_with_parent)


def _kill(child: subprocess.Popen[bytes], reason: JobEnd) -> JobEnd:
    child.kill()
    child.wait()
    return reason


def _die_with_parent() -> None:
    """In the child: get SIGKILL if the worker dies, so no job outlives its supervisor."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def run_worker(settings: Settings) -> None:
    Worker(settings).run()
