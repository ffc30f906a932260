"""Use case: the checksum ledger of applied revision files, like Flyway's `validate`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from service.errors import RevisionsModifiedError
from service.migrator.scripts import RevisionGraph
from service.services.access import Permission
from service.services.audit import context_event
from service.services.context import RequestContext
from service.services.registry import Managed, Registry
from service.store import audit
from service.store import checksums as ledger
from service.store.audit import AuditEvent
from service.store.checksums import Checksum
from service.store.db import ControlStore, utcnow


@dataclass(frozen=True)
class Verification:
    database: str
    checked: int  # applied revisions compared
    modified: list[dict[str, Any]] = field(default_factory=list)
    missing: list[dict[str, Any]] = field(default_factory=list)
    unrecorded: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.modified or self.missing)


def record_applied(
    connection: sa.Connection,
    managed: Managed,
    heads: tuple[Sequence[str] | None, Sequence[str] | None],
    actor: str,
    operation_id: int,
) -> None:
    """After an operation: record the files of the revisions it applied or stamped, forget
    those it took off. Unknown heads (files gone) change nothing."""
    before, after = heads
    graph = managed.graph()
    if after is None or graph.unknown(after) or graph.unknown(before or ()):
        return
    was, now = graph.applied(before or ()), graph.applied(after)
    name, at = managed.database.name, utcnow()
    ledger.forget(connection, name, was - now)
    ledger.record(
        connection,
        (_checksum(graph, name, revision, actor, operation_id, at) for revision in now - was),
    )


def verify(
    registry: Registry, store: ControlStore, name: str, current: Sequence[str] | None = None
) -> Verification:
    """Compare the applied revisions with the files now (with the database's heads, read
    now unless the caller just did)."""
    managed = registry.get(name)
    graph = managed.graph()
    if current is None:
        current = managed.state.current_heads(graph)
    with store.transaction() as connection:
        recorded = ledger.for_database(connection, name)
    applied = _applied(graph, current)
    result = Verification(name, len(applied))
    for revision in sorted(applied):
        info, row = graph.info(revision), recorded.get(revision)
        if row is None:
            result.unrecorded.append({"revision": revision, "path": info.path})
        elif row.sha256 != info.sha256:
            result.modified.append({**_recorded(row), "sha256_now": info.sha256})
    gone = [row for revision, row in recorded.items() if not graph.knows(revision)]
    result.missing.extend(_recorded(row) for row in sorted(gone, key=lambda r: r.revision))
    result.missing.extend(
        {"revision": revision, "path": None} for revision in graph.unknown(current)
    )
    return result


def refuse_if_modified(
    registry: Registry,
    store: ControlStore,
    name: str,
    accept_modified: bool,
    context: RequestContext,
    current: Sequence[str] | None = None,
) -> None:
    """409 revisions-modified before queueing on edited or missing files, unless an admin
    accepts them (the caller audits the request with `accept_modified`)."""
    if accept_modified:
        context.principal.require(Permission.OVERRIDE, name)
        return
    found = verify(registry, store, name, current)
    if not found.ok:
        names = [item["revision"] for item in found.modified + found.missing]
        raise RevisionsModifiedError(
            f"Applied revision(s) {', '.join(names)} of {name!r} changed or disappeared since "
            "they were applied. Restore the files, or have an admin accept them "
            '(POST .../verify/accept, or "accept_modified": true).',
            modified=found.modified,
            missing=found.missing,
        )


def accept(
    registry: Registry, store: ControlStore, name: str, context: RequestContext
) -> Verification:
    """Record the files now as the baseline of every applied revision (admin, audited)."""
    context.principal.require(Permission.OVERRIDE, name)
    found = verify(registry, store, name)
    managed = registry.get(name)
    graph = managed.graph()
    applied = _applied(graph, managed.state.current_heads(graph))
    details = {
        "modified": [item["revision"] for item in found.modified],
        "missing": [item["revision"] for item in found.missing],
        "unrecorded": [item["revision"] for item in found.unrecorded],
    }
    at = utcnow()
    with store.transaction() as connection:
        ledger.forget(connection, name, details["missing"])
        ledger.record(
            connection, (_checksum(graph, name, r, context.actor, None, at) for r in applied)
        )
        audit.append(connection, _accepted(context, name, details))
    return verify(registry, store, name)


def _accepted(context: RequestContext, name: str, details: dict[str, Any]) -> AuditEvent:
    return context_event(context, "checksums.accepted", "accepted", details, database=name)


def _applied(graph: RevisionGraph, current: Sequence[str]) -> frozenset[str]:
    if graph.unknown(current):  # a head the files lack: its ancestry cannot be told
        return frozenset()
    return graph.applied(current)


def _checksum(
    graph: RevisionGraph,
    database: str,
    revision: str,
    actor: str,
    operation_id: int | None,
    at: Any,
) -> Checksum:
    info = graph.info(revision)
    return Checksum(database, revision, info.path, info.sha256 or "", at, actor, operation_id)


def _recorded(row: Checksum) -> dict[str, Any]:
    return {
        "revision": row.revision,
        "path": row.path,
        "sha256_recorded": row.sha256,
        "applied_by": row.actor,
        "applied_at": row.recorded_at.isoformat(),
        "operation_id": row.operation_id,
    }
