"""Use cases of queued operations: request, read, list, wait for and cancel one."""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import sqlalchemy as sa

from service.errors import (
    IdempotencyKeyReusedError,
    MigctlError,
    OperationConflictError,
    OperationNotFoundError,
    PreconditionFailedError,
    UnknownDatabaseRevisionError,
)
from service.lifecycle import Status
from service.migrator.plans import plan_steps, resolve_targets, step_direction, step_revision
from service.secrets import Redactor
from service.services import approvals, events
from service.services import audit as audit_service
from service.services.access import ANONYMOUS, Permission, Principal, check_policy
from service.services.audit import context_event
from service.services.context import RequestContext
from service.services.previews import PreviewCache, preview_sql
from service.services.registry import Managed, Registry
from service.services.safety.checksums import refuse_if_modified
from service.services.safety.lint import PlanToLint, lint_plan
from service.store import audit
from service.store import operations as ops
from service.store.audit import AuditEvent
from service.store.db import ControlStore, utcnow
from service.store.operations import OperationRecord

logger = logging.getLogger(__name__)
MAX_WAIT_SECONDS = 60
_WAIT_POLL_SECONDS = 0.05  # a SELECT by key: cheap, and a waiting pipeline hears sooner


@dataclass(frozen=True)
class OperationRequest:
    """What a client asks for: an action to a revision spec, with optional guards."""

    action: str
    revision: str
    expected_current: tuple[str, ...] | None = None
    reason: str | None = None
    purge: bool = False
    acknowledge: tuple[str, ...] = ()  # lint rules an admin queues anyway (audited)
    accept_modified: bool = False  # an admin queues despite edited applied revisions (audited)

    def fingerprint(self, database: str) -> str:
        body = {"database": database, **self.__dict__}
        return hashlib.sha256(json.dumps(body, sort_keys=True, default=list).encode()).hexdigest()


@dataclass(frozen=True)
class Plan:
    current: tuple[str, ...]
    targets: list[str]
    steps: list[dict[str, str]]


def request_operation(
    registry: Registry,
    store: ControlStore,
    name: str,
    request: OperationRequest,
    context: RequestContext,
    idempotency_key: str | None,
    previews: PreviewCache,
    rollout_id: int | None = None,
) -> OperationRecord:
    """Queue `request` for database `name`; the same Idempotency-Key gives the same operation.

    Refusals (unknown database or revision, bad range, expected_current mismatch, reused key)
    raise their MigctlError and are recorded as `operation.refused` audit events.
    """
    fingerprint = request.fingerprint(name)
    try:
        # A replay is a request like any other: the token as it is now must still allow it.
        managed = registry.get(name)
        context.principal.require(Permission(request.action), name)
        check_policy(managed.database, request.action)
        if idempotency_key:
            replayed = _replay(store, context, idempotency_key, fingerprint)
            if replayed is not None:
                return replayed
        plan = _plan(managed, request)
        refuse_if_modified(registry, store, name, request.accept_modified, context, plan.current)
        if request.acknowledge:
            context.principal.require(Permission.OVERRIDE, name)
        lint_first = _lint_decides(managed)
        lint: dict[str, Any] | None = _linting(managed)
        if lint_first:
            lint = _lint(registry, previews, managed, request, plan)
    except MigctlError as exc:
        _record_refusal(store, name, request, context, exc, registry.redactor)
        raise
    values = _new_operation(name, request, context, plan, idempotency_key, fingerprint)
    if managed.database.needs_approval:
        binding = _binding(managed, plan)
        binding["sql_sha256"] = _sql_sha256(registry, previews, managed, request, plan)
        values.update(approvals.approval_values(managed, binding))
    values["lint"] = lint
    values["rollout_id"] = rollout_id
    try:
        with store.transaction() as connection:
            record = ops.insert(connection, values)
            _record_request(connection, record, context, _request_details(record, request))
    except sa.exc.IntegrityError:  # the same key raced in from a concurrent retry
        try:
            replayed = _replay(store, context, idempotency_key or "", fingerprint)
        except MigctlError as exc:
            _record_refusal(store, name, request, context, exc, registry.redactor)
            raise
        if replayed is None:
            raise
        return replayed
    if lint_first:
        return record
    lint_of = functools.partial(_lint, registry, previews, managed, request, plan)
    return _lint_queued(store, record, _linting(managed), lint_of)


# Under `warn` a lint refuses nothing: the operation is queued (and may start) first, and
# linted while its job starts; the answer carries the lint all the same. Rendering the plan
# before queueing made a 200-revision upgrade wait 0.2 s more than the alembic CLI.
LINTING = {
    "policy": "warn",
    "dialect": "",
    "linted": False,
    "note": "being linted (queued first: the lint follows in the same request)",
    "blocked": False,
    "counts": {"error": 0, "warning": 0, "opted_out": 0, "acknowledged": 0},
    "findings": [],
}


