"""Worker use cases: claim, start a job in the project's runner, record what it reports,
end operations, and reap the ones whose worker died."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from service import metrics
from service.errors import DatabaseNotFoundError, JobStartError, MigctlError
from service.lifecycle import JobEnd, Status, StepOutcome
from service.migrator.jobs import (
    FinishedStep,
    Job,
    JobEndedSilently,
    JobEvent,
    RunningJob,
    Started,
    start_job,
)
from service.secrets import Redactor
from service.services import events
from service.services.approvals import check_unchanged
from service.services.redaction import redacted_error
from service.services.registry import Registry
from service.services.safety.checksums import record_applied
from service.store import audit
from service.store import operations as ops
from service.store.audit import AuditEvent
from service.store.db import ControlStore, utcnow
from service.store.notifications import QueueListener as QueueListener
from service.store.operations import OperationRecord as OperationRecord
from service.store.operations import StepRecord

logger = logging.getLogger(__name__)
WORKER = "worker"
__all__ = ["FinishedStep", "JobEndedSilently", "JobEvent", "QueueListener", "RunningJob", "Started"]


def claim_next(store: ControlStore, worker_id: str, lease_seconds: float) -> OperationRecord | None:
    """Mark the next claimable operation running for this worker; audit `operation.started`."""
    with store.transaction() as connection:
        record = ops.claim_next(
            connection, worker_id, utcnow(), dt.timedelta(seconds=lease_seconds)
        )
        if record is not None:
            event = _event(record, "operation.started", Status.RUNNING, worker_id)
            audit.append(connection, event)
            events.emit(connection, record.id, events.status_kind(Status.RUNNING))
    return record


def heartbeat(store: ControlStore, operation_id: int, worker_id: str, lease_seconds: float) -> bool:
    with store.transaction() as connection:
        lease = dt.timedelta(seconds=lease_seconds)
        return ops.heartbeat(connection, operation_id, worker_id, utcnow(), lease)


def begin(registry: Registry, record: OperationRecord, lock_wait_seconds: float) -> RunningJob:
    """Start the claimed operation's job in its project's runner (MigctlError if it cannot).

    An approved operation runs only what was approved: the same plan from the same heads
    (checked again under the lock, as expected_current) and the same revision files.
    """
    check_unchanged(registry, record)
    managed = registry.get(record.database)
    table = managed.state.version_table
    expected = record.expected_current
    if expected is None and record.approval_binding is not None:
        expected = list(record.approval_binding["heads"])
    job = Job(
        operation_id=record.id,
        database=managed.database,
        action=record.action,
        revision=record.revision,
        purge=record.purge,
        expected_current=None if expected is None else tuple(expected),
        lock_wait_seconds=lock_wait_seconds,
        version_table=None if table is None else (table.name, table.schema),
    )
    return start_job(managed.scripts, managed.graph(), job)


def record_event(
    registry: Registry,
    store: ControlStore,
    record: OperationRecord,
    worker_id: str,
    event: JobEvent,
) -> Status | None:
    """Write what the job reported; the final status once it has ended, else None.

    Raises the control database's errors: the caller keeps the event and tries again.
    """
    if isinstance(event, Started):
        values = {
            "heads_before": list(event.heads),
            "planned_steps": event.planned,
            "executing_at": utcnow(),
        }
        with store.transaction() as connection:
            if ops.update_running(connection, record.id, worker_id, values):
                events.steps_moved(connection, record.id)
        return None
    if isinstance(event, FinishedStep):
        record_steps(registry, store, record, [event])
        return None
    status = Status.SUCCEEDED if event.error is None else Status.FAILED
    ended = finish(registry, store, record, worker_id, status, event.heads_after, event.error)
    return ended or status


def record_steps(
    registry: Registry, store: ControlStore, record: OperationRecord, done: list[FinishedStep]
) -> None:
    """Write steps the job reported, with their events, in one transaction: one a step
    (eight statements and a commit) took CPU from the steps themselves."""
    redactor = _redactor(registry, record.database)
    steps = [_step_record(event, redactor) for event in done]
    with store.transaction() as connection:
        ops.add_steps(connection, record.id, steps)
        next_begins = steps[-1].outcome != StepOutcome.FAILED  # a failed step is the last
        events.steps_moved(connection, record.id, [_step_summary(s) for s in steps], next_begins)
    for step in steps:
        metrics.STEP_DURATION.labels(step.direction).observe(step.duration_ms / 1000)


def _step_summary(step: StepRecord) -> dict[str, Any]:
    return {
        "position": step.position,
        "revision": step.revision,
        "direction": step.direction,
        "duration_ms": step.duration_ms,
        "statement_count": step.statement_count,
        "outcome": step.outcome,
    }


def _step_record(step: FinishedStep, redactor: Redactor) -> StepRecord:
    """The step as recorded: its SQL may quote a secret a revision wrote into a statement."""
    sql = "".join(f"{statement};\n" for statement in step.statements)
    return StepRecord(
        position=step.position,
        revision=step.revision,
        direction=step.direction,
        started_at=step.started_at,
        duration_ms=step.duration_ms,
        statement_count=step.statement_count,
        sql=redactor.redact(sql),
        outcome=step.outcome,
    )


def finish(
    registry: Registry,
    store: ControlStore,
    record: OperationRecord,
    worker_id: str,
    status: Status,
    heads_after: list[str] | None,
    error: MigctlError | None = None,
) -> Status | None:
    """End a running operation with the heads the database has; None if no longer ours."""
    if error is not None:  # its message and SQL may quote a secret, whole or cut short
        error = redacted_error(error, _redactor(registry, record.database))
    values: dict[str, Any] = {"finished_at": utcnow(), "heads_after": heads_after}
    if error is not None:
        values.update(_error_values(error))
    details = {"heads_after": heads_after, **({"error": error.detail} if error else {})}
    if error is not None and "blockers" in error.context:  # a lock-timeout: who held the locks
        details["blockers"] = error.context["blockers"]
    if error is not None and "committed_statements" in error.context:
        details["committed_statements"] = error.context["committed_statements"]
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
            _record_checksums(connection, registry, record, heads_after)
            event = _event(record, f"operation.{status}", status, worker_id, details)
            audit.append(connection, event)
            events.emit(connection, record.id, events.status_kind(status))
    if moved:
        _observe_end(record, status)
    return status if moved else None


def _observe_end(record: OperationRecord, status: Status) -> None:
    if record.started_at is not None:
        seconds = (utcnow() - record.started_at).total_seconds()
        metrics.OPERATION_DURATION.labels(record.action, str(status)).observe(seconds)


def _record_checksums(
    connection: sa.Connection, registry: Registry, record: OperationRecord, heads: list[str] | None
) -> None:
    """The ledger learns the files of what the operation applied (heads_before as run)."""
    ran = ops.get(connection, record.id) or record
    try:
        managed = registry.get(record.database)
        record_applied(connection, managed, (ran.heads_before, heads), record.actor, record.id)
    except MigctlError as exc:  # the project cannot be read now: /verify says unrecorded
        logger.warning("checksums of operation %s not recorded: %s", record.id, exc.code)


def _reconcile_steps(
    connection: sa.Connection, registry: Registry, record: OperationRecord, heads: list[str] | None
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
    worker: str = WORKER,
) -> bool:
    """Mark a running operation whose worker or job died `interrupted`, never to be retried."""
    heads_after = read_heads(registry, record.database)
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
            event = _event(record, "operation.interrupted", Status.INTERRUPTED, worker, details)
            audit.append(connection, event)
            events.emit(connection, record.id, events.status_kind(Status.INTERRUPTED))
    if moved:
        _observe_end(record, Status.INTERRUPTED)
    return moved


def reap_expired(registry: Registry, store: ControlStore, reaper: str) -> list[int]:
    """End every running operation whose lease expired (its worker died): `interrupted`,
    or `failed` when its job had not begun migrating (nothing changed)."""
    with store.transaction() as connection:
        expired = ops.expired(connection, utcnow())
    reaped = []
    for record in expired:
        if record.executing_at is None:
            worker = record.worker_id or ""
            if fail_before_start(registry, store, record, worker, JobEnd.LEASE_LOST) is not None:
                reaped.append(record.id)
        elif interrupt(registry, store, record, _LEASE_EXPIRED, worker=reaper):
            reaped.append(record.id)
    return reaped


_LEASE_EXPIRED = "The worker's lease expired: it died or hung."


def read_heads(registry: Registry, name: str) -> list[str] | None:
    """The database's heads, read by its project's runner (bounded by the runner timeout)."""
    managed = registry.get(name)
    try:
        return list(managed.state.current_heads(managed.graph()))
    except MigctlError as exc:
        logger.warning("cannot read heads of %s: %s", name, managed.redactor.redact(exc.detail))
        return None


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
        "error_message": _with_committed(error.detail, context.get("committed_statements")),
        "failed_revision": context.get("revision"),
        "failed_sql": context.get("sql"),
    }


def _with_committed(message: str, committed: list[str] | None) -> str:
    """On MySQL and MariaDB each DDL statement commits: say what of the failed step stays done,
    so the operator knows what to clean up (None: a backend whose step rolled back whole)."""
    if committed is None:
        return message
    if not committed:
        return f"{message}\nNone of the failed step's statements had committed."
    shown = "".join(f"{statement};\n" for statement in committed)
    return (
        f"{message}\nAlready committed by the failed step (MySQL and MariaDB commit DDL as it "
        f"goes; undo these before retrying):\n{shown}"
    )


def _event(
    record: OperationRecord,
    action: str,
    outcome: str,
    worker: str,
    details: Mapping[str, Any] | None = None,
) -> AuditEvent:
    """An event of the operation's life: `actor` is who asked for it, `worker` who ran it."""
    return AuditEvent(
        actor=record.actor,
        on_behalf_of=record.on_behalf_of,
        action=action,
        outcome=outcome,
        occurred_at=utcnow(),
        database=record.database,
        operation_id=record.id,
        request_id=record.request_id,
        worker=worker,
        details=dict(details or {}),
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
    start_timeout_seconds: float = 0,
) -> Status | None:
    """The job never began migrating (env.py hung at import, or its process died first)."""
    detail = (
        f"The job did not start within {start_timeout_seconds:g} s (a hanging import in env.py?)"
        if reason == JobEnd.START_TIMEOUT
        else f"The job process ended before migrating ({reason})."
    )
    heads = read_heads(registry, record.database)
    return finish(registry, store, record, worker_id, Status.FAILED, heads, JobStartError(detail))


def fail_to_start(
    registry: Registry,
    store: ControlStore,
    record: OperationRecord,
    worker_id: str,
    error: MigctlError,
) -> Status | None:
    """The runner could not start the job (project unavailable, runner down): nothing ran."""
    heads = read_heads(registry, record.database)
    return finish(registry, store, record, worker_id, Status.FAILED, heads, error)
