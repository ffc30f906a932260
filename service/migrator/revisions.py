"""RevisionInfo: what migctl tells about one Alembic revision, read once from its export."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from alembic.util import to_tuple

from service.migrator.exported import ExportedRevision

_HEADER = re.compile(r"^(Revision ID|Revises|Create Date):\s*(.*)$")


@dataclass(frozen=True)
class RevisionInfo:
    """One revision file: identity, place in the graph and documentation."""

    revision: str
    down_revisions: tuple[str, ...]
    next_revisions: tuple[str, ...]
    branch_labels: tuple[str, ...]
    depends_on: tuple[str, ...]
    message: str
    description: str
    created_at: datetime | None
    path: str
    is_head: bool
    is_base: bool
    is_branch_point: bool
    is_merge: bool
    sha256: str | None = None  # of the revision file, when it was read
    applied: bool | None = None


def revision_info(script: ExportedRevision) -> RevisionInfo:
    """Describe `script`; `path` is relative to the project directory when it lies inside."""
    message, description, created_at = _parse_docstring(script.doc or "")
    return RevisionInfo(
        revision=script.revision,
        down_revisions=tuple(to_tuple(script.down_revision, default=())),
        next_revisions=tuple(sorted(script.nextrev)),
        branch_labels=tuple(sorted(script.branch_labels)),
        depends_on=tuple(to_tuple(script.dependencies, default=())),
        message=message,
        description=description,
        created_at=created_at,
        path=script.path,
        is_head=script.is_head,
        is_base=script.is_base,
        is_branch_point=script.is_branch_point,
        is_merge=script.is_merge_point,
        sha256=script.sha256,
    )


def _parse_docstring(docstring: str) -> tuple[str, str, datetime | None]:
    """(message, the rest without Alembic's header lines, the Create Date if present)."""
    message, _, rest = docstring.strip().partition("\n")
    created_at: datetime | None = None
    kept: list[str] = []
    for line in rest.splitlines():
        header = _HEADER.match(line.strip())
        if header is None:
            kept.append(line.rstrip())
        elif header.group(1) == "Create Date":
            created_at = _parse_date(header.group(2))
    return message.strip(), "\n".join(kept).strip(), created_at


def _parse_date(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text.strip())
    except ValueError:
        return None
