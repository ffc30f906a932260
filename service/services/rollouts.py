"""Use cases of rollouts: request one over a selection of databases, read, pause, resume, cancel."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from service.errors import (
    EmptySelectionError,
    IdempotencyKeyReusedError,
    MigctlError,
    OperationConflictError,
    RolloutConflictError,
    RolloutNotFoundError,
    RolloutStoppedError,
)
from service.lifecycle import FINISHED, ROLLOUT_TRANSITIONS, RolloutStatus
from service.services import audit as audit_service
from service.services.access import Permission, check_policy
from service.services.audit import context_event
from service.services.context import RequestContext
from service.services.fleet import label_matches, select
from service.services.operations import cancel_operation
from service.services.registry import Registry
from service.store import audit, rollouts
from service.store import operations as ops
from service.store.audit import AuditEvent
from service.store.db import ControlStore, utcnow
from service.store.rollouts import RolloutRecord
from service.store.rollouts import TargetRecord as TargetRecord


@dataclass(frozen=True)
class Selector:
    """Which databases: by name, or every one of an environment and labels (all must match)."""

    names: tuple[str, ...] = ()
    environment: str | None = None
    labels: tuple[str, ...] = ()


@dataclass(frozen=True)
class RolloutRequest:
    action: str
    revision: str
    selector: Selector = field(default_factory=Selector)
    max_parallel: int = 1
    canary: int = 0  # how many databases go first, and must succeed before the rest start
    max_failures: int = 0  # failures tolerated before it stops starting operations

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class RolloutView:
    """A rollout with its targets, totals per state and an estimate of the time left."""

    record: RolloutRecord
    totals: dict[str, int]
    eta_seconds: float | None


def target_state(target: TargetRecord) -> str:
    """pending (no operation yet), skipped (none could be queued), or its operation's status."""
    if target.operation_status is not None:
        return target.operation_status
    return "skipped" if target.problem_code else "pending"


def target_problem(target: TargetRecord) -> dict[str, str | None] | None:
    """Why a target was not queued (its refusal, or the rollout ended first), else its
    operation's error code and message, else None."""
    if target.problem_code:
        return {"code": target.problem_code, "detail": target.problem_detail}
    if target.operation_error:
        return {"code": target.operation_error, "detail": target.operation_message}
    return None


def selected(registry: Registry, selector: Selector) -> list[str]:
    """The names the selector picks, in name order; names keep the order given."""
    if selector.names:
        chosen = [registry.get(name).database for name in dict.fromkeys(selector.names)]
        return [
            db.name
            for db in chosen
            if (selector.environment is None or db.environment == selector.environment)
            and label_matches(db.labels, selector.labels)
        ]
    return [
        m.database.name
        for m in select(registry, environment=selector.environment, labels=selector.labels)
    ]


def request_rollout(
    registry: Registry,
    store: ControlStore,
    request: RolloutRequest,
    context: RequestContext,
    idempotency_key: str | None = None,
) -> RolloutView:
    """Record a rollout for workers to advance; every database is checked (token, policy) now."""
    try:
        names = selected(registry, request.selector)
        if not names:
            raise EmptySelectionError("The selector matches no managed database.")
        for name in names:
            context.principal.require(Permission(request.action), name)
            check_policy(registry.get(name).database, request.action)
    except MigctlError as exc:
        details = {"rollout": asdict(request), "code": exc.code, "detail": exc.detail}
        audit_service.record_refusal(store, context, database=None, details=details)
        raise
    with store.transaction() as connection:
        if idempotency_key:
            found = rollouts.find_by_idempotency_key(connection, context.actor, idempotency_key)
            if found is not None:
                if found.request_hash != request.fingerprint():
                    raise IdempotencyKeyReusedError(
                        f"Idempotency-Key {idempotency_key!r} was used for another rollout "
                        f"({found.id})."
                    )
                return view(found)
        rollout_id = rollouts.insert(connection, _values(request, context, idempotency_key), names)
        audit.append(connection, _event(context, rollout_id, "rollout.requested", names))
        ops.notify_queued(connection)  # workers advance rollouts when woken
    return get_rollout(store, rollout_id, context)


def _values(request: RolloutRequest, context: RequestContext, key: str | None) -> dict[str, Any]:
    return {
        "status": RolloutStatus.RUNNING,
        "action": request.action,
        "revision": request.revision,
        "selector": asdict(request.selector),
        "max_parallel": request.max_parallel,
        "canary": request.canary,
        "max_failures": request.max_failures,
        "actor": context.actor,
        "on_behalf_of": context.on_behalf_of,
        "request_id": context.request_id,
        "idempotency_key": key,
        "request_hash": request.fingerprint(),
        "created_at": utcnow(),
    }


