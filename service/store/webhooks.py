"""The webhook outbox: delivery rows, claimed by any worker (SKIP LOCKED / BEGIN IMMEDIATE)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from service.store.db import aware
from service.store.tables import webhook_deliveries, webhooks_disabled

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"


@dataclass(frozen=True)
class DeliveryRecord:
    id: int
    webhook: str
    event_id: int
    event_type: str
    database: str | None
    operation_id: int | None
    body: str
    status: str
    attempts: int
    next_attempt_at: dt.datetime
    created_at: dt.datetime
    last_attempt_at: dt.datetime | None
    last_status_code: int | None
    last_error: str | None


_TIMES = ("next_attempt_at", "created_at", "last_attempt_at")


def _record(row: sa.Row[Any]) -> DeliveryRecord:
    values: dict[str, Any] = dict(row._mapping)
    for key in _TIMES:
        values[key] = aware(values[key])
    return DeliveryRecord(**values)


def insert(connection: sa.Connection, values: Mapping[str, Any]) -> None:
    connection.execute(webhook_deliveries.insert().values(**values))


def claim_due(
    connection: sa.Connection, now: dt.datetime, lease: dt.timedelta, limit: int
) -> list[DeliveryRecord]:
    """Take up to `limit` due pending deliveries: each attempt is counted now, and the row
    hides from other workers for `lease` (a worker that dies mid-send leaves it to retry)."""
    query = (
        sa.select(webhook_deliveries.c.id)
        .where(webhook_deliveries.c.status == PENDING, webhook_deliveries.c.next_attempt_at <= now)
        .order_by(webhook_deliveries.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    ids = list(connection.execute(query).scalars())
    if not ids:
        return []
    connection.execute(
        webhook_deliveries.update()
        .where(webhook_deliveries.c.id.in_(ids))
        .values(
            attempts=webhook_deliveries.c.attempts + 1,
            next_attempt_at=now + lease,
            last_attempt_at=now,
        )
    )
    rows = connection.execute(
        sa.select(webhook_deliveries).where(webhook_deliveries.c.id.in_(ids)).order_by("id")
    )
    return [_record(row) for row in rows]


def record_attempt(connection: sa.Connection, delivery_id: int, values: Mapping[str, Any]) -> None:
    connection.execute(
        webhook_deliveries.update().where(webhook_deliveries.c.id == delivery_id).values(**values)
    )


def get(connection: sa.Connection, delivery_id: int) -> DeliveryRecord | None:
    query = sa.select(webhook_deliveries).where(webhook_deliveries.c.id == delivery_id)
    row = connection.execute(query).first()
    return None if row is None else _record(row)


def list_page(
    connection: sa.Connection, webhook: str, first: int, last: int
) -> tuple[list[DeliveryRecord], int]:
    where = webhook_deliveries.c.webhook == webhook
    total = connection.execute(
        sa.select(sa.func.count()).select_from(webhook_deliveries).where(where)
    ).scalar_one()
    query = (
        sa.select(webhook_deliveries)
        .where(where)
        .order_by(webhook_deliveries.c.id.desc())
        .offset(first)
        .limit(last - first + 1)
    )
    return [_record(row) for row in connection.execute(query)], int(total)


def disable(connection: sa.Connection, webhook: str, url_sha256: str, reason: str) -> None:
    connection.execute(webhooks_disabled.delete().where(webhooks_disabled.c.webhook == webhook))
    connection.execute(
        webhooks_disabled.insert().values(
            webhook=webhook,
            url_sha256=url_sha256,
            disabled_at=dt.datetime.now(dt.UTC),
            reason=reason,
        )
    )


def disabled(connection: sa.Connection) -> dict[str, tuple[str, str]]:
    """Disabled subscriptions: name -> (sha256 of the URL that answered 410, reason)."""
    rows = connection.execute(sa.select(webhooks_disabled))
    return {row.webhook: (row.url_sha256, row.reason) for row in rows}


def prune(connection: sa.Connection, before: dt.datetime) -> int:
    """Forget settled deliveries created before `before`; pending ones always stay."""
    query = webhook_deliveries.delete().where(
        webhook_deliveries.c.status.in_((DELIVERED, FAILED)),
        webhook_deliveries.c.created_at < before,
    )
    return int(connection.execute(query).rowcount)
