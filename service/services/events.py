"""Operation events: what a UI or a pipeline needs at each change (status, step, counts, ETA)."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Mapping, Sequence
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
    finished: Sequence[Mapping[str, Any]] = (),
    next_begins: bool = True,
) -> None:
    """Steps finished (recorded in this transaction, in order) and, steps running back to
    back, the next one began after each (not after a failed step: it was the last to run);
    all from one read of the operation, in one insert."""
    record = ops.get(connection, operation_id)
    if record is None:
        return
    now = utcnow()
    done = ops.count_steps(connection, record.id, excluding=StepOutcome.FAILED)
    done -= sum(step["outcome"] != StepOutcome.FAILED for step in finished)
    planned = _planned(record)
    means = _means(connection, record.id, planned)
    new: list[store.NewEvent] = []
    for position, step in enumerate(finished, start=1):
        done += step["outcome"] != StepOutcome.FAILED
        state = _progress(record, planned, done, means)
        new.append(_new(record, STEP_FINISHED, {**state, "step": dict(step)}, now))
        if position < len(finished) and step["outcome"] != StepOutcome.FAILED:
            new.extend(_began(record, state, now))
    if next_begins:
        new.extend(_began(record, _progress(record, planned, done, means), now))
    store.append_many(connection, new)


def _began(
    record: OperationRecord, state: dict[str, Any], now: dt.datetime
) -> list[store.NewEvent]:
    if state["done"] >= state["total"]:
        return []
    following = {"position": state["done"] + 1, **record.planned_steps[state["done"]]}
    return [_new(record, STEP_STARTED, {**state, "step": following}, now)]


def _new(
    record: OperationRecord, kind: str, payload: dict[str, Any], now: dt.datetime
) -> store.NewEvent:
    return store.NewEvent(record.id, record.database, kind, payload, now)


def _append(
    connection: sa.Connection,
    record: OperationRecord,
    kind: str,
    payload: dict[str, Any],
    now: dt.datetime,
) -> None:
    store.append_many(connection, [_new(record, kind, payload, now)])


def snapshot(connection: sa.Connection, record: OperationRecord) -> dict[str, Any]:
    """Status, counts and the estimated seconds left (None when a remaining revision has
    never run on any database, or nothing is left)."""
    done = ops.count_steps(connection, record.id, excluding=StepOutcome.FAILED)
    planned = _planned(record)
    return _progress(record, planned, done, _means(connection, record.id, planned))


def _planned(record: OperationRecord) -> list[tuple[str, str]]:
    return [(s["revision"], s["direction"]) for s in record.planned_steps]


def _progress(
    record: OperationRecord,
    planned: list[tuple[str, str]],
    done: int,
    means: Mapping[tuple[str, str], float],
) -> dict[str, Any]:
    remaining = planned[done:]
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
