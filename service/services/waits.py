"""Wait until a database reaches (or passes) a revision: for init containers and deploys."""

from __future__ import annotations

import time
from dataclasses import dataclass

from service.errors import UnknownDatabaseRevisionError
from service.services.registry import Registry

MAX_WAIT_SECONDS = 60
POLL_SECONDS = 1.0  # each check reads the version table through the project's runner


@dataclass(frozen=True)
class RevisionWait:
    database: str
    revision: str
    target_revisions: list[str]
    current_heads: list[str]
    reached: bool


def wait_for_revision(
    registry: Registry, name: str, spec: str, timeout: float, poll: float = POLL_SECONDS
) -> RevisionWait:
    """Answers once every revision `spec` names is applied, or when `timeout` passes.

    The spec is resolved once, against the heads at the start (so `+1` does not move on).
    """
    managed = registry.get(name)
    graph = managed.graph()
    current = managed.state.current_heads(graph)
    targets = [info.revision for info in graph.resolve(spec, current)]
    deadline = time.monotonic() + min(timeout, MAX_WAIT_SECONDS)
    while True:
        if graph.unknown(current):
            raise UnknownDatabaseRevisionError(name, graph.unknown(current))
        reached = set(targets) <= graph.applied(current)
        if reached or time.monotonic() >= deadline:
            return RevisionWait(name, spec, targets, list(current), reached)
        time.sleep(min(poll, max(0.0, deadline - time.monotonic())))
        graph = managed.graph()
        current = managed.state.current_heads(graph)