def _event(
    context: RequestContext,
    rollout_id: int,
    action: str,
    names: list[str],
    outcome: str = "accepted",
) -> AuditEvent:
    return context_event(
        context,
        action,
        outcome,
        {"rollout_id": rollout_id, "databases": names[:50], "count": len(names)},
    )


def get_rollout(store: ControlStore, rollout_id: int, context: RequestContext) -> RolloutView:
    with store.transaction() as connection:
        record = rollouts.get(connection, rollout_id)
    if record is None or not all(context.principal.sees(t.database) for t in record.targets):
        raise RolloutNotFoundError(rollout_id)  # a scoped token sees only its own fleet
    return view(record)


def list_rollouts(
    store: ControlStore, status: str | None, context: RequestContext, first: int, last: int
) -> tuple[list[RolloutView], int]:
    """A page of rollouts, newest first; a scoped token sees those of its own fleet only."""
    with store.transaction() as connection:
        records, total = rollouts.list_page(
            connection,
            status=status,
            databases=context.principal.databases,
            first=first,
            last=last,
        )
    return [view(record) for record in records], total


def view(record: RolloutRecord) -> RolloutView:
    totals = Counter(target_state(t) for t in record.targets)
    return RolloutView(record, dict(sorted(totals.items())), _eta(record, totals))


def _eta(record: RolloutRecord, totals: Counter[str]) -> float | None:
    """Seconds left: the mean operation so far, times the waves still to run."""
    durations = [
        (t.finished_at - t.started_at).total_seconds()
        for t in record.targets
        if t.finished_at and t.started_at
    ]
    left = sum(n for state, n in totals.items() if state not in FINISHED and state != "skipped")
    if record.status != RolloutStatus.RUNNING or not left:
        return 0.0 if not left else None
    if not durations:
        return None
    return round(sum(durations) / len(durations) * -(-left // record.max_parallel), 1)


_CHANGES = {
    RolloutStatus.RUNNING: "rollout.resumed",
    RolloutStatus.PAUSED: "rollout.paused",
    RolloutStatus.CANCELLED: "rollout.cancelled",
}


def change_rollout(
    store: ControlStore, rollout_id: int, target: RolloutStatus, context: RequestContext
) -> RolloutView:
    """Pause, resume or cancel; cancelling cancels its queued operations too. Audited."""
    current = get_rollout(store, rollout_id, context)
    resuming = target == RolloutStatus.RUNNING
    context.principal.require(Permission(current.record.action) if resuming else Permission.CANCEL)
    source = RolloutStatus(current.record.status)
    names = [t.database for t in current.record.targets]
    with store.transaction() as connection:
        moved = (source, target) in ROLLOUT_TRANSITIONS and rollouts.move(
            connection, rollout_id, source, target, _ending(target)
        )
        outcome = "accepted" if moved else "refused"
        audit.append(connection, _event(context, rollout_id, _CHANGES[target], names, outcome))
        waiting = rollouts.waiting_operations(connection, rollout_id) if moved else []
        if moved and target == RolloutStatus.CANCELLED:
            why = f"rollout cancelled by {context.actor}"
            rollouts.skip_unqueued(connection, rollout_id, RolloutStoppedError.code, why)
        if moved and target == RolloutStatus.RUNNING:
            ops.notify_queued(connection)
    if target == RolloutStatus.CANCELLED:
        cancel_waiting(store, [operation_id for operation_id, _status in waiting], context)
    if not moved:
        raise RolloutConflictError(
            f"Rollout {rollout_id} is {source}; it cannot become {target}.",
            rollout_id=rollout_id,
            rollout_status=str(source),
        )
    return get_rollout(store, rollout_id, context)


def cancel_waiting(store: ControlStore, operation_ids: list[int], context: RequestContext) -> None:
    """Cancel a cancelled rollout's operations that have not started, each audited as any
    cancel is; one that a worker claimed meanwhile runs to its end."""
    for operation_id in operation_ids:
        with contextlib.suppress(OperationConflictError):
            cancel_operation(store, operation_id, context)


def _ending(target: RolloutStatus) -> dict[str, dt.datetime]:
    return {"finished_at": utcnow()} if target == RolloutStatus.CANCELLED else {}