def _linting(managed: Managed) -> dict[str, Any]:
    return {**LINTING, "dialect": managed.database.dialect}


def _lint_decides(managed: Managed) -> bool:
    """Whether the lint must come before queueing: it may refuse (`block`), or the approvers
    read it before the operation can run."""
    database = managed.database
    return database.lint_policy != "warn" or database.needs_approval


def _lint_queued(
    store: ControlStore,
    record: OperationRecord,
    pending: dict[str, Any],
    lint_of: Callable[[], dict[str, Any] | None],
) -> OperationRecord:
    """The queued operation with its lint. It is queued, whatever happens here: an answer
    saying otherwise would have a pipeline queue it again."""
    try:
        lint = lint_of()
    except MigctlError as exc:  # the project became unreadable meanwhile
        lint = {**pending, "note": f"not linted: {exc.code}: {exc.detail}"}
    except Exception as exc:  # a bug of ours: logged, and still no error for a queued change
        logger.exception("operation %d: lint failed", record.id)
        lint = {**pending, "note": f"not linted: {type(exc).__name__}"}
    try:
        with store.transaction() as connection:
            ops.set_lint(connection, record.id, lint)
    except MigctlError:  # the control database went away: the answer still has it
        logger.warning("operation %d: its lint could not be stored", record.id)
    return replace(record, lint=lint)


def _request_details(record: OperationRecord, request: OperationRequest) -> dict[str, Any]:
    details: dict[str, Any] = {"revision": record.revision, "action": record.action}
    if request.acknowledge:
        details["acknowledged"] = list(request.acknowledge)
    if request.accept_modified:
        details["accept_modified"] = True
    return details


def _record_request(
    connection: sa.Connection,
    record: OperationRecord,
    context: RequestContext,
    details: dict[str, Any],
) -> None:
    """Audit the request; one awaiting approval also asks the approvers, else wakes workers."""
    if record.status != Status.AWAITING_APPROVAL:
        event = _event(record, "operation.requested", "accepted", context, details)
        audit.append(connection, event)
        events.emit(connection, record.id, events.QUEUED)
        ops.notify_queued(connection)
        return
    audit.append(connection, _event(record, "operation.requested", record.status, context, details))
    events.emit(connection, record.id, events.status_kind(record.status))
    asking = {
        "approvals_required": record.approvals_required,
        "expires_at": record.approval_expires_at.isoformat()
        if record.approval_expires_at
        else None,
        "approvers": approvals.APPROVERS,
        "review": record.approval_binding,
    }
    audit.append(connection, _event(record, "approval.requested", record.status, context, asking))


def _binding(managed: Managed, plan: Plan) -> dict[str, Any]:
    graph = managed.graph()
    files = {step["revision"]: graph.info(step["revision"]).sha256 for step in plan.steps}
    return {"heads": list(plan.current), "plan": plan.steps, "files": files}


def _sql_sha256(
    registry: Registry,
    previews: PreviewCache,
    managed: Managed,
    request: OperationRequest,
    plan: Plan,
) -> str | None:
    """The previewed SQL's sha256, for the approver's information only: some revisions render
    their statements in a different order each time, so it never decides (None offline)."""
    start = () if request.purge else plan.current
    try:
        preview = preview_sql(
            registry,
            previews,
            managed.database.name,
            action=request.action,
            from_=",".join(start) or "base",
            to=request.revision,
            twice=False,  # the lint's render, when it rendered
        )
    except MigctlError:
        return None
    return preview.sha256


def _replay(
    store: ControlStore, context: RequestContext, key: str, fingerprint: str
) -> OperationRecord | None:
    """The operation this actor queued with `key` (audited as replayed), None if none."""
    with store.transaction() as connection:
        found = ops.find_by_idempotency_key(connection, context.actor, key)
        if found is not None and found.request_hash == fingerprint:
            audit.append(connection, _event(found, "operation.requested", "replayed", context))
    if found is not None and found.request_hash != fingerprint:
        visible = context.principal.sees(found.database)  # else its id is not for this token
        raise IdempotencyKeyReusedError(
            f"Idempotency-Key {key!r} was used for another request"
            + (f" (operation {found.id})." if visible else "."),
            operation_id=found.id if visible else None,
        )
    return found


def _plan(managed: Managed, request: OperationRequest) -> Plan:
    graph = managed.graph()
    current = managed.state.current_heads(graph)
    unknown = graph.unknown(current)
    if unknown:
        raise UnknownDatabaseRevisionError(managed.database.name, unknown)
    if request.expected_current is not None and set(request.expected_current) != set(current):
        raise PreconditionFailedError(request.expected_current, current)
    start = () if request.purge else current
    steps = plan_steps(graph, request.action, start, request.revision)
    return Plan(
        current=current,
        targets=resolve_targets(graph, request.action, start, request.revision),
        steps=[{"revision": step_revision(s), "direction": step_direction(s)} for s in steps],
    )


