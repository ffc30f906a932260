"""Readiness: is the control database usable, does every Alembic project load, and (when
one is expected) is a worker alive to run what is queued."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError

from service.errors import MigctlError
from service.services.access import Principal
from service.services.control import control_schema_behind
from service.services.registry import Registry
from service.services.workers import WorkerRecord, known_workers, stale_after
from service.store.db import ControlStore, utcnow


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


def readiness(
    registry: Registry,
    store: ControlStore,
    *,
    expect_worker: bool = False,
    poll_seconds: float = 1.0,
) -> Readiness:
    """`ready`; `degraded` while some projects are broken (the rest are served); `unavailable`
    when the control database cannot be used, its schema is behind, no project loads, or no
    worker is alive while one is expected (`serve` runs one); otherwise workers are news only."""
    control = _control_check(store)
    essential = [control]
    if control.ok:
        essential.append(_worker_check(store, expect_worker, stale_after(poll_seconds)))
    checks = [_project_check(registry, managed.database.name) for managed in registry.all()]
    broken = sum(not check.ok for check in checks)
    if not all(check.ok for check in essential) or (checks and broken == len(checks)):
        status = "unavailable"
    elif broken:
        status = "degraded"
    else:
        status = "ready"
    return Readiness(status, [*essential, *checks])


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


def _worker_check(store: ControlStore, expected: bool, stale: dt.timedelta) -> Check:
    try:
        known = known_workers(store)
    except (MigctlError, SQLAlchemyError) as exc:
        detail = exc.detail if isinstance(exc, MigctlError) else type(exc).__name__
        return Check("worker", not expected, "control-database-unavailable", detail)
    now = utcnow()
    alive = [worker for worker in known if worker.alive(now - stale)]
    if alive:
        return Check("worker", True, None, f"{len(alive)} alive, {_last_seen(alive[0], now)}")
    detail = f"no worker seen within {stale.total_seconds():g} s" + (
        f"; the last one {_last_seen(known[0], now)}" if known else ""
    )
    if expected:
        return Check("worker", False, "worker-down", detail)
    return Check("worker", True, None, f"{detail} (none expected here: serve --no-worker)")


def _last_seen(worker: WorkerRecord, now: dt.datetime) -> str:
    seen = f"seen {(now - worker.seen_at).total_seconds():.1f} s ago"
    return f"{seen}, stopped" if worker.stopped_at is not None else seen


def _project_check(registry: Registry, name: str) -> Check:
    """The project loads (its revisions import, its env.py compiles), and env.py did not
    fail the last time it ran for this database: never run here, only remembered."""
    managed = registry.get(name)
    try:
        graph = managed.graph()
    except MigctlError as exc:
        return Check(f"project:{name}", False, exc.code, exc.detail, database=name)
    failed = managed.state.env_py_failure(graph)
    if failed is not None:
        return Check(f"project:{name}", False, failed.code, failed.detail, database=name)
    return Check(f"project:{name}", True, database=name)
