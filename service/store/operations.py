"""Operations and their steps: enqueue, claim (SKIP LOCKED), guarded transitions, leases."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from service.lifecycle import ACTIVE, Status, StepOutcome, require_move
from service.store import approvals
from service.store.approvals import ApprovalRecord
from service.store.db import aware
from service.store.tables import operation_steps, operations

MAX_OFFSET = 2**31 - 1  # a page number far past the end must not overflow the driver


@dataclass(frozen=True)
class StepRecord:
    position: int
    revision: str
    direction: str
    started_at: dt.datetime
    duration_ms: float
    statement_count: int
    sql: str
    outcome: str


@dataclass(frozen=True)
class OperationRecord:
    """One row of migctl_operations; `steps` only when asked for."""

    id: int
    database: str
    action: str
    revision: str
    target_revisions: list[str]
    expected_current: list[str] | None
    purge: bool
    reason: str | None
    status: str
    actor: str
    on_behalf_of: str | None
    request_id: str | None
    client_address: str | None
    user_agent: str | None
    idempotency_key: str | None
    request_hash: str | None
    planned_steps: list[dict[str, str]]
    heads_before: list[str] | None
    heads_after: list[str] | None
    requested_at: dt.datetime
    started_at: dt.datetime | None
    executing_at: dt.datetime | None
    finished_at: dt.datetime | None
    heartbeat_at: dt.datetime | None
    lease_expires_at: dt.datetime | None
    worker_id: str | None
    error_code: str | None
    error_type: str | None
    error_message: str | None
    failed_revision: str | None
    failed_sql: str | None
    approvals_required: int | None = None  # None: it needs no approval
    approval_expires_at: dt.datetime | None = None
    approval_binding: dict[str, Any] | None = None  # what approvers review: plan, file sha256s
    lint: dict[str, Any] | None = None
    rollout_id: int | None = None  # the rollout that queued it
    steps: tuple[StepRecord, ...] = ()
    approvals: tuple[ApprovalRecord, ...] = ()  # with the steps: each decision, in order

    @property
    def finished(self) -> bool:
        return Status(self.status).finished


_TIMES = (
    "requested_at",
    "started_at",
    "executing_at",
    "finished_at",
    "heartbeat_at",
    "lease_expires_at",
    "approval_expires_at",
)


def _record(
    row: sa.Row[Any],
    steps: Sequence[StepRecord] = (),
    decisions: Sequence[ApprovalRecord] = (),
) -> OperationRecord:
    values = dict(row._mapping)
    for key in _TIMES:
        values[key] = aware(values[key])
    return OperationRecord(**values, steps=tuple(steps), approvals=tuple(decisions))


def insert(connection: sa.Connection, values: Mapping[str, Any]) -> OperationRecord:
    key = connection.execute(operations.insert().values(**values)).inserted_primary_key
    assert key is not None
    found = get(connection, int(key[0]))
    assert found is not None
    return found


def get(
    connection: sa.Connection, operation_id: int, *, with_steps: bool = False
) -> OperationRecord | None:
    row = connection.execute(sa.select(operations).where(operations.c.id == operation_id)).first()
    if row is None:
        return None
    if not with_steps:
        return _record(row)
    steps = list_steps(connection, operation_id)
    return _record(row, steps, approvals.list_for(connection, operation_id))


def find_by_idempotency_key(
    connection: sa.Connection, actor: str, key: str
) -> OperationRecord | None:
    query = sa.select(operations).where(
        operations.c.actor == actor, operations.c.idempotency_key == key
    )
    row = connection.execute(query).first()
    return None if row is None else _record(row)


def list_steps(connection: sa.Connection, operation_id: int) -> list[StepRecord]:
    query = (
        sa.select(*(operation_steps.c[name] for name in StepRecord.__dataclass_fields__))
        .where(operation_steps.c.operation_id == operation_id)
        .order_by(operation_steps.c.position)
    )
    return [
        StepRecord(**{**row._mapping, "started_at": aware(row.started_at)})
        for row in connection.execute(query)
    ]


def count_steps(connection: sa.Connection, operation_id: int, excluding: str | None = None) -> int:
    query = sa.select(sa.func.count()).where(operation_steps.c.operation_id == operation_id)
    if excluding is not None:
        query = query.where(operation_steps.c.outcome != excluding)
    return int(connection.execute(query).scalar_one())


def list_page(
    connection: sa.Connection,
    *,
    filters: Mapping[str, str | None],
    databases: frozenset[str] | None,
    first: int,
    last: int,
) -> tuple[list[OperationRecord], int]:
    """Newest first; `filters` by database, status and action (None: any); only operations
    of `databases` when it is given."""
    conditions = [operations.c[key] == value for key, value in filters.items() if value]
    if databases is not None:
        conditions.append(operations.c.database.in_(sorted(databases)))
    total = connection.execute(
        sa.select(sa.func.count()).select_from(operations).where(*conditions)
    ).scalar_one()
    query = (
        sa.select(operations)
        .where(*conditions)
        .order_by(operations.c.id.desc())
        .offset(min(first, MAX_OFFSET))
        .limit(last - first + 1)
    )
    return [_record(row) for row in connection.execute(query)], int(total)


def latest_for(
    connection: sa.Connection, database: str, statuses: Sequence[Status]
) -> OperationRecord | None:
    query = (
        sa.select(operations)
        .where(operations.c.database == database, operations.c.status.in_(statuses))
        .order_by(operations.c.id.desc())
        .limit(1)
    )
    row = connection.execute(query).first()
    return None if row is None else _record(row)


def transition(
    connection: sa.Connection,
    operation_id: int,
    *,
    from_status: Status,
    to_status: Status,
    worker_id: str | None = None,
    values: Mapping[str, Any] | None = None,
) -> bool:
    """Move an operation from one status to another; False if it was not in `from_status`."""
    require_move(from_status, to_status)
    conditions = [operations.c.id == operation_id, operations.c.status == from_status]
    if worker_id is not None:
        conditions.append(operations.c.worker_id == worker_id)
    update = operations.update().where(*conditions).values(status=to_status, **(values or {}))
    return connection.execute(update).rowcount == 1


def claim_next(
    connection: sa.Connection, worker_id: str, now: dt.datetime, lease: dt.timedelta
) -> OperationRecord | None:
    """Mark the oldest claimable queued operation running for `worker_id`, or return None.

    Claimable: no older queued or running operation of the same database, so each database
    runs its operations one at a time and in the order they were requested. SKIP LOCKED lets
    concurrent claimers pass each other on PostgreSQL; SQLite serialises them with BEGIN
    IMMEDIATE. The partial unique index is the guarantee behind both.
    """
    earlier = operations.alias("earlier")
    blocked = sa.exists().where(
        earlier.c.database == operations.c.database,
        earlier.c.status.in_(sorted(ACTIVE)),
        earlier.c.id < operations.c.id,
    )
    query = (
        sa.select(operations.c.id)
        .where(operations.c.status == Status.QUEUED, ~blocked)
        .order_by(operations.c.id)
        .limit(1)
        .with_for_update(skip_locked=True, of=operations)
    )
    candidate = connection.execute(query).scalar()
    if candidate is None:
        return None
    values = {"started_at": now, "heartbeat_at": now, "lease_expires_at": now + lease}
    try:
        with connection.begin_nested():
            claimed = transition(
                connection,
                candidate,
                from_status=Status.QUEUED,
                to_status=Status.RUNNING,
                values={"worker_id": worker_id, **values},
            )
    except sa.exc.IntegrityError:  # another worker's claim of this database won
        return None
    return get(connection, candidate) if claimed else None


def heartbeat(
    connection: sa.Connection,
    operation_id: int,
    worker_id: str,
    now: dt.datetime,
    lease: dt.timedelta,
) -> bool:
    """Extend the lease; False when the operation is no longer this worker's to run."""
    values = {"heartbeat_at": now, "lease_expires_at": now + lease}
    return update_running(connection, operation_id, worker_id, values)


