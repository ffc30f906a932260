"""Readiness: can every managed database's Alembic project be loaded."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError

from service.errors import MigctlError
from service.services.access import Principal
from service.services.control import control_schema_behind
from service.services.registry import Registry
from service.store.db import ControlStore


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    code: str | None = None
    detail: str | None = None
    database: str | None = None  # whose project this checks


@dataclass(frozen=True)
class Readiness:
    status: str
    checks: list[Check]

    @property
    def problems(self) -> int:
        return sum(not check.ok for check in self.checks)


@dataclass(frozen=True)
class ReadinessSummary:
    """What anyone may read: names, paths and hosts in the checks are for token holders."""

    status: str
    problems: int


def readiness(registry: Registry, store: ControlStore) -> Readiness:
    """`ready`; `degraded` while some projects are broken (the rest are served); `unavailable`
    when the control database cannot be used, its schema is behind, or no project loads."""
    control = _control_check(store)
    checks = [_project_check(registry, managed.database.name) for managed in registry.all()]
    broken = sum(not check.ok for check in checks)
    if not control.ok or (checks and broken == len(checks)):
        status = "unavailable"
    elif broken:
        status = "degraded"
    else:
        status = "ready"
    return Readiness(status, [control, *checks])


def for_caller(readiness: Readiness, principal: Principal | None) -> Readiness | ReadinessSummary:
    """The checks a token may see (those of its databases); the summary without a token."""
    if principal is None:
        return ReadinessSummary(readiness.status, readiness.problems)
    checks = [c for c in readiness.checks if c.database is None or principal.sees(c.database)]
    return Readiness(readiness.status, checks)


def _control_check(store: ControlStore) -> Check:
    try:
        behind = control_schema_behind(store)
    except (MigctlError, SQLAlchemyError) as exc:
        detail = exc.detail if isinstance(exc, MigctlError) else type(exc).__name__
        return Check("control-database", False, "control-database-unavailable", detail)
    if behind:
        return Check(
            "control-database", False, "control-schema-behind", "run: migctl control-db upgrade"
        )
    return Check("control-database", True)


def _project_check(registry: Registry, name: str) -> Check:
    try:
        registry.get(name).graph()
    except MigctlError as exc:
        return Check(f"project:{name}", False, exc.code, exc.detail, database=name)
    return Check(f"project:{name}", True, database=name)
