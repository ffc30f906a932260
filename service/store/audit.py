"""The append-only audit log: append an event, and query events newest first."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from service.store.db import AUDIT_LISTENERS
from service.store.tables import audit_events

# Details echo what callers sent (refused bodies, field names): bound what one event keeps.
MAX_TEXT = 2000
MAX_ITEMS = 50
MAX_DEPTH = 6
_LARGEST_INT = 2**63
_SURROGATES = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class AuditEvent:
    """Who asked for what, what happened, and when; `id` grows with every event."""

    actor: str
    action: str
    outcome: str
    occurred_at: dt.datetime
    on_behalf_of: str | None = None
    database: str | None = None
    operation_id: int | None = None
    request_id: str | None = None
    client_address: str | None = None
    user_agent: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    worker: str | None = None  # the worker that carried the request out, if one did
    id: int | None = None


def append(connection: sa.Connection, event: AuditEvent) -> int:
    """Write the event, then tell the store's audit listeners in the same transaction;
    returns its id (a drift check is read back by it)."""
    values = {name: getattr(event, name) for name in AuditEvent.__dataclass_fields__}
    values.pop("id")
    values = {k: storable_text(v) if isinstance(v, str) else v for k, v in values.items()}
    values["details"] = storable(dict(event.details))
    key = connection.execute(audit_events.insert().values(**values)).inserted_primary_key
    listeners = connection.info.get(AUDIT_LISTENERS) or ()
    if listeners and key is not None:
        written = dataclasses.replace(event, id=int(key[0]))
        for listener in listeners:
            listener(connection, written)
    return int(key[0]) if key is not None else 0


def storable(value: Any, depth: int = 0) -> Any:
    """`value` as JSON every backend stores and reads back: PostgreSQL refuses NUL and lone
    surrogates in text and json, and NaN in json; sizes and depth are bounded."""
    if isinstance(value, str):
        return storable_text(value)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if -_LARGEST_INT < value < _LARGEST_INT else f"<{value.bit_length()}-bit int>"
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if depth >= MAX_DEPTH:
        return "..."
    if isinstance(value, Mapping):
        items = list(value.items())[:MAX_ITEMS]
        return {storable_text(str(k))[:200]: storable(v, depth + 1) for k, v in items}
    if isinstance(value, list | tuple | set | frozenset):
        return [storable(item, depth + 1) for item in list(value)[:MAX_ITEMS]]
    return storable_text(str(value))


def storable_text(text: str) -> str:
    """Without NUL, with lone surrogates replaced (U+FFFD), at most MAX_TEXT characters."""
    text = text[:MAX_TEXT].replace("\x00", "")
    return _SURROGATES.sub("\ufffd", text)


def query(
    connection: sa.Connection,
    *,
    filters: Mapping[str, Any],
    since: dt.datetime | None,
    until: dt.datetime | None,
    before_id: int | None,
    limit: int,
    databases: frozenset[str] | None = None,
) -> list[AuditEvent]:
    """Events newest first, below `before_id` (keyset pagination: stable while events arrive);
    only events of `databases` when it is given."""
    conditions = [audit_events.c[key] == value for key, value in filters.items() if value]
    if databases is not None:
        conditions.append(audit_events.c.database.in_(sorted(databases)))
    # Stored in UTC (as text on SQLite): compare in UTC whatever offset the client sent.
    if since is not None:
        conditions.append(audit_events.c.occurred_at >= since.astimezone(dt.UTC))
    if until is not None:
        conditions.append(audit_events.c.occurred_at < until.astimezone(dt.UTC))
    if before_id is not None:
        conditions.append(audit_events.c.id < before_id)
    rows = connection.execute(
        sa.select(audit_events).where(*conditions).order_by(audit_events.c.id.desc()).limit(limit)
    )
    return [_event(row) for row in rows]


def _event(row: sa.Row[Any]) -> AuditEvent:
    values = dict(row._mapping)
    occurred = values["occurred_at"]
    if occurred.tzinfo is None:
        values["occurred_at"] = occurred.replace(tzinfo=dt.UTC)
    return AuditEvent(**values)
