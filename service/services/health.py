"""Readiness: can every managed database's Alembic project be loaded."""

from __future__ import annotations

from dataclasses import dataclass

from service.errors import MigctlError
from service.services.registry import Registry


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    code: str | None = None
    detail: str | None = None


@dataclass(frozen=True)
class Readiness:
    status: str
    checks: list[Check]


def readiness(registry: Registry) -> Readiness:
    """`ready`, `degraded` (some projects broken: the rest are served) or `unavailable`."""
    checks = [_project_check(registry, managed.database.name) for managed in registry.all()]
    broken = sum(not check.ok for check in checks)
    if not broken:
        status = "ready"
    elif broken < len(checks):
        status = "degraded"
    else:
        status = "unavailable"
    return Readiness(status, checks)


def _project_check(registry: Registry, name: str) -> Check:
    try:
        registry.get(name).graph()
    except MigctlError as exc:
        return Check(f"project:{name}", False, exc.code, exc.detail)
    return Check(f"project:{name}", True)
