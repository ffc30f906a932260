"""Worker use cases: claim, heartbeat, run a claimed operation, finish it, reap lost ones."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping
from typing import Any

from service.errors import DatabaseNotFoundError, JobStartError, MigctlError
from service.lifecycle import JobEnd, Status
from service.migrator.runner import FinishedStep, Job, Listener, run_job
from service.secrets import Redactor
from service.services.redaction import redacted_error
from service.services.registry import Registry
from service.store import audit
from service.store import operations as ops
from service.store.audit import AuditEvent
from service.store.db import ControlStore, utcnow
from service.store.notifications import QueueListener as QueueListener
from service.store.operations import OperationRecord as OperationRecord
from service.store.operations import StepRecord

logger = logging.getLogger(__name__)
WORKER = "worker"
HeadsReader = Callable[[str], "list[str] | None"]


def claim_next(store: ControlStore, worker_id: str, lease_seconds: float) -> OperationRecord | None:
    """Mark the next claimable operation running for this worker; audit `operation.started`."""
    with store.transaction() as connection:
        record = ops.claim_next(
            connection, worker_id, utcnow(), dt.timedelta(seconds=lease_seconds)
        )
        if record is not None:
            audit.append(connection, _event(record, "operation.started", Status.RUNNING, worker_id))
    return record


def heartbeat(store: ControlStore, operation_id: int, worker_id: str, lease_seconds: float) -> bool:
    with store.transaction() as connection:
        lease = dt.timedelta(seconds=lease_seconds)
        return ops.heartbeat(connection, operation_id, worker_id, utcnow(), lease)


def run_claimed(
    registry: Registry,
    store: ControlStore,
    operation_id: int,
    worker_id: str,
    start_timeout_seconds: float,
) -> Status | None:
    """Run a claimed operation to its end in this process; its final status, or None when
    it is no longer this worker's to run."""
    with store.transaction() as connection:
        record = ops.get(connection, operation_id)
    if record is None or record.status != Status.RUNNING or record.worker_id != worker_id:
        return None
    managed = registry.get(record.database)
    job = Job(
        database=managed.database,
        action=record.action,
        revision=record.revision,
        purge=record.purge,
        expected_current=None
        if record.expected_current is None
        else tuple(record.expected_current),
        # Shorter than the worker's start timeout, so a busy lock is reported as such.
        lock_wait_seconds=start_timeout_seconds / 2,
    )
    recorder = _Recorder(store, record, worker_id, managed.redactor)
    try:
        run_job(managed.scripts, managed.graph(), job, recorder)
    except MigctlError as exc:
        failed, heads = Status.FAILED, heads_now(registry)
        return finish(registry, store, record, worker_id, failed, heads, error=exc)
    return finish(registry, store, record, worker_id, Status.SUCCEEDED, heads_now(registry))


class _Recorder(Listener):
    """Writes the plan made under the lock, then each step, to the control database."""

    def __init__(
        self, store: ControlStore, record: OperationRecord, worker_id: str, redactor: Redactor
    ) -> None:
        self.store, self.record, self.worker_id = store, record, worker_id
        self.redactor = redactor
        super().__init__(on_start=self._started, on_step=self._stepped)

    def _started(self, heads: tuple[str, ...], planned: list[dict[str, str]]) -> None:
        values = {"heads_before": list(heads), "planned_steps": planned, "executing_at": utcnow()}
        with self.store.transaction() as connection:
            ops.update_running(connection, self.record.id, self.worker_id, values)

    def _stepped(self, step: FinishedStep) -> None:
        with self.store.transaction() as connection:
            ops.add_step(connection, self.record.id, _step_record(step, self.redactor))


def _step_record(step: FinishedStep, redactor: Redactor) -> StepRecord:
    """The step as recorded: its SQL may quote a secret a revision wrote into a statement."""
    sql = "".join(f"{statement};\n" for statement in step.statements)
    return StepRecord(
        position=step.position,
        revision=step.revision,
        direction=step.direction,
        started_at=step.started_at,
        duration_ms=step.duration_ms,
        statement_count=len(step.statements),
        sql=redactor.redact(sql),
        outcome=step.outcome,
    )


def finish(
    registry: Registry,
    store: ControlStore,
    record: OperationRecord,
    worker_id: str,
    status: Status,
    read_heads: HeadsReader,
    error: MigctlError | None = None,
) -> Status | None:
    """End a running operation with the heads the database really has now."""
    heads_after = read_heads(record.database)
    if error is not None:  # its message and SQL may quote a secret, whole or cut short
        error = redacted_error(error, _redactor(registry, record.database))
    values: dict[str, Any] = {"finished_at": utcnow(), "heads_after": heads_after}
    if error is not None:
        values.update(_error_values(error))
    details = {"heads_after": heads_after, **({"error": error.detail} if error else {})}
    with store.transaction() as connection:
        moved = ops.transition(
            connection,
            record.id,
            from_status=Status.RUNNING,
            to_status=status,
            worker_id=worker_id,
            values=values,
        )
        if moved:
            _reconcile_steps(connection, registry, record, heads_after)
            audit.append(
                connection, _event(record, f"operation.{status}", status, worker_id, details)
            )
    return status if moved else None


