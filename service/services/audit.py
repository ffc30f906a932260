"""Use case: read the audit log, newest first, with filters and keyset pagination."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

from service.store import audit
from service.store.audit import AuditEvent
from service.store.db import ControlStore


@dataclass(frozen=True)
class AuditPage:
    events: list[AuditEvent]
    next_before: int | None


def list_audit_events(
    store: ControlStore,
    *,
    filters: Mapping[str, object],
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    before: int | None = None,
    limit: int = 50,
) -> AuditPage:
    """Events below id `before` (newest first); `next_before` continues where this page ends.

    Ids only grow, so a page never shifts when new events arrive meanwhile.
    """
    with store.transaction() as connection:
        events = audit.query(
            connection, filters=filters, since=since, until=until, before_id=before, limit=limit + 1
        )
    more = len(events) > limit
    events = events[:limit]
    return AuditPage(events, events[-1].id if more and events else None)
