"""How workers advance rollouts: queue the next operations, end the rollout when it is done."""

from __future__ import annotations

import datetime as dt
import logging

from service.errors import JobStartError, MigctlError, RolloutStoppedError
from service.lifecycle import FINISHED, RolloutStatus, Status
from service.services.access import Principal, Role
from service.services.context import RequestContext
from service.services.operations import OperationRequest, request_operation
from service.services.rollouts import cancel_waiting, target_state
from service.services.wiring import Services
from service.store import audit, rollouts
from service.store.audit import AuditEvent
from service.store.db import ControlStore, utcnow
from service.store.rollouts import RolloutRecord, TargetRecord

logger = logging.getLogger(__name__)
FAILED = frozenset({*FINISHED, "skipped"}) - {Status.SUCCEEDED}
IN_FLIGHT = frozenset(Status) - FINISHED  # awaiting approval holds a slot too
# A database whose operation was lost to a dying worker is queued again, this many times,
# when that is known to be safe: its job never began migrating (nothing changed), or it was
# interrupted on a dialect whose DDL is transactional (the open step rolled back with the
# connection, and the new job re-plans under the lock). On SQLite or MySQL an interrupted step
# may be half applied: that database counts as failed, for a person to look at.
TRANSACTIONAL_DDL = frozenset({"postgresql"})
RETRIES = 2


def advance_all(services: Services, worker_id: str, lease_seconds: float) -> int:
    """Advance every running rollout no other worker is advancing; operations queued."""
    with services.store.transaction() as connection:
        ids = rollouts.running_ids(connection)
    return sum(advance(services, worker_id, i, lease_seconds) or 0 for i in ids)


def advance(
    services: Services, worker_id: str, rollout_id: int, lease_seconds: float
) -> int | None:
    """Under the rollout's lease (one worker at a time, so max_parallel holds everywhere):
    the operations queued, None while another worker holds the lease. The lease is the
    worker's, not its thread's: a worker advances from one thread at a time."""
    store = services.store
    now = utcnow()
    with store.transaction() as connection:
        until = now + dt.timedelta(seconds=lease_seconds)
        if not rollouts.take_lease(connection, rollout_id, worker_id, now, until):
            running = rollouts.status(connection, rollout_id) == RolloutStatus.RUNNING
            return None if running else 0  # paused or ended: nothing to wait for
        record = rollouts.get(connection, rollout_id)
    try:
        return _advance(services, record) if record is not None else 0
    finally:
        with store.transaction() as connection:
            rollouts.release_lease(connection, rollout_id, worker_id)


def _advance(services: Services, record: RolloutRecord) -> int:
    store = services.store
    states = {t.id: _state(services, t) for t in record.targets}
    failures = sum(state in FAILED for state in states.values())
    canary_failed = any(t.canary and states[t.id] in FAILED for t in record.targets)
    if failures > record.max_failures or canary_failed:
        return _finish(store, record, RolloutStatus.FAILED, failures, _why(record, states))
    if not any(state in IN_FLIGHT or state in ("pending", "retry") for state in states.values()):
        outcome = RolloutStatus.FAILED if failures else RolloutStatus.SUCCEEDED
        return _finish(store, record, outcome, failures, _why(record, states))
    canaries_done = all(states[t.id] == Status.SUCCEEDED for t in record.targets if t.canary)
    waiting = [t for t in record.targets if states[t.id] in ("pending", "retry")]
    candidates = waiting if canaries_done else [t for t in waiting if t.canary]
    running = sum(state in IN_FLIGHT for state in states.values())
    slots = max(0, record.max_parallel - running)
    return sum(_launch(services, record, target) for target in candidates[:slots])


def _why(record: RolloutRecord, states: dict[int, str]) -> str:
    """Why the rollout stopped: its failed canary, else the failures past max_failures."""
    failed = [t for t in record.targets if states[t.id] in FAILED]
    canaries = [t.database for t in failed if t.canary]
    if canaries:
        return f"rollout failed at canary {', '.join(canaries)}"
    names = ", ".join(t.database for t in failed[:5]) + (", ..." if len(failed) > 5 else "")
    return (
        f"rollout failed after {len(failed)} failure(s) ({names}), "
        f"more than max_failures {record.max_failures}"
    )


def _state(services: Services, target: TargetRecord) -> str:
    state = target_state(target)
    never_began = state == Status.FAILED and target.operation_error == JobStartError.code
    try:
        dialect = services.registry.get(target.database).database.dialect
    except MigctlError:  # no longer configured: its next operation is refused anyway
        dialect = ""
    rolled_back = state == Status.INTERRUPTED and dialect in TRANSACTIONAL_DDL
    lost = never_began or rolled_back
    return "retry" if lost and target.attempts <= RETRIES else state


def _launch(services: Services, record: RolloutRecord, target: TargetRecord) -> bool:
    """Queue the target's operation as the rollout's requester: audited, single-flight, and
    once only (a retry after a crash replays the same Idempotency-Key)."""
    context = RequestContext(
        actor=record.actor,
        principal=Principal(record.actor, Role.ADMIN),  # checked for every database at request
        on_behalf_of=record.on_behalf_of,
        request_id=record.request_id,
    )
    request = OperationRequest(record.action, record.revision, reason=f"rollout {record.id}")
    key = f"rollout-{record.id}-{target.database}"
    if target.operation_id is not None:  # a retry: its own key, the same after a crash
        key += f"-after-{target.operation_id}"
    try:
        operation = request_operation(
            services.registry,
            services.store,
            target.database,
            request,
            context,
            key,
            services.previews,  # the lint policy holds for each database of a rollout
            rollout_id=record.id,
        )
    except MigctlError as exc:
        logger.warning("rollout %d: %s not queued: %s", record.id, target.database, exc.code)
        detail = services.registry.redactor.redact(exc.detail)
        with services.store.transaction() as connection:
            rollouts.set_problem(connection, target.id, exc.code, detail)
        return False
    with services.store.transaction() as connection:
        linked = rollouts.link(connection, target.id, operation.id, target.operation_id)
        cancelled = rollouts.status(connection, record.id) == RolloutStatus.CANCELLED
    if cancelled:  # while this one was being queued: the caller's cancel could not see it
        cancel_waiting(services.store, [operation.id], context)
    return linked


def _finish(
    store: ControlStore, record: RolloutRecord, status: RolloutStatus, failures: int, why: str
) -> int:
    """End the rollout; its targets never queued become skipped, saying `why`."""
    with store.transaction() as connection:
        moved = rollouts.move(
            connection, record.id, RolloutStatus.RUNNING, status, {"finished_at": utcnow()}
        )
        if moved:
            rollouts.skip_unqueued(connection, record.id, RolloutStoppedError.code, why)
            event = AuditEvent(
                actor=record.actor,
                on_behalf_of=record.on_behalf_of,
                action="rollout.finished",
                outcome=str(status),
                occurred_at=utcnow(),
                request_id=record.request_id,
                details={"rollout_id": record.id, "failures": failures},
            )
            audit.append(connection, event)
    if moved:
        logger.info("rollout %d %s (%d failures)", record.id, status, failures)
    return 0
