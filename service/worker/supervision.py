"""Watching one running job: record its events, keep the lease, stop it when it must stop."""

from __future__ import annotations

import collections
import logging
import threading
import time

from service.errors import MigctlError
from service.lifecycle import JobEnd, Status
from service.retrying import Outage
from service.services import execution
from service.services.control import DATABASE_ERRORS
from service.services.execution import (
    FinishedStep,
    JobEndedSilently,
    JobEvent,
    OperationRecord,
    RunningJob,
    Started,
)
from service.services.wiring import Services
from service.settings import Settings

logger = logging.getLogger(__name__)
CONTROL_DATABASE_TROUBLE: tuple[type[Exception], ...] = (MigctlError, *DATABASE_ERRORS)
_TICK_SECONDS = 1.0
# Steps finishing within this time are recorded together: a transaction a step, on the
# control database beside the migrated one, slowed a 200-step upgrade by a tenth.
BATCH_SECONDS = 0.05


class Supervision:
    """One job from its start to its recorded end, or to the reason it was abandoned."""

    def __init__(
        self,
        settings: Settings,
        services: Services,
        worker_id: str,
        stopping: threading.Event,
        outage: Outage,
    ) -> None:
        self.settings, self.services = settings, services
        self.worker_id, self.stopping, self.outage = worker_id, stopping, outage
        self._pending: collections.deque[JobEvent] = collections.deque()
        self._due = 0.0  # when the first pending step must be recorded at the latest
        self._began = False
        self._silent = False

    def watch(self, record: OperationRecord, job: RunningJob) -> JobEnd | None:
        """None once the job's end is recorded; else why the job was abandoned."""
        started = renewed = time.monotonic()
        tried = float("-inf")
        stop_deadline: float | None = None
        try:
            while True:
                alive = self._receive(job)
                if self._flush(record, force=not alive):
                    return None
                if not alive and not job.ended:
                    return JobEnd.EXITED  # it died without its last word
                if not alive:  # its last word waits for the control database to come back
                    if self.stopping.is_set():  # left running: its lease expires, a reaper ends it
                        return None
                    time.sleep(_TICK_SECONDS)
                    continue
                renewal = None
                if time.monotonic() - tried >= self._renew_every:
                    renewal, tried = self._renew(record), time.monotonic()
                if renewal:
                    renewed = time.monotonic()
                if renewal is False or time.monotonic() - renewed > self.settings.lease_seconds:
                    return self._kill(record, job, JobEnd.LEASE_LOST)  # another may take over
                if not self._began and time.monotonic() - started > self._start_timeout:
                    return self._kill(record, job, JobEnd.START_TIMEOUT)
                if self.stopping.is_set():
                    grace = self.settings.shutdown_grace_seconds
                    stop_deadline = stop_deadline or time.monotonic() + grace
                    if time.monotonic() >= stop_deadline:
                        return self._kill(record, job, JobEnd.SHUTDOWN)
        finally:
            job.close()

    @property
    def _renew_every(self) -> float:
        """Twice a heartbeat interval, not at every event: a transaction per step recorded
        slowed a 200-step upgrade's recording behind its job."""
        return self.settings.heartbeat_seconds / 2

    @property
    def _start_timeout(self) -> float:
        return self.settings.job_start_timeout_seconds

    def _receive(self, job: RunningJob) -> bool:
        """Queue the job's next event; False once it ended, reported or not."""
        if job.ended or self._silent:
            return False
        timeout = min(self.settings.heartbeat_seconds, _TICK_SECONDS)
        if self._pending:
            timeout = min(timeout, max(0.0, self._due - time.monotonic()))
        try:
            event = job.next_event(timeout)
        except JobEndedSilently as exc:
            logger.warning("%s", exc)
            self._silent = True
            return False
        if event is not None:
            self._began = self._began or isinstance(event, Started)
            if not self._pending:
                self._due = time.monotonic() + BATCH_SECONDS
            self._pending.append(event)
        return True

    def _flush(self, record: OperationRecord, force: bool = False) -> bool:
        """Record what the job said, in order; True once its end is recorded. Steps wait up
        to BATCH_SECONDS for the ones after them, unless something else is to be said."""
        waiting = all(isinstance(event, FinishedStep) for event in self._pending)
        if waiting and not force and time.monotonic() < self._due:
            return False
        while self._pending:
            steps = _leading_steps(self._pending)
            try:
                status = self._record(record, steps)
            except CONTROL_DATABASE_TROUBLE as exc:  # keep them, try again at the next tick
                self.outage.failed(exc)
                self._due = time.monotonic() + _TICK_SECONDS
                return False
            self.outage.recovered()
            for _ in range(len(steps) or 1):
                self._pending.popleft()
            if status is not None:
                return True
        return False

    def _record(self, record: OperationRecord, steps: list[FinishedStep]) -> Status | None:
        registry, store = self.services.registry, self.services.store
        if steps:
            execution.record_steps(registry, store, record, steps)
            return None
        return execution.record_event(registry, store, record, self.worker_id, self._pending[0])

    def _kill(self, record: OperationRecord, job: RunningJob, reason: JobEnd) -> JobEnd:
        """Stop the job; the steps it reported first are recorded (they may have committed)."""
        job.kill()
        self._flush(record, force=True)
        return reason

    def _renew(self, record: OperationRecord) -> bool | None:
        """True: lease renewed; False: it is no longer ours; None: cannot tell right now."""
        try:
            return execution.heartbeat(
                self.services.store, record.id, self.worker_id, self.settings.lease_seconds
            )
        except CONTROL_DATABASE_TROUBLE as exc:
            self.outage.failed(exc)
            return None


def _leading_steps(pending: collections.deque[JobEvent]) -> list[FinishedStep]:
    steps = []
    for event in pending:
        if not isinstance(event, FinishedStep):
            break
        steps.append(event)
    return steps
