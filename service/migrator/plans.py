"""Plans: the steps an upgrade, downgrade or stamp would take, and what they are called."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from alembic.runtime.migration import MigrationStep, StampStep
from alembic.script.revision import _relative_destination

from service.errors import MultipleHeadsError, RelativeStepError
from service.migrator.scripts import RevisionGraph, translated


def plan_steps(
    graph: RevisionGraph, action: str, start: tuple[str, ...], to: str
) -> list[MigrationStep]:
    """The steps Alembic would take from `start`, computed as its commands do.

    Bad ranges raise the revision errors of the read API; a relative downgrade from several
    heads raises MultipleHeadsError (Alembic only warns, then guesses).
    """
    script, heads = graph.script, start or tuple(graph.script.get_heads())
    current: Any = start  # Alembic's commands pass the heads tuple; its hints say str
    try:
        with translated(to, heads):
            if action == "upgrade":
                return list(script._upgrade_revs(to, current))
            if action == "downgrade":
                _refuse_relative_downgrade_from_several_heads(to, start)
                return list(script._downgrade_revs(to, current))
            return list(script._stamp_revs(tuple(to.split(",")), current))
    except RelativeStepError as exc:
        raise graph.walk_error(to, start) or exc from exc


def _refuse_relative_downgrade_from_several_heads(to: str, start: Sequence[str]) -> None:
    # Alembic only warns, then picks the first version row: never guess for a pipeline.
    match = _relative_destination.match(to)
    if match and match.group(1) is None and match.group(2) is None and len(set(start)) > 1:
        raise MultipleHeadsError(
            f"{to!r} from several heads ({', '.join(start)}) is ambiguous; "
            "name the branch (branch@-1) or a revision.",
            heads=list(start),
        )


def resolve_targets(
    graph: RevisionGraph, action: str, start: tuple[str, ...], to: str
) -> list[str]:
    """The full ids a destination names (empty for base)."""
    if action == "stamp":
        return [r.revision for part in to.split(",") for r in graph.resolve(part, ())]
    return [r.revision for r in graph.resolve(to, start)]


def step_revision(step: MigrationStep) -> str:
    if isinstance(step, StampStep):
        return ",".join(step.to_revisions) or "base"
    return str(step.revision.revision)  # type: ignore[attr-defined]


def step_direction(step: MigrationStep) -> str:
    if isinstance(step, StampStep):
        return "stamp"
    return "upgrade" if step.is_upgrade else "downgrade"
