"""Operation events: what a UI or a pipeline needs at each change (status, step, counts, ETA)."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from service.lifecycle import StepOutcome
from service.store import events as store
from service.store import operations as ops
from service.store.db import utcnow
from service.store.operations import OperationRecord

_MEANS_KEPT = 256  # operations whose step estimates a process keeps
_MEANS: dict[tuple[str, int], dict[tuple[str, str], float]] = {}
_UNKNOWN: dict[tuple[str, int], set[tuple[str, str]]] = {}  # steps that had never run when read
_MEANS_LOCK = threading.Lock()

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
    _append(connection, record, kind, payload, utcnow())


def steps_moved(
    connection: sa.Connection,
    operation_id: int,
    finished: Mapping[str, Any] | None,
    next_begins: bool = True,
) -> None:
    """A step finished (if given) and, steps running back to back, the next one began (not
    after a failed step: it was the last to run); both from one read of the operation."""
    record = ops.get(connection, operation_id)
    if record is None:
        return
    state = snapshot(connection, record)
    now = utcnow()
    if finished is not None:
        _append(connection, record, STEP_FINISHED, {**state, "step": dict(finished)}, now)
    if next_begins and state["done"] < state["total"]:
        following = {"position": state["done"] + 1, **record.planned_steps[state["done"]]}
        _append(connection, record, STEP_STARTED, {**state, "step": following}, now)


def _append(
    connection: sa.Connection,
    record: OperationRecord,
    kind: str,
    payload: dict[str, Any],
    now: dt.datetime,
) -> None:
    store.append(
        connection,
        operation_id=record.id,
        database=record.database,
        kind=kind,
        payload=payload,
        now=now,
    )


def snapshot(connection: sa.Connection, record: OperationRecord) -> dict[str, Any]:
    """Status, counts and the estimated seconds left (None when a remaining revision has
    never run on any database, or nothing is left)."""
    done = ops.count_steps(connection, record.id, excluding=StepOutcome.FAILED)
    planned = [(s["revision"], s["direction"]) for s in record.planned_steps]
    remaining = planned[done:]
    means = _means(connection, record.id, planned)
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


def _means(
    connection: sa.Connection, operation_id: int, planned: list[tuple[str, str]]
) -> dict[tuple[str, str], float]:
    """The past durations of an operation's steps, read once per operation and process: an
    estimate need not follow every step, and reading them per step slowed a 200-step
    upgrade's recording behind its job (4 s of backlog)."""
    key = (connection.engine.url.render_as_string(), operation_id)  # ids are per control db
    with _MEANS_LOCK:
        means = _MEANS.get(key)
    if means is None or not set(planned) <= means.keys() | _UNKNOWN.get(key, set()):
        means = store.mean_step_seconds(connection, planned)
        with _MEANS_LOCK:
            _MEANS[key] = means
            _UNKNOWN[key] = set(planned) - means.keys()
            while len(_MEANS) > _MEANS_KEPT:
                evicted = next(iter(_MEANS))
                del _MEANS[evicted]
                _UNKNOWN.pop(evicted, None)
    return means


def _error(record: OperationRecord) -> dict[str, Any] | None:
    if record.error_code is None:
        return None
    return {
        "code": record.error_code,
        "message": record.error_message,
        "revision": record.failed_revision,
        "sql": record.failed_sql,
    }