def _lint(
    registry: Registry,
    previews: PreviewCache,
    managed: Managed,
    request: OperationRequest,
    plan: Plan,
) -> dict[str, Any] | None:
    start = () if request.purge else plan.current
    to_lint = PlanToLint(request.action, start, request.revision, request.acknowledge)
    return lint_plan(registry, previews, managed, to_lint)


def _new_operation(
    name: str,
    request: OperationRequest,
    context: RequestContext,
    plan: Plan,
    idempotency_key: str | None,
    fingerprint: str,
) -> dict[str, Any]:
    return {
        "database": name,
        "action": request.action,
        "revision": request.revision,
        "target_revisions": plan.targets,
        "expected_current": list(request.expected_current)
        if request.expected_current is not None
        else None,
        "purge": request.purge,
        "reason": request.reason,
        "status": Status.QUEUED,
        "actor": context.actor,
        "on_behalf_of": context.on_behalf_of,
        "request_id": context.request_id,
        "client_address": context.client_address,
        "user_agent": context.user_agent,
        "idempotency_key": idempotency_key,
        "request_hash": fingerprint,
        "planned_steps": plan.steps,
        "heads_before": list(plan.current),
        "requested_at": utcnow(),
    }


def _record_refusal(
    store: ControlStore,
    name: str,
    request: OperationRequest,
    context: RequestContext,
    error: MigctlError,
    redactor: Redactor,
) -> None:
    # The error may quote a driver's or env.py's message, and so a secret.
    details = {**_jsonable(request.__dict__), "code": error.code, "detail": error.detail}
    audit_service.record_refusal(
        store, context, database=name, details=redactor.redact_value(details)
    )


def _jsonable(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}


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
        details or {"revision": record.revision, "action": record.action},
        database=record.database,
        operation_id=record.id,
    )


def get_operation(
    store: ControlStore,
    operation_id: int,
    *,
    wait: float = 0,
    principal: Principal = ANONYMOUS,
) -> OperationRecord:
    """The operation with its steps; with `wait`, returns as soon as it ends or wait passes."""
    deadline = time.monotonic() + min(wait, MAX_WAIT_SECONDS)
    # Polls read the row alone and the steps once, for the answer: reading a 200-step
    # operation's steps every 50 ms took CPU from the very steps it waited for.
    while True:
        with store.transaction() as connection:
            record = ops.get(connection, operation_id)
        if record is None or not principal.sees(record.database):
            raise OperationNotFoundError(operation_id)
        if record.finished or time.monotonic() >= deadline:
            with store.transaction() as connection:
                answer = ops.get(connection, operation_id, with_steps=True)
            return answer or record
        time.sleep(min(_WAIT_POLL_SECONDS, max(0.0, deadline - time.monotonic())))


def list_operations(
    store: ControlStore,
    *,
    filters: Mapping[str, str | None],
    first: int,
    last: int,
    principal: Principal = ANONYMOUS,
) -> tuple[list[OperationRecord], int]:
    with store.transaction() as connection:
        return ops.list_page(
            connection, filters=filters, databases=principal.databases, first=first, last=last
        )


def cancel_operation(
    store: ControlStore, operation_id: int, context: RequestContext
) -> OperationRecord:
    """Cancel a queued operation; OperationConflictError once it is no longer queued,
    ForbiddenError for a role that may not cancel. Every attempt is audited."""
    with store.transaction() as connection:
        record = ops.get(connection, operation_id)
        if record is None or not context.principal.sees(record.database):
            raise OperationNotFoundError(operation_id)
        refusal = _cancel_refusal(context.principal, record)
        source = Status.AWAITING_APPROVAL if record.status == Status.AWAITING_APPROVAL else None
        cancelled = refusal is None and ops.transition(
            connection,
            operation_id,
            from_status=source or Status.QUEUED,
            to_status=Status.CANCELLED,
            values={"finished_at": utcnow()},
        )
        if not cancelled and refusal is None:
            now = ops.get(connection, operation_id) or record  # it may have moved meanwhile
            refusal = OperationConflictError(
                f"Operation {operation_id} is {now.status}; only a queued operation, or one "
                "awaiting approval, can be cancelled.",
                operation_id=operation_id,
                operation_status=now.status,
            )
        details = {} if refusal is None else {"code": refusal.code, "detail": refusal.detail}
        outcome = Status.CANCELLED if cancelled else "refused"
        audit.append(connection, _event(record, "operation.cancelled", outcome, context, details))
        if cancelled:
            events.emit(connection, operation_id, events.status_kind(Status.CANCELLED))
    if refusal is not None:
        raise refusal
    return get_operation(store, operation_id, principal=context.principal)


def _cancel_refusal(principal: Principal, record: OperationRecord) -> MigctlError | None:
    try:
        principal.require(Permission.CANCEL, record.database)
    except MigctlError as exc:
        return exc
    return None
