"""Operation events: what a UI or a pipeline needs at each change (status, step, counts, ETA)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from service.lifecycle import StepOutcome
from service.store import events as store
from service.store import operations as ops
from service.store.db import utcnow
from service.store.operations import OperationRecord

QUEUED = "operation.queued"
STEP_STARTED = "step.started"
STEP_FINISHED = "step.finished"


def status_kind(status: str) -> str:
    return f"operation.{status}"


def emit(
    connection: sa.Connection,
    operation_id: int,
    kind: str,
    step: Mapping[str, Any] | None = None,
) -> None:
    """Append an event of the operation as it is now in this transaction."""
    record = ops.get(connection, operation_id)
    if record is None:
        return
    payload = {**snapshot(connection, record), "step": dict(step) if step else None}
    store.append(
        connection,
        operation_id=record.id,
        database=record.database,
        kind=kind,
        payload=payload,
        now=utcnow(),
    )


def snapshot(connection: sa.Connection, record: OperationRecord) -> dict[str, Any]:
    """Status, counts and the estimated seconds left (None when a remaining revision has
    never run on any database, or nothing is left)."""
    done = _done(connection, record.id)
    planned = [(s["revision"], s["direction"]) for s in record.planned_steps]
    remaining = planned[done:]
    means = store.mean_step_seconds(connection, remaining)
    known = remaining and all(step in means for step in remaining)
    return {
        "operation_id": record.id,
        "database": record.database,
        "action": record.action,
        "revision": record.revision,
        "status": record.status,
        "done": done,
        "total": len(planned),
        "eta_seconds": round(sum(means[s] for s in remaining), 3) if known else None,
        "error": _error(record),
    }


def next_step(connection: sa.Connection, operation_id: int) -> dict[str, Any] | None:
    """The planned step that runs next (steps run one after the other), if any."""
    record = ops.get(connection, operation_id)
    if record is None:
        return None
    done = _done(connection, operation_id)
    if done >= len(record.planned_steps):
        return None
    return {"position": done + 1, **record.planned_steps[done]}


def _done(connection: sa.Connection, operation_id: int) -> int:
    """Steps that ran to their end (a failed step did not)."""
    steps = ops.list_steps(connection, operation_id)
    return sum(1 for step in steps if step.outcome != StepOutcome.FAILED)


def _error(record: OperationRecord) -> dict[str, Any] | None:
    if record.error_code is None:
        return None
    return {
        "code": record.error_code,
        "message": record.error_message,
        "revision": record.failed_revision,
        "sql": record.failed_sql,
    }
