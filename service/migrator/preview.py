"""Offline SQL previews, rendered by the project's runner: what `alembic ... --sql` prints."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from service.errors import MigctlError, OfflineUnsupportedError, redacted
from service.migrator.plans import plan_steps
from service.migrator.scripts import ProjectScripts, RevisionGraph
from service.migrator.state import env_py_environ
from service.settings import ManagedDatabase


@dataclass(frozen=True)
class Segment:
    """The SQL of one step; the segments of a preview concatenate to its whole text."""

    revision: str
    direction: str
    sql: str
    statement_count: int


@dataclass(frozen=True)
class Preview:
    action: str
    from_revisions: tuple[str, ...]
    dialect: str
    segments: tuple[Segment, ...]
    sql: str
    statement_count: int
    sha256: str
    unstable: tuple[str, ...] = ()  # revisions whose SQL differed between two renders


@dataclass(frozen=True)
class PreviewRequest:
    """A range to render: `start` are resolved revision ids (empty for base)."""

    database: ManagedDatabase
    action: str
    start: tuple[str, ...]
    to: str
    dialect: str | None = None
    twice: bool = True  # once is enough for a lint, which never says whether it is stable


def render_preview(
    scripts: ProjectScripts, graph: RevisionGraph, request: PreviewRequest
) -> Preview:
    """Render offline, twice unless told (to tell a stable text from one that is not); raises
    OfflineUnsupportedError listing every revision that needs a live database."""
    steps = plan_steps(graph, request.action, request.start, request.to)  # checks the range
    dialect = request.dialect or request.database.dialect
    if not steps:
        return Preview(request.action, request.start, dialect, (), "", 0, _sha256(""))
    database = request.database
    secrets = database.secret_values()
    render_url = f"{request.dialect}://" if request.dialect else database.url.reveal()
    try:
        rendered = scripts.runner.request(
            "preview",
            signature=graph.generation,
            database=database.name,
            url=database.url.reveal(),
            render_url=render_url,
            environ=env_py_environ(database, render_url),
            action=request.action,
            start=list(request.start),
            to=request.to,
            twice=request.twice,
        )
    except MigctlError as exc:
        raise redacted(exc, secrets) from None
    if rendered["unsupported"]:
        raise redacted(OfflineUnsupportedError(rendered["unsupported"]), secrets)
    segments = tuple(
        Segment(s["revision"], s["direction"], s["sql"], int(s["statement_count"]))
        for s in rendered["segments"]
    )
    text = "".join(segment.sql for segment in segments)
    total = sum(segment.statement_count for segment in segments)
    unstable = tuple(rendered.get("unstable") or ())
    return Preview(
        request.action, request.start, dialect, segments, text, total, _sha256(text), unstable
    )


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
