"""A project's revision graph rebuilt from what its runner exported, planned with our Alembic.

The project's own revision files are never imported here: each revision is a plain
`Revision` carrying the ids, labels and documentation the runner read from its file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from alembic.script import ScriptDirectory
from alembic.script.revision import Revision, RevisionMap


def _runs_elsewhere(**_kwargs: Any) -> None:
    raise RuntimeError("Revisions run in the project's runner, never in migctl.")


class _NotHere:
    """The module of an exported revision: planning names its functions, never calls them."""

    upgrade = staticmethod(_runs_elsewhere)
    downgrade = staticmethod(_runs_elsewhere)


class ExportedRevision(Revision):
    """One revision file, as data: what planning and the API need, and nothing to run."""

    module = _NotHere()

    def __init__(self, exported: Mapping[str, Any]) -> None:
        super().__init__(
            exported["revision"],
            tuple(exported["down_revisions"]) or None,
            dependencies=tuple(exported["depends_on"]) or None,
            branch_labels=tuple(exported["branch_labels"]) or None,
        )
        self.doc: str = exported["doc"]
        self.path: str = exported["path"]
        self.sha256: str | None = exported.get("sha256")


class ExportedScripts(ScriptDirectory):
    """The ScriptDirectory methods that plan (_upgrade_revs, iterate_revisions ...) over data."""

    def __init__(self, revisions: Sequence[ExportedRevision]) -> None:  # no folder to read
        loaded = list(revisions)
        self.revision_map = RevisionMap(lambda: loaded)
        self.revision_map.get_revisions("heads")  # build the map now, before threads share it
