"""Two-person approval: what approvers review, approve, reject, expire, and the worker's check."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from service.errors import (
    ApprovalConflictError,
    ApprovalStaleError,
    MigctlError,
    OperationNotFoundError,
    SelfApprovalError,
)
from service.lifecycle import Status
from service.migrator.plans import plan_steps, step_direction, step_revision
from service.services import events
from service.services.access import Permission
from service.services.audit import context_event
from service.services.context import RequestContext, people
from service.services.registry import Managed, Registry
from service.store import approvals as store_approvals
from service.store import audit
from service.store import operations as ops
from service.store.approvals import ApprovalRecord
from service.store.audit import AuditEvent
from service.store.db import ControlStore, utcnow
from service.store.operations import OperationRecord

APPROVED, REJECTED = "approved", "rejected"
SYSTEM = "migctl"  # the actor of an expiry: nobody asked for it
APPROVERS = (
    "a token with the approve permission (roles admin, approver) that sees this database, "
    "other than the requester"
)


def binding(managed: Managed, action: str, revision: str, purge: bool) -> dict[str, Any]:
    """What an approver reviews: the heads, the plan from them, and each planned revision
    file's sha256 (not the SQL's: some revisions render statements in a varying order)."""
    graph = managed.graph()
    heads = list(managed.state.current_heads(graph))
    steps = plan_steps(graph, action, () if purge else tuple(heads), revision)
    plan = [{"revision": step_revision(s), "direction": step_direction(s)} for s in steps]
    files = {step["revision"]: graph.info(step["revision"]).sha256 for step in plan}
    return {"heads": heads, "plan": plan, "files": files}


def changes(approved: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    """What differs between two bindings: `heads`, `plan`, and each revision still planned
    whose file did (one that left the plan is the plan's change, not its file's)."""
    found = [key for key in ("heads", "plan") if approved.get(key) != now.get(key)]
    files, now_files = approved.get("files") or {}, now.get("files") or {}
    return found + sorted(rev for rev in files if now_files.get(rev, files[rev]) != files[rev])


def check_unchanged(registry: Registry, record: OperationRecord) -> None:
    """Raise ApprovalStaleError when what was approved is no longer what would run."""
    if record.approval_binding is None:
        return
    managed = registry.get(record.database)
    now = binding(managed, record.action, record.revision, record.purge)
    changed = changes(record.approval_binding, now)
    if changed:
        raise ApprovalStaleError(
            f"Operation {record.id}: {', '.join(changed)} changed since it was approved; "
            "nothing ran.",
            operation_id=record.id,
            changed=changed,
        )


def same_person(record: OperationRecord, context: RequestContext) -> bool:
    """The requester may not approve: the same token, or the same person (service.services.
    context.person: `alice (chat)`, `Alice` and token `alice` are one person)."""
    return bool(people(record.actor, record.on_behalf_of) & context.people)


def approve(
    registry: Registry, store: ControlStore, operation_id: int, context: RequestContext
) -> OperationRecord:
    """Record an approval; the last one required queues the operation. Refusals are audited."""
    record = _visible(store, operation_id, context)
    try:
        context.principal.require(Permission.APPROVE, record.database)
        _refuse_self(record, context)
        now = binding(registry.get(record.database), record.action, record.revision, record.purge)
    except MigctlError as exc:
        _refused(store, record, context, exc)
        raise
    changed = changes(record.approval_binding or {}, now)
    if changed and record.status == Status.AWAITING_APPROVAL:  # else refused as decided
        raise _end_stale(store, record, context, changed)
    return _decide(store, record, context, APPROVED, None, now)


def _end_stale(
    store: ControlStore, record: OperationRecord, context: RequestContext, changed: list[str]
) -> ApprovalStaleError:
    """What was requested is no longer what would run: nobody can approve it any more, so it
    ends `expired` (error `approval-stale`) and leaves every approver's queue; audited."""
    error = ApprovalStaleError(
        f"Operation {record.id}: {', '.join(changed)} changed since it was requested; "
        "it ended expired and nothing ran: request it again.",
        operation_id=record.id,
        changed=changed,
    )
    with store.transaction() as connection:
        audit.append(connection, _refusal_event(record, context, error))
        moved = ops.transition(
            connection,
            record.id,
            from_status=Status.AWAITING_APPROVAL,
            to_status=Status.EXPIRED,
            values={
                "finished_at": utcnow(),
                "error_code": error.code,
                "error_type": type(error).__name__,
                "error_message": error.detail,
            },
        )
        if moved:
            details = {"code": error.code, "changed": changed, "detail": error.detail}
            audit.append(
                connection,
                _event(record, "approval.expired", Status.EXPIRED, RequestContext(SYSTEM), details),
            )
            events.emit(connection, record.id, events.status_kind(Status.EXPIRED))
    return error


def reject(
    store: ControlStore, operation_id: int, context: RequestContext, reason: str
) -> OperationRecord:
    """Reject an operation awaiting approval: it ends `rejected` and never runs."""
    record = _visible(store, operation_id, context)
    try:
        context.principal.require(Permission.APPROVE, record.database)
    except MigctlError as exc:
        _refused(store, record, context, exc)
        raise
    return _decide(store, record, context, REJECTED, reason, record.approval_binding or {})


