"""Approvals and rejections of operations, and the operations whose approval time ran out."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from service.lifecycle import Status
from service.store.db import aware
from service.store.tables import approvals, operations


@dataclass(frozen=True)
class ApprovalRecord:
    """One person's decision on an operation, with what it reviewed."""

    operation_id: int
    decision: str  # approved or rejected
    actor: str
    on_behalf_of: str | None
    reason: str | None
    binding: Mapping[str, Any]
    decided_at: dt.datetime


def insert(connection: sa.Connection, record: ApprovalRecord) -> None:
    values = {name: getattr(record, name) for name in ApprovalRecord.__dataclass_fields__}
    connection.execute(approvals.insert().values(**{**values, "binding": dict(record.binding)}))


def list_for(connection: sa.Connection, operation_id: int) -> list[ApprovalRecord]:
    query = (
        sa.select(*(approvals.c[name] for name in ApprovalRecord.__dataclass_fields__))
        .where(approvals.c.operation_id == operation_id)
        .order_by(approvals.c.id)
    )
    return [
        ApprovalRecord(**{**row._mapping, "decided_at": aware(row.decided_at)})
        for row in connection.execute(query)
    ]


def overdue(connection: sa.Connection, now: dt.datetime) -> list[int]:
    """Operations still awaiting approval after their approval_expires_at."""
    query = sa.select(operations.c.id).where(
        operations.c.status == Status.AWAITING_APPROVAL, operations.c.approval_expires_at < now
    )
    return [int(found) for found in connection.execute(query).scalars()]
