"""Why a relative step (`head-20`, `bm300003-1`, `base+9`) lands on no single revision, in
words: Alembic only says 'Ambiguous walk', 'Walked too far' or nothing at all."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from alembic.script.revision import (
    Revision,
    RevisionError,
    RevisionMap,
    _relative_destination,
)


def explain_walk(revision_map: RevisionMap, spec: str, current: Sequence[str]) -> str | None:
    """What goes wrong walking `spec`, or None when the walk lands on one revision."""
    match = _relative_destination.fullmatch(spec)
    if match is None:
        return None
    label, symbol, relative = match.groups()
    steps = int(relative)
    try:
        start, name = _start(revision_map, symbol, current, steps)
    except (RevisionError, LookupError, ValueError):
        return None  # Alembic's own message says why the start is wrong
    if steps < 0:
        return _down(revision_map, spec, start, name, -steps)
    return _up(revision_map, spec, start, name, steps, label)


def _start(
    revision_map: RevisionMap, symbol: str | None, current: Sequence[str], steps: int
) -> tuple[Revision | None, str]:
    if symbol is not None:
        found = revision_map.get_revision(symbol)
        if found is None:
            return None, "base"
        return found, symbol if symbol == found.revision else f"{symbol} ({found.revision})"
    if len(set(current)) > 1:
        raise ValueError("several current heads: Alembic says so")
    if not current:
        if steps < 0:
            raise ValueError("nothing to walk down from")
        return None, "base"
    found = revision_map.get_revision(current[0])
    return found, f"the database's current revision ({current[0]})"


def _down(
    revision_map: RevisionMap, spec: str, start: Revision | None, name: str, steps: int
) -> str | None:
    if start is None:
        return f"{spec!r} walks past base: there is no revision below base."
    node = start
    for taken in range(steps):
        parents = _revisions(revision_map, node.down_revision)
        if len(parents) > 1:
            listed = ", ".join(parent.revision for parent in parents)
            return (
                f"{spec!r}: {_after(taken, 'down', name)}{node.revision} is a merge revision "
                f"with {len(parents)} parents ({listed}): name one of them instead."
            )
        if not parents:
            if taken + 1 == steps:
                return (
                    f"{spec!r} names base (before the first revision), not a revision: "
                    f"only {taken} {_plural(taken)} below {name}."
                )
            return f"{spec!r} walks past base: only {taken} {_plural(taken)} below {name}."
        node = parents[0]
    return None


def _up(
    revision_map: RevisionMap,
    spec: str,
    start: Revision | None,
    name: str,
    steps: int,
    label: str | None,
) -> str | None:
    node = start
    for taken in range(steps):
        following = revision_map.bases if node is None else node.nextrev
        children = _revisions(revision_map, following)
        if label:
            children = [c for c in revision_map.filter_for_lineage(children, label) if c]
        if len(children) > 1:
            listed = ", ".join(child.revision for child in children)
            where = "base" if node is None else f"{node.revision} is a branch point: it"
            return (
                f"{spec!r}: {_after(taken, 'up', name)}{where} has {len(children)} children "
                f"({listed}): name one of them, or a branch (branch@+{steps})."
            )
        if not children:
            return f"{spec!r} walks past the head: only {taken} {_plural(taken)} above {name}."
        node = children[0]
    return None


def _revisions(revision_map: RevisionMap, ids: Any) -> list[Revision]:
    return [found for found in revision_map.get_revisions(ids) if isinstance(found, Revision)]


def _after(taken: int, direction: str, name: str) -> str:
    if taken == 0:
        return ""
    return f"after {taken} {_plural(taken)} {direction} from {name}, "


def _plural(count: int) -> str:
    return "revision" if count == 1 else "revisions"
