"""Use case: read the audit log, newest first, with filters and keyset pagination."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

from service.secrets import Redactor
from service.services.context import RequestContext
from service.store import audit
from service.store.audit import AuditEvent
from service.store.db import ControlStore, utcnow

# A flood of bad tokens must not fill the log: per client address, at most this many
# denial events a window (per process); the next event says how many were left out.
DENIALS_PER_WINDOW = 5
WINDOW_SECONDS = 60.0
_TOKENS = Redactor()  # no configured secret: token shapes only


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
    databases: frozenset[str] | None = None,
) -> AuditPage:
    """Events below id `before` (newest first); `next_before` continues where this page ends.

    Ids only grow, so a page never shifts when new events arrive meanwhile.
    """
    with store.transaction() as connection:
        events = audit.query(
            connection,
            filters=filters,
            since=since,
            until=until,
            before_id=before,
            limit=limit + 1,
            databases=databases,
        )
    more = len(events) > limit
    events = events[:limit]
    return AuditPage(events, events[-1].id if more and events else None)


class DenialLimiter:
    """Per client address, at most DENIALS_PER_WINDOW denial events a window."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._windows: dict[str, tuple[float, int, int]] = {}  # start, written, suppressed

    def admit(self, address: str) -> int | None:
        """None to suppress this event; else how many were suppressed before it."""
        now = time.monotonic()
        with self._lock:
            if len(self._windows) > 10_000:
                self._windows.clear()
            start, written, suppressed = self._windows.get(address, (now, 0, 0))
            if now - start >= WINDOW_SECONDS:
                start, written = now, 0
            if written >= DENIALS_PER_WINDOW:
                self._windows[address] = (start, written, suppressed + 1)
                return None
            self._windows[address] = (start, written + 1, 0)
            return suppressed


def context_event(
    context: RequestContext,
    action: str,
    outcome: str,
    details: Mapping[str, object],
    *,
    database: str | None = None,
    operation_id: int | None = None,
) -> AuditEvent:
    """An audit event of what a request did: who asked, from where, for whom, and when."""
    return AuditEvent(
        actor=context.actor,
        on_behalf_of=context.on_behalf_of,
        action=action,
        outcome=outcome,
        occurred_at=utcnow(),
        database=database,
        operation_id=operation_id,
        request_id=context.request_id,
        client_address=context.client_address,
        user_agent=context.user_agent,
        details=details,
    )


def record_denial(
    store: ControlStore,
    limiter: DenialLimiter,
    context: RequestContext,
    *,
    code: str,
    reason: str,
    target: str,
) -> None:
    """Audit a refused authentication (rate-limited per client address)."""
    suppressed = limiter.admit(context.client_address or "-")
    if suppressed is None:
        return
    event = AuditEvent(
        actor=context.actor,
        on_behalf_of=context.on_behalf_of,
        action="auth.denied",
        outcome="refused",
        occurred_at=utcnow(),
        request_id=context.request_id,
        client_address=context.client_address,
        user_agent=context.user_agent,
        details={
            "code": code,
            "reason": reason,
            "request": _TOKENS.redact(target),  # a token sent in the path or query string
            "suppressed_before": suppressed,
        },
    )
    with store.transaction() as connection:
        audit.append(connection, event)


def record_refusal(
    store: ControlStore,
    context: RequestContext,
    *,
    database: str | None,
    details: Mapping[str, object],
    operation_id: int | None = None,
) -> None:
    """Audit a request to change a database that was refused (`operation.refused`)."""
    event = context_event(
        context,
        "operation.refused",
        "refused",
        details,
        database=database,
        operation_id=operation_id,
    )
    with store.transaction() as connection:
        audit.append(connection, event)
