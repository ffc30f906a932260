"""Rollouts and their targets: insert, read with each target's operation, guarded changes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from service.lifecycle import FINISHED, RolloutStatus, Status
from service.store.db import aware
from service.store.tables import operations, rollout_targets, rollouts


@dataclass(frozen=True)
class TargetRecord:
    """One database of a rollout, with its operation once one was queued."""

    id: int
    position: int
    database: str
    canary: bool
    operation_id: int | None
    problem_code: str | None
    problem_detail: str | None
    operation_status: str | None
    operation_error: str | None  # its error code when it failed
    operation_message: str | None  # and its error message
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    attempts: int  # operations queued for it so far (more than one after an interruption)


@dataclass(frozen=True)
class RolloutRecord:
    id: int
    status: str
    action: str
    revision: str
    selector: dict[str, Any]
    max_parallel: int
    canary: int
    max_failures: int
    actor: str
    on_behalf_of: str | None
    request_id: str | None
    idempotency_key: str | None
    request_hash: str | None
    created_at: dt.datetime
    finished_at: dt.datetime | None
    advancer: str | None
    advance_until: dt.datetime | None
    targets: tuple[TargetRecord, ...] = ()


def insert(connection: sa.Connection, values: Mapping[str, Any], databases: Sequence[str]) -> int:
    key = connection.execute(rollouts.insert().values(**values)).inserted_primary_key
    assert key is not None
    rollout_id = int(key[0])
    rows = [
        {
            "rollout_id": rollout_id,
            "position": position,
            "database": name,
            "canary": position < int(values["canary"]),
        }
        for position, name in enumerate(databases)
    ]
    connection.execute(rollout_targets.insert(), rows)
    return rollout_id


def get(connection: sa.Connection, rollout_id: int) -> RolloutRecord | None:
    row = connection.execute(sa.select(rollouts).where(rollouts.c.id == rollout_id)).first()
    if row is None:
        return None
    values = dict(row._mapping)
    for key in ("created_at", "finished_at", "advance_until"):
        values[key] = aware(values[key])
    return RolloutRecord(**values, targets=tuple(_targets(connection, rollout_id)))


def _targets(connection: sa.Connection, rollout_id: int) -> list[TargetRecord]:
    tried = operations.alias("tried")
    attempts = (
        sa.select(tried.c.database, sa.func.count().label("attempts"))
        .where(tried.c.rollout_id == rollout_id)
        .group_by(tried.c.database)
        .subquery()
    )
    targets = rollout_targets.c
    query = (
        sa.select(  # in TargetRecord's order: rows become records without a dict each
            targets.id,
            targets.position,
            targets.database,
            targets.canary,
            targets.operation_id,
            targets.problem_code,
            targets.problem_detail,
            operations.c.status.label("operation_status"),
            operations.c.error_code.label("operation_error"),
            operations.c.error_message.label("operation_message"),
            operations.c.started_at,
            operations.c.finished_at,
            sa.func.coalesce(attempts.c.attempts, 0).label("attempts"),
        )
        .outerjoin(operations, operations.c.id == rollout_targets.c.operation_id)
        .outerjoin(attempts, attempts.c.database == rollout_targets.c.database)
        .where(rollout_targets.c.rollout_id == rollout_id)
        .order_by(rollout_targets.c.position)
    )
    return [
        TargetRecord(*row[:10], aware(row.started_at), aware(row.finished_at), row.attempts)
        for row in connection.execute(query)
    ]


MAX_OFFSET = 2**31 - 1  # a page number far past the end must not overflow the driver


def list_page(
    connection: sa.Connection,
    *,
    status: str | None,
    databases: frozenset[str] | None,
    first: int,
    last: int,
) -> tuple[list[RolloutRecord], int]:
    """Newest first, of `status` (None: any); only rollouts whose every database is one of
    `databases` when it is given."""
    conditions: list[sa.ColumnElement[bool]] = []
    if status:
        conditions.append(rollouts.c.status == status)
    if databases is not None:
        outside = sa.select(rollout_targets.c.id).where(
            rollout_targets.c.rollout_id == rollouts.c.id,
            rollout_targets.c.database.not_in(sorted(databases)),
        )
        conditions.append(~outside.exists())
    total = connection.execute(
        sa.select(sa.func.count()).select_from(rollouts).where(*conditions)
    ).scalar_one()
    query = (
        sa.select(rollouts.c.id)
        .where(*conditions)
        .order_by(rollouts.c.id.desc())
        .offset(min(first, MAX_OFFSET))
        .limit(last - first + 1)
    )
    found = (get(connection, int(i)) for i in connection.execute(query).scalars())
    return [record for record in found if record is not None], int(total)


def find_by_idempotency_key(
    connection: sa.Connection, actor: str, key: str
) -> RolloutRecord | None:
    query = sa.select(rollouts.c.id).where(
        rollouts.c.actor == actor, rollouts.c.idempotency_key == key
    )
    found = connection.execute(query).scalar()
    return None if found is None else get(connection, int(found))


def status(connection: sa.Connection, rollout_id: int) -> str | None:
    query = sa.select(rollouts.c.status).where(rollouts.c.id == rollout_id)
    found = connection.execute(query).scalar()
    return None if found is None else str(found)


def running_ids(connection: sa.Connection) -> list[int]:
    """Running rollouts with a free slot (fewer unfinished operations than max_parallel):
    the others have nothing to start, and nothing to end, until one of theirs ends."""
    in_flight = (
        sa.select(sa.func.count())
        .where(
            operations.c.rollout_id == rollouts.c.id,
            operations.c.status.not_in(sorted(FINISHED)),
        )
        .scalar_subquery()
    )
    query = sa.select(rollouts.c.id).where(
        rollouts.c.status == RolloutStatus.RUNNING, in_flight < rollouts.c.max_parallel
    )
    return [int(i) for i in connection.execute(query.order_by(rollouts.c.id)).scalars()]


def take_lease(
    connection: sa.Connection, rollout_id: int, worker_id: str, now: dt.datetime, until: dt.datetime
) -> bool:
    """Become the one worker advancing the rollout until `until`; False if another is."""
    free = sa.or_(
        rollouts.c.advance_until.is_(None),
        rollouts.c.advance_until < now,
        rollouts.c.advancer == worker_id,
    )
    update = (
        rollouts.update()
        .where(rollouts.c.id == rollout_id, rollouts.c.status == RolloutStatus.RUNNING, free)
        .values(advancer=worker_id, advance_until=until)
    )
    return connection.execute(update).rowcount == 1


def release_lease(connection: sa.Connection, rollout_id: int, worker_id: str) -> None:
    connection.execute(
        rollouts.update()
        .where(rollouts.c.id == rollout_id, rollouts.c.advancer == worker_id)
        .values(advancer=None, advance_until=None)
    )


def move(
    connection: sa.Connection,
    rollout_id: int,
    source: RolloutStatus,
    target: RolloutStatus,
    values: Mapping[str, Any] | None = None,
) -> bool:
    """A guarded status change: False when the rollout was no longer in `source`."""
    update = (
        rollouts.update()
        .where(rollouts.c.id == rollout_id, rollouts.c.status == source)
        .values(status=target, **(values or {}))
    )
    return connection.execute(update).rowcount == 1


def link(
    connection: sa.Connection, target_id: int, operation_id: int, replaces: int | None = None
) -> bool:
    """Record the target's operation (in place of `replaces`): False if another worker did."""
    current = rollout_targets.c.operation_id
    update = (
        rollout_targets.update()
        .where(
            rollout_targets.c.id == target_id,
            current.is_(None) if replaces is None else current == replaces,
        )
        .values(operation_id=operation_id, problem_code=None, problem_detail=None)
    )
    return connection.execute(update).rowcount == 1


def set_problem(connection: sa.Connection, target_id: int, code: str, detail: str) -> None:
    connection.execute(
        rollout_targets.update()
        .where(rollout_targets.c.id == target_id, rollout_targets.c.operation_id.is_(None))
        .values(problem_code=code, problem_detail=detail)
    )


def skip_unqueued(connection: sa.Connection, rollout_id: int, code: str, detail: str) -> None:
    """Give every target of an ended rollout that never had an operation (nor a problem) why."""
    connection.execute(
        rollout_targets.update()
        .where(
            rollout_targets.c.rollout_id == rollout_id,
            rollout_targets.c.operation_id.is_(None),
            rollout_targets.c.problem_code.is_(None),
        )
        .values(problem_code=code, problem_detail=detail)
    )


def waiting_operations(connection: sa.Connection, rollout_id: int) -> list[tuple[int, str]]:
    """(id, status) of its operations not yet running: queued or awaiting approval."""
    waiting = (Status.QUEUED, Status.AWAITING_APPROVAL)
    query = sa.select(operations.c.id, operations.c.status).where(
        operations.c.rollout_id == rollout_id, operations.c.status.in_(waiting)
    )
    return [(int(row.id), str(row.status)) for row in connection.execute(query)]
