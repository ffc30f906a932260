"""The worker loop: claim an operation, run it in its project's runner, record, reap, repeat."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable
from types import FrameType

from service import logcontext
from service.errors import MigctlError
from service.lifecycle import JobEnd, Status
from service.retrying import Backoff, Outage, until_done
from service.services import approvals, execution, rollout_runs
from service.services.control import DATABASE_ERRORS, UNAVAILABLE
from service.services.execution import OperationRecord, QueueListener
from service.services.wiring import Services, build_services
from service.settings import Settings
from service.worker.deliveries import Courier
from service.worker.presence import Presence
from service.worker.refresher import StateRefresher
from service.worker.signals import set_soon
from service.worker.supervision import Supervision

logger = logging.getLogger(__name__)
# Whatever the control database or its driver raise, the worker waits and tries again.
CONTROL_DATABASE_TROUBLE: tuple[type[Exception], ...] = (MigctlError, *DATABASE_ERRORS)
WARM_UP_SECONDS = 20.0
SLOT_POLL_SECONDS = 0.1
ROLLOUT_SECONDS = 0.2  # how often a worker looks for rollouts with a free slot
# A rollout operation's end advances its rollout at once, waiting this long for another
# worker's advance to finish (it may not have seen this end) before leaving it to the loop.
ADVANCE_PATIENCE_SECONDS = 0.2


class Worker:
    """Runs queued operations until SIGTERM, up to `concurrency` at once (of different
    databases); each in a process of its own, watched by a thread of this one."""

    def __init__(
        self, settings: Settings, services: Services | None = None, concurrency: int | None = None
    ) -> None:
        self.settings = settings
        self.services = services or build_services(settings)
        self.registry, self.store = self.services.registry, self.services.store
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.stopping = threading.Event()
        self.outage = Outage(logger, f"worker {self.worker_id}: control database")
        self.concurrency = concurrency or settings.worker_concurrency
        self._running: dict[int, threading.Thread] = {}
        self._running_lock = threading.Lock()
        self._finishing: set[int] = set()  # their job ended; they advance their rollout
        self._advancing = threading.Lock()  # rollout leases are per worker, not per thread
        self._rollouts_seen = 0.0

    def run(self) -> None:
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        logger.info("worker %s started (%d at once)", self.worker_id, self.concurrency)
        poll = self.settings.worker_poll_seconds
        with (
            Presence(self.store, self.worker_id, poll),
            StateRefresher(self.services, self.worker_id),
            QueueListener(self.store) as listener,
            self._courier(),
        ):
            self._warm()  # seen (alive) meanwhile: warming may take seconds per project
            while not self.stopping.is_set():
                if not self._attempt():
                    # A job ending frees a slot: look again soon while jobs run.
                    listener.wait(
                        min(poll, SLOT_POLL_SECONDS) if self._busy() else poll, self.stopping
                    )
            self._join_running()
        self.services.close()
        logger.info("worker %s stopped", self.worker_id)

    def _courier(self) -> contextlib.AbstractContextManager[object]:
        """Webhook deliveries, when a webhooks file is configured."""
        hooks = self.services.webhooks
        return Courier(self.store, hooks, self.stopping) if hooks else contextlib.nullcontext()

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
        """Reap, then claim operations while a slot is free; False when it claimed none."""
        execution.reap_expired(self.registry, self.store, self.worker_id)
        approvals.expire_overdue(self.store)
        self._advance_rollouts()
        claimed = False
        while self._free_slots() and not self.stopping.is_set():
            record = execution.claim_next(self.store, self.worker_id, self.settings.lease_seconds)
            if record is None:
                break
            self._start(record)
            claimed = True
        return claimed

    def _advance_rollouts(self) -> None:
        if time.monotonic() - self._rollouts_seen < ROLLOUT_SECONDS:
            return
        if not self._advancing.acquire(blocking=False):
            return  # a thread is advancing one at this moment: the next turn looks again
        try:
            self._rollouts_seen = time.monotonic()
            lease = self.settings.lease_seconds
            rollout_runs.advance_all(self.services, self.worker_id, lease)
        finally:
            self._advancing.release()

    def _advance_after(self, rollout_id: int) -> None:
        """Queue the rollout's next operation into the slot just freed, without waiting for
        the loop's next look (which cost a rollout of 200 up to 0.3 s a database)."""
        deadline = time.monotonic() + ADVANCE_PATIENCE_SECONDS
        lease = self.settings.lease_seconds
        queued: int | None = None
        while not self.stopping.is_set():
            with self._advancing:
                queued = rollout_runs.advance(self.services, self.worker_id, rollout_id, lease)
            if queued is not None or time.monotonic() >= deadline:
                break
            time.sleep(SLOT_POLL_SECONDS / 4)  # another worker's advance may not count us
        if queued is None:
            self._rollouts_seen = 0.0  # the loop's next turn tries again

    def _free_slots(self) -> int:
        """Slots without a job: a thread still advancing its rollout holds none (it is kept
        in `_running` all the same, so that shutdown waits for it)."""
        with self._running_lock:
            for operation_id in [i for i, t in self._running.items() if not t.is_alive()]:
                del self._running[operation_id]
                self._finishing.discard(operation_id)
            return self.concurrency - len(self._running) + len(self._finishing)

    def _busy(self) -> bool:
        return self._free_slots() < self.concurrency

    def _start(self, record: OperationRecord) -> None:
        thread = threading.Thread(
            target=self._run_guarded, args=(record,), name=f"operation-{record.id}", daemon=True
        )
        with self._running_lock:
            self._running[record.id] = thread
        thread.start()

    def _run_guarded(self, record: OperationRecord) -> None:
        try:
            self._run(record)
        except CONTROL_DATABASE_TROUBLE as exc:  # its lease expires; a reaper ends it
            self.outage.failed(exc)
        except Exception:  # a bug: never let it take the other slots down silently
            logger.exception("operation %d: its supervision failed", record.id)
        else:
            if record.rollout_id is not None:
                self._next_of_rollout(record.id, record.rollout_id)
                return
        self._rollouts_seen = 0.0  # the loop's next turn looks at the rollouts

    def _next_of_rollout(self, operation_id: int, rollout_id: int) -> None:
        with self._running_lock:
            self._finishing.add(operation_id)  # this slot may take the operation queued next
        try:
            self._advance_after(rollout_id)
        except CONTROL_DATABASE_TROUBLE as exc:
            self.outage.failed(exc)
            self._rollouts_seen = 0.0
        except Exception:
            logger.exception(
                "rollout %d: advancing it after operation %d failed", rollout_id, operation_id
            )
            self._rollouts_seen = 0.0

    def _join_running(self) -> None:
        with self._running_lock:
            threads = list(self._running.values())
        for thread in threads:  # each finishes, or stops its job after the grace period
            thread.join()

    def _run(self, record: OperationRecord) -> None:
        context = {"operation_id": record.id, "database": record.database, "actor": record.actor}
        with logcontext.bound(**context):  # every line about it names the operation
            self._run_bound(record)

    def _run_bound(self, record: OperationRecord) -> None:
        # Shorter than the start timeout, so a busy lock is reported as such.
        lock_wait = self.settings.job_start_timeout_seconds / 2
        try:
            job = execution.begin(self.registry, record, lock_wait)
        except MigctlError as exc:
            logger.warning("operation %d could not start: %s", record.id, exc.detail)
            fail = functools.partial(
                execution.fail_to_start, self.registry, self.store, record, self.worker_id, exc
            )
            self._until_recorded(fail)
            return
        logger.info("operation %d: job process %d", record.id, job.pid)
        supervision = Supervision(
            self.settings, self.services, self.worker_id, self.stopping, self.outage
        )
        outcome = supervision.watch(record, job)
        if outcome is not None:
            self._end_when_recordable(record, outcome)

    def _warm(self) -> None:
        """Load each project in its runner now, so that a first job starts at once."""
        deadline = time.monotonic() + WARM_UP_SECONDS
        for managed in self.registry.all():
            if time.monotonic() > deadline or self.stopping.is_set():
                return  # the rest start with their first job
            try:
                managed.graph()
            except MigctlError as exc:
                logger.warning("project of %s does not load: %s", managed.database.name, exc.detail)

    def _stop(self, signum: int, _frame: FrameType | None) -> None:
        logger.info("worker %s: signal %d, finishing the running operation", self.worker_id, signum)
        set_soon(self.stopping)

    def _end_when_recordable(self, record: OperationRecord, outcome: JobEnd) -> None:
        """`_end_abandoned`, through a control database outage: given up, the operation would
        stay `running` until its lease expired."""
        self._until_recorded(functools.partial(self._end_abandoned, record, outcome))

    def _until_recorded(self, action: Callable[[], object]) -> None:
        backoff = Backoff(first=max(self.settings.worker_poll_seconds, 0.1), cap=2.0)
        until_done(action, UNAVAILABLE, self.stopping, self.outage, backoff)

    def _end_abandoned(self, record: OperationRecord, outcome: JobEnd) -> None:
        """A job that ended without its end recorded: failed if it never began, else
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
                self.settings.job_start_timeout_seconds,
            )
        else:
            reason = f"The job process stopped ({outcome})."
            execution.interrupt(self.registry, self.store, current, reason, self.worker_id)


def run_worker(settings: Settings, concurrency: int | None = None) -> None:
    Worker(settings, concurrency=concurrency).run()