def _reconcile_steps(
    connection: Any, registry: Registry, record: OperationRecord, heads: list[str] | None
) -> None:
    """Mark the steps the database does not show as rolled back (unknown heads: leave them)."""
    if heads is None:
        return
    try:
        graph = registry.get(record.database).graph()
    except MigctlError:
        return
    if not graph.unknown(heads):
        ops.mark_rolled_back(connection, record.id, set(graph.applied(heads)))


def interrupt(
    registry: Registry,
    store: ControlStore,
    record: OperationRecord,
    reason: str,
    read_heads: HeadsReader,
    actor: str = WORKER,
) -> bool:
    """Mark a running operation whose worker or job died `interrupted`, never to be retried."""
    heads_after = read_heads(record.database)
    values = {
        "finished_at": utcnow(),
        "heads_after": heads_after,
        "error_code": str(Status.INTERRUPTED),
        "error_type": "Interrupted",
        "error_message": reason,
    }
    with store.transaction() as connection:
        moved = ops.transition(
            connection,
            record.id,
            from_status=Status.RUNNING,
            to_status=Status.INTERRUPTED,
            values=values,
        )
        if moved:
            _reconcile_steps(connection, registry, record, heads_after)
            details = {"reason": reason, "heads_after": heads_after}
            event = _event(record, "operation.interrupted", Status.INTERRUPTED, actor, details)
            audit.append(connection, event)
    return moved


def reap_expired(
    registry: Registry, store: ControlStore, read_heads: HeadsReader, reaper: str
) -> list[int]:
    """End every running operation whose lease expired (its worker died): `interrupted`,
    or `failed` when its job had not begun migrating (nothing changed)."""
    with store.transaction() as connection:
        expired = ops.expired(connection, utcnow())
    reaped = []
    for record in expired:
        if record.executing_at is None:
            ended = fail_before_start(
                registry, store, record, record.worker_id or "", JobEnd.LEASE_LOST, read_heads
            )
            if ended is not None:
                reaped.append(record.id)
        elif interrupt(registry, store, record, _LEASE_EXPIRED, read_heads, actor=reaper):
            reaped.append(record.id)
    return reaped


_LEASE_EXPIRED = "The worker's lease expired: it died or hung."


def heads_now(registry: Registry) -> HeadsReader:
    """Reads heads in this process (through env.py once): for the job process only.

    The worker itself must not run a project's env.py (it may hang or exit): it passes a
    reader that asks a child process instead.
    """

    def read(name: str) -> list[str] | None:
        managed = registry.get(name)
        try:
            return list(managed.state.current_heads(managed.graph()))
        except MigctlError as exc:
            detail = managed.redactor.redact(exc.detail)
            logger.warning("cannot read heads of %s: %s", name, detail)
            return None

    return read


def _redactor(registry: Registry, name: str) -> Redactor:
    """The database's redactor; every secret's when it left the configuration meanwhile."""
    try:
        return registry.get(name).redactor
    except DatabaseNotFoundError:
        return registry.redactor


def _error_values(error: MigctlError) -> dict[str, Any]:
    context = error.context
    return {
        "error_code": error.code,
        "error_type": context.get("error_type") or type(error).__name__,
        "error_message": error.detail,
        "failed_revision": context.get("revision"),
        "failed_sql": context.get("sql"),
    }


def _event(
    record: OperationRecord,
    action: str,
    outcome: str,
    actor: str,
    details: Mapping[str, Any] | None = None,
) -> AuditEvent:
    return AuditEvent(
        actor=actor,
        action=action,
        outcome=outcome,
        occurred_at=utcnow(),
        database=record.database,
        operation_id=record.id,
        details={"requested_by": record.actor, **(details or {})},
    )


def load_operation(store: ControlStore, operation_id: int) -> OperationRecord | None:
    with store.transaction() as connection:
        return ops.get(connection, operation_id)


def fail_before_start(
    registry: Registry,
    store: ControlStore,
    record: OperationRecord,
    worker_id: str,
    reason: JobEnd | str,
    read_heads: HeadsReader,
    start_timeout_seconds: float = 0,
) -> Status | None:
    """The job never began migrating (env.py hung at import, or its process died first)."""
    detail = (
        f"The job did not start within {start_timeout_seconds:g} s (a hanging import in env.py?)"
        if reason == JobEnd.START_TIMEOUT
        else f"The job process ended before migrating ({reason})."
    )
    error = JobStartError(detail)
    return finish(registry, store, record, worker_id, Status.FAILED, read_heads, error=error)
