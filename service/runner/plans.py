"""The steps an upgrade, downgrade or stamp takes, computed as the alembic commands do."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from alembic.runtime.migration import MigrationStep, StampStep
from alembic.script import ScriptDirectory
from alembic.script.revision import _relative_destination

from .errors import RunnerError, translated


def plan_steps(
    script: ScriptDirectory, action: str, start: Sequence[str], to: str
) -> list[MigrationStep]:
    current: Any = tuple(start)  # the commands pass the heads tuple; Alembic's hints say str
    with translated(to, list(start) or list(script.get_heads())):
        if action == "upgrade":
            return list(script._upgrade_revs(to, current))
        if action == "downgrade":
            _refuse_relative_downgrade_from_several_heads(to, start)
            return list(script._downgrade_revs(to, current))
        return list(script._stamp_revs(tuple(to.split(",")), current))


def _refuse_relative_downgrade_from_several_heads(to: str, start: Sequence[str]) -> None:
    # Alembic only warns, then picks the first version row: never guess for a pipeline.
    match = _relative_destination.match(to)
    if match and match.group(1) is None and match.group(2) is None and len(set(start)) > 1:
        raise RunnerError(
            "multiple-heads",
            f"{to!r} from several heads ({', '.join(start)}) is ambiguous; "
            "name the branch (branch@-1) or a revision.",
            heads=list(start),
        )


def step_revision(step: MigrationStep) -> str:
    if isinstance(step, StampStep):
        return ",".join(step.to_revisions) or "base"
    return str(step.revision.revision)  # type: ignore[attr-defined]


def step_direction(step: MigrationStep) -> str:
    if isinstance(step, StampStep):
        return "stamp"
    return "upgrade" if step.is_upgrade else "downgrade"


def described(steps: Sequence[MigrationStep]) -> list[dict[str, str]]:
    return [{"revision": step_revision(s), "direction": step_direction(s)} for s in steps]
