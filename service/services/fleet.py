"""Fleet views: every database's cached state, filtered and counted, and its refresh."""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from service.errors import MigctlError
from service.lifecycle import Status
from service.services.databases import DatabaseSummary, database_status, summarize
from service.services.registry import Managed, Registry
from service.store import states
from service.store.db import ControlStore, utcnow
from service.store.states import CachedState

logger = logging.getLogger(__name__)
UNAVAILABLE = "unavailable"
NOT_READ = "unknown"  # no worker has read it yet
STATES = ("up_to_date", "behind", "unknown_revision", UNAVAILABLE, NOT_READ)
_BATCH = 50  # rows per transaction: the cache fills while a large fleet is still being read


@dataclass(frozen=True)
class FleetEntry(DatabaseSummary):
    """A database with the state a worker last read (state `unknown` until one has)."""

    state: str
    pending_count: int | None
    current_heads: list[str]
    state_problem: str | None
    state_read_at: dt.datetime | None
    last_operation_id: int | None
    last_operation_status: str | None


@dataclass(frozen=True)
class Fleet:
    databases: int
    by_environment: dict[str, dict[str, int]]
    not_up_to_date: list[str]
    running_operations: dict[str, int]
    failed: list[str]  # databases whose newest operation failed or was interrupted


def label_matches(labels: Mapping[str, str], wanted: Sequence[str]) -> bool:
    """Each of `wanted` is `key=value` or a bare `key` (present with any value)."""
    for item in wanted:
        key, has_value, value = item.partition("=")
        if key not in labels or (has_value and labels[key] != value):
            return False
    return True


def select(
    registry: Registry, *, environment: str | None = None, labels: Sequence[str] = ()
) -> list[Managed]:
    return [
        managed
        for managed in sorted(registry.all(), key=lambda m: m.database.name)
        if (environment is None or managed.database.environment == environment)
        and label_matches(managed.database.labels, labels)
    ]


def fleet_entries(
    registry: Registry,
    store: ControlStore,
    *,
    state: str | None = None,
    environment: str | None = None,
    labels: Sequence[str] = (),
) -> list[FleetEntry]:
    """The selected databases with their cached state; two queries whatever the fleet's size."""
    with store.transaction() as connection:
        cached, last = states.load_all(connection), states.last_operations(connection)
    chosen = [
        managed
        for managed in select(registry, environment=environment, labels=labels)
        if state is None or _state_of(cached.get(managed.database.name)) == state
    ]  # summaries (masked URLs) only for what is answered: they cost at 1,000 databases
    return [_entry(m, cached.get(m.database.name), last.get(m.database.name)) for m in chosen]


def _state_of(cached: CachedState | None) -> str:
    return cached.state if cached else NOT_READ


def _entry(
    managed: Managed, cached: CachedState | None, last: tuple[int, str] | None
) -> FleetEntry:
    return FleetEntry(
        **vars(summarize(managed)),
        state=_state_of(cached),
        pending_count=cached.pending_count if cached else None,
        current_heads=cached.current_heads if cached else [],
        state_problem=cached.problem_code if cached else None,
        state_read_at=cached.refreshed_at if cached else None,
        last_operation_id=last[0] if last else None,
        last_operation_status=last[1] if last else None,
    )


def fleet(registry: Registry, store: ControlStore) -> Fleet:
    """Counts per environment and state, and the databases that need a look."""
    with store.transaction() as connection:
        cached, last = states.state_names(connection), states.last_operations(connection)
        running = states.running(connection)
    counts: dict[str, Counter[str]] = {}
    not_up_to_date, failed = [], []
    for managed in sorted(registry.all(), key=lambda m: m.database.name):
        name = managed.database.name
        state = cached.get(name, NOT_READ)
        counts.setdefault(managed.database.environment, Counter())[state] += 1
        if state != "up_to_date":
            not_up_to_date.append(name)
        if name in last and last[name][1] in (Status.FAILED, Status.INTERRUPTED):
            failed.append(name)
    visible = {managed.database.name for managed in registry.all()}
    return Fleet(
        databases=len(visible),
        by_environment={env: dict(sorted(c.items())) for env, c in sorted(counts.items())},
        not_up_to_date=not_up_to_date,
        running_operations={db: op for db, op in sorted(running.items()) if db in visible},
        failed=failed,
    )


def refresh_states(registry: Registry, store: ControlStore, max_age_seconds: float) -> int:
    """Read the databases whose cached state is older than `max_age_seconds` (or older than
    their last operation's end); one SELECT each once its project has named the version
    table. Returns how many were read."""
    now = utcnow()
    names = [m.database.name for m in registry.all()]
    with store.transaction() as connection:
        due = states.stale(connection, names, now - dt.timedelta(seconds=max_age_seconds))
    ordered = [name for name in names if name in due]
    for start in range(0, len(ordered), _BATCH):
        batch = [read_state(registry, name) for name in ordered[start : start + _BATCH]]
        with store.transaction() as connection:
            states.save(connection, batch)
    return len(ordered)


def read_state(registry: Registry, name: str) -> CachedState:
    """The database's state now; `unavailable` with the problem's code when it cannot be read."""
    try:
        status = database_status(registry, name)
    except MigctlError as exc:
        logger.info("state of %s not read: %s", name, exc.code)
        return CachedState(name, UNAVAILABLE, [], None, exc.code, utcnow())
    return CachedState(
        name, str(status.state), status.current_heads, status.pending_count, None, utcnow()
    )
