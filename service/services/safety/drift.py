"""Use case: drift checks, `alembic check` over HTTP; each is kept as its audit event."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass
from typing import Any

from service.errors import DriftCheckNotFoundError
from service.migrator.drift import compare_models
from service.services.audit import context_event
from service.services.context import RequestContext
from service.services.registry import Registry
from service.store import audit
from service.store.audit import MAX_ITEMS, AuditEvent
from service.store.db import ControlStore

ACTION = "drift.checked"


@dataclass(frozen=True)
class DriftCheck:
    id: int
    database: str
    checked_at: dt.datetime
    actor: str
    drift: bool  # the models and the database differ
    database_heads: list[str]
    script_heads: list[str]
    summary: dict[str, int]  # differences by kind
    total: int
    diffs: list[dict[str, Any]]  # the first MAX_ITEMS of them


def run_drift_check(
    registry: Registry, store: ControlStore, name: str, context: RequestContext
) -> DriftCheck:
    """Compare env.py's target_metadata with the database now, and keep the result."""
    managed = registry.get(name)
    graph = managed.graph()
    found = compare_models(managed.scripts, graph, managed.database)
    diffs = [managed.redactor.redact_value(item) for item in found["diffs"]]
    details = {
        "drift": bool(diffs),
        "database_heads": list(found["heads"]),
        "script_heads": [info.revision for info in graph.heads()],
        "summary": dict(Counter(str(item["kind"]) for item in diffs)),
        "total": len(diffs),
        "diffs": diffs[:MAX_ITEMS],
    }
    event = context_event(context, ACTION, "drift" if diffs else "clean", details, database=name)
    with store.transaction() as connection:
        check_id = audit.append(connection, event)
    return _check(check_id, event)


def get_drift_check(
    registry: Registry, store: ControlStore, name: str, check_id: int
) -> DriftCheck:
    registry.get(name)  # 404 for a database this token does not see
    with store.transaction() as connection:
        found = audit.query(
            connection,
            filters={"database": name, "action": ACTION},
            since=None,
            until=None,
            before_id=check_id + 1,
            limit=1,
        )
    if not found or found[0].id != check_id:
        raise DriftCheckNotFoundError(f"Database {name!r} has no drift check {check_id}.")
    return _check(check_id, found[0])


def _check(check_id: int, event: AuditEvent) -> DriftCheck:
    details = event.details
    return DriftCheck(
        id=check_id,
        database=event.database or "",
        checked_at=event.occurred_at,
        actor=event.actor,
        drift=bool(details["drift"]),
        database_heads=list(details["database_heads"]),
        script_heads=list(details["script_heads"]),
        summary=dict(details["summary"]),
        total=int(details["total"]),
        diffs=list(details["diffs"]),
    )