def expired(connection: sa.Connection, now: dt.datetime) -> list[OperationRecord]:
    query = sa.select(operations).where(
        operations.c.status == Status.RUNNING, operations.c.lease_expires_at < now
    )
    return [_record(row) for row in connection.execute(query)]


def add_steps(connection: sa.Connection, operation_id: int, steps: Sequence[StepRecord]) -> None:
    rows = [
        {"operation_id": operation_id, **{name: getattr(step, name) for name in _STEP_FIELDS}}
        for step in steps
    ]
    if rows:
        connection.execute(operation_steps.insert(), rows)


_STEP_FIELDS = tuple(StepRecord.__dataclass_fields__)


QUEUE_CHANNEL = "migctl_operations"


def notify_queued(connection: sa.Connection) -> None:
    """Wake listening workers on PostgreSQL (delivered at COMMIT); polling covers SQLite."""
    if connection.dialect.name == "postgresql":
        connection.execute(sa.text(f"NOTIFY {QUEUE_CHANNEL}"))


def set_lint(connection: sa.Connection, operation_id: int, lint: Mapping[str, Any] | None) -> None:
    connection.execute(operations.update().where(operations.c.id == operation_id).values(lint=lint))


def update_running(
    connection: sa.Connection, operation_id: int, worker_id: str, values: Mapping[str, Any]
) -> bool:
    """Change a running operation only while it is still this worker's."""
    update = (
        operations.update()
        .where(
            operations.c.id == operation_id,
            operations.c.worker_id == worker_id,
            operations.c.status == Status.RUNNING,
        )
        .values(**values)
    )
    return connection.execute(update).rowcount == 1


def mark_rolled_back(connection: sa.Connection, operation_id: int, applied: set[str]) -> None:
    """Steps recorded as done that the database does not show were rolled back with their
    transaction: an upgrade whose revision is missing, a downgrade whose revision remains."""
    steps = operation_steps.c
    query = sa.select(steps.position, steps.revision, steps.direction).where(
        steps.operation_id == operation_id, steps.outcome == StepOutcome.SUCCEEDED
    )  # not their SQL: this runs at the end of every operation
    undone = [
        row.position
        for row in connection.execute(query)
        if (row.direction == "upgrade" and row.revision not in applied)
        or (row.direction == "downgrade" and row.revision in applied)
    ]
    if undone:
        connection.execute(
            operation_steps.update()
            .where(steps.operation_id == operation_id, steps.position.in_(undone))
            .values(outcome=StepOutcome.ROLLED_BACK)
        )