def _refuse_self(record: OperationRecord, context: RequestContext) -> None:
    if same_person(record, context):
        raise SelfApprovalError(
            f"Operation {record.id} was requested by {record.actor}"
            + (f" for {record.on_behalf_of}" if record.on_behalf_of else "")
            + ": its requester cannot approve it.",
            operation_id=record.id,
        )


def _visible(store: ControlStore, operation_id: int, context: RequestContext) -> OperationRecord:
    expire_overdue(store)  # a decision on an expired operation is refused as such
    with store.transaction() as connection:
        record = ops.get(connection, operation_id)
    if record is None or not context.principal.sees(record.database):
        raise OperationNotFoundError(operation_id)
    return record


def _decide(
    store: ControlStore,
    record: OperationRecord,
    context: RequestContext,
    decision: str,
    reason: str | None,
    reviewed: Mapping[str, Any],
) -> OperationRecord:
    with store.transaction() as connection:
        refusal = _conflict(connection, record, context)
        if refusal is None:
            store_approvals.insert(
                connection,
                ApprovalRecord(
                    operation_id=record.id,
                    decision=decision,
                    actor=context.actor,
                    on_behalf_of=context.on_behalf_of,
                    reason=reason,
                    binding=reviewed,
                    decided_at=utcnow(),
                ),
            )
            _move(connection, record, decision)
            details = {"reason": reason} if reason else {}
            audit.append(
                connection, _event(record, f"approval.{decision}", decision, context, details)
            )
        else:
            audit.append(connection, _refusal_event(record, context, refusal))
    if refusal is not None:
        raise refusal
    with store.transaction() as connection:
        found = ops.get(connection, record.id, with_steps=True)
    assert found is not None
    return found


def _conflict(
    connection: sa.Connection, record: OperationRecord, context: RequestContext
) -> MigctlError | None:
    now = ops.get(connection, record.id) or record  # it may have moved meanwhile
    decided = store_approvals.list_for(connection, record.id)
    if now.status != Status.AWAITING_APPROVAL:
        detail = f"Operation {record.id} is {now.status}; it no longer awaits approval."
    elif any(same_person_as(a, context) for a in decided):
        detail = (
            f"{context.on_behalf_of or context.actor} already decided on operation {record.id}."
        )
    else:
        return None
    return ApprovalConflictError(detail, operation_id=record.id, operation_status=now.status)


def same_person_as(approval: ApprovalRecord, context: RequestContext) -> bool:
    """One person decides once, whichever token or channel they come through."""
    return bool(people(approval.actor, approval.on_behalf_of) & context.people)


def _move(connection: sa.Connection, record: OperationRecord, decision: str) -> None:
    if decision == REJECTED:
        ops.transition(
            connection,
            record.id,
            from_status=Status.AWAITING_APPROVAL,
            to_status=Status.REJECTED,
            values={"finished_at": utcnow()},
        )
        events.emit(connection, record.id, events.status_kind(Status.REJECTED))
        return
    approved = [
        a for a in store_approvals.list_for(connection, record.id) if a.decision == APPROVED
    ]
    if len(approved) >= (record.approvals_required or 1):
        ops.transition(
            connection, record.id, from_status=Status.AWAITING_APPROVAL, to_status=Status.QUEUED
        )
        events.emit(connection, record.id, events.QUEUED)
        ops.notify_queued(connection)


def expire_overdue(store: ControlStore, now: dt.datetime | None = None) -> list[int]:
    """End every operation whose approval_ttl passed by `now` (default: now) without its
    approvals: `expired`."""
    with store.transaction() as connection:
        expired = []
        for operation_id in store_approvals.overdue(connection, now or utcnow()):
            moved = ops.transition(
                connection,
                operation_id,
                from_status=Status.AWAITING_APPROVAL,
                to_status=Status.EXPIRED,
                values={"finished_at": utcnow()},
            )
            record = ops.get(connection, operation_id)
            if moved and record is not None:
                event = _event(record, "approval.expired", Status.EXPIRED, RequestContext(SYSTEM))
                audit.append(connection, event)
                events.emit(connection, operation_id, events.status_kind(Status.EXPIRED))
                expired.append(operation_id)
    return expired


def _refused(
    store: ControlStore, record: OperationRecord, context: RequestContext, error: MigctlError
) -> None:
    with store.transaction() as connection:
        audit.append(connection, _refusal_event(record, context, error))


def _refusal_event(
    record: OperationRecord, context: RequestContext, error: MigctlError
) -> AuditEvent:
    details = {"code": error.code, "detail": error.detail}
    return _event(record, "approval.refused", "refused", context, details)


def _event(
    record: OperationRecord,
    action: str,
    outcome: str,
    context: RequestContext,
    details: Mapping[str, Any] | None = None,
) -> AuditEvent:
    return context_event(
        context,
        action,
        outcome,
        {"requested_by": record.actor, **(details or {})},
        database=record.database,
        operation_id=record.id,
    )


def approval_values(managed: Managed, plan_binding: Mapping[str, Any]) -> dict[str, Any]:
    """The columns of a new operation on a database whose policy requires approval."""
    policy = managed.database
    if not policy.needs_approval:
        return {}
    expires = utcnow() + dt.timedelta(seconds=policy.approval_ttl_seconds)
    return {
        "status": Status.AWAITING_APPROVAL,
        "approvals_required": policy.approvals_required,
        "approval_expires_at": expires,
        "approval_binding": dict(plan_binding),
    }
