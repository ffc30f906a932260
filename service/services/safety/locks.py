"""Use case: who holds a database's migration lock, and releasing a lock whose holder is gone."""

from __future__ import annotations

from typing import Any

from service.errors import LockHeldError
from service.lifecycle import Status
from service.migrator.lockinfo import inspect_lock, release_expired_lease
from service.services.access import Permission
from service.services.audit import context_event
from service.services.context import RequestContext
from service.services.registry import Registry
from service.store import audit
from service.store import operations as ops
from service.store.db import ControlStore, utcnow


def lock_status(registry: Registry, store: ControlStore, name: str) -> dict[str, Any]:
    """The lock as the database sees it, beside the operation migctl runs there (if any)."""
    managed = registry.get(name)
    # Other sessions' queries may quote a secret of the database's configuration.
    found = managed.redactor.redact_value(inspect_lock(managed.scripts, managed.database))
    with store.transaction() as connection:
        running = ops.latest_for(connection, name, [Status.RUNNING])
    operation = None
    if running is not None:
        expired = running.lease_expires_at is not None and running.lease_expires_at < utcnow()
        operation = {
            "id": running.id,
            "worker_id": running.worker_id,
            "heartbeat_at": running.heartbeat_at,
            "lease_expires_at": running.lease_expires_at,
            "lease_expired": expired,
        }
    return {"database": name, **found, "operation": operation}


def release(
    registry: Registry, store: ControlStore, name: str, context: RequestContext
) -> dict[str, Any]:
    """Clear a lease whose holder let it expire (admin, audited); LockHeldError while a live
    session holds the lock (a PostgreSQL advisory lock ends with its session by itself)."""
    context.principal.require(Permission.OVERRIDE, name)
    managed = registry.get(name)
    status = lock_status(registry, store, name)
    released = False
    if status.get("lease") is not None:
        released = bool(release_expired_lease(managed.scripts, managed.database)["released"])
    refusal = _refusal(name, status) if not released else None
    _audit(store, context, name, status, "refused" if refusal else "released")
    if refusal is not None:
        raise refusal
    return lock_status(registry, store, name)


def _refusal(name: str, status: dict[str, Any]) -> LockHeldError | None:
    lease, holder = status.get("lease"), status.get("holder")
    if lease is not None and not lease["expired"]:
        detail = f"{lease['holder']} holds the lease of {name!r} until {lease['expires_at']}."
        return LockHeldError(detail, lease=lease)
    if holder is not None:
        detail = f"Session {holder['pid']} ({holder['state']}) holds the lock of {name!r}."
        return LockHeldError(detail, holder=holder)
    return None  # nothing held: the lock ended with its session


def _audit(
    store: ControlStore, context: RequestContext, name: str, status: dict[str, Any], outcome: str
) -> None:
    details = {key: status.get(key) for key in ("kind", "holder", "lease")}
    event = context_event(context, "lock.released", outcome, details, database=name)
    with store.transaction() as connection:
        audit.append(connection, event)
