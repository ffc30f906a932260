"""Use cases about revisions: the list, one revision, heads, branch points, current, pending."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass

from service.errors import DatabaseUnavailableError, UnknownDatabaseRevisionError
from service.migrator.revisions import RevisionInfo as RevisionInfo
from service.migrator.scripts import RevisionGraph
from service.services.registry import Managed, Registry


@dataclass(frozen=True)
class RevisionPage:
    items: list[RevisionInfo]
    total: int


@dataclass(frozen=True)
class CurrentRevisions:
    """The version table's rows (`heads`), and what `alembic current` shows (`revisions`)."""

    database: str
    heads: list[str]
    revisions: list[RevisionInfo]
    unknown_revisions: list[str]


@dataclass(frozen=True)
class PendingPlan:
    """The revisions `alembic upgrade <to>` would apply, in the order it would apply them."""

    database: str
    current_heads: list[str]
    to: str
    target_revisions: list[str]
    revisions: list[RevisionInfo]
    count: int


class _Snapshot:
    """A graph and the database's heads read once, for one request.

    With `database_optional`, a database that cannot be read leaves `applied` unknown (None)
    instead of failing: the graph alone answers what the scripts contain.
    """

    def __init__(self, managed: Managed, *, database_optional: bool = False) -> None:
        self.graph: RevisionGraph = managed.graph()
        try:
            self.current = managed.state.current_heads(self.graph)
        except DatabaseUnavailableError:
            if not database_optional:
                raise
            self.current, self.unknown, self._applied = (), [], None
            return
        self.unknown = self.graph.unknown(self.current)
        self._applied = None if self.unknown else self.graph.applied(self.current)

    def marked(self, infos: Iterable[RevisionInfo]) -> list[RevisionInfo]:
        """`infos` with `applied` set, or left None while the database state is unknown."""
        if self._applied is None:
            return list(infos)
        return [dataclasses.replace(i, applied=i.revision in self._applied) for i in infos]


def list_revisions(registry: Registry, name: str, *, first: int, last: int) -> RevisionPage:
    """Revisions newest first (as `alembic history` prints them), items first..last inclusive."""
    snapshot = _Snapshot(registry.get(name), database_optional=True)
    everything = snapshot.graph.newest_first
    return RevisionPage(snapshot.marked(everything[first : last + 1]), len(everything))


def get_revision(registry: Registry, name: str, spec: str) -> RevisionInfo:
    """One revision named by id, partial id, head, base, branch@head or a relative step."""
    snapshot = _Snapshot(registry.get(name))
    return snapshot.marked([snapshot.graph.resolve_one(spec, snapshot.current)])[0]


def list_heads(registry: Registry, name: str) -> list[RevisionInfo]:
    snapshot = _Snapshot(registry.get(name), database_optional=True)
    return snapshot.marked(snapshot.graph.heads())


def list_branch_points(registry: Registry, name: str) -> list[RevisionInfo]:
    snapshot = _Snapshot(registry.get(name), database_optional=True)
    return snapshot.marked(snapshot.graph.branch_points())


def current_revisions(registry: Registry, name: str) -> CurrentRevisions:
    snapshot = _Snapshot(registry.get(name))
    graph = snapshot.graph
    known = [r for r in snapshot.current if graph.knows(r)]
    return CurrentRevisions(
        database=name,
        heads=list(snapshot.current),
        revisions=snapshot.marked(graph.effective_current(known)),
        unknown_revisions=snapshot.unknown,
    )


def pending_revisions(registry: Registry, name: str, *, to: str = "heads") -> PendingPlan:
    """Raises UnknownDatabaseRevisionError when the database is ahead of its scripts."""
    snapshot = _Snapshot(registry.get(name))
    if snapshot.unknown:
        raise UnknownDatabaseRevisionError(name, snapshot.unknown)
    targets = snapshot.graph.resolve(to, snapshot.current)
    pending = snapshot.graph.pending(snapshot.current, to)
    return PendingPlan(
        database=name,
        current_heads=list(snapshot.current),
        to=to,
        target_revisions=[info.revision for info in targets],
        revisions=snapshot.marked(pending),
        count=len(pending),
    )
