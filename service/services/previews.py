"""Use case: the SQL an upgrade, downgrade or stamp would run, rendered offline and cached."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import Any

from service.errors import UnknownDatabaseRevisionError
from service.migrator.plans import resolve_targets
from service.migrator.preview import Preview, PreviewRequest, Segment, render_preview
from service.migrator.scripts import RevisionGraph
from service.secrets import Redactor
from service.services.cache import SizedLRU
from service.services.registry import Managed, Registry

CURRENT = "current"
BASE = "base"
DEFAULT_TO = {"upgrade": "heads"}


@dataclass(frozen=True)
class SqlPreview:
    """A rendered preview with its range resolved to full revision ids."""

    database: str
    action: str
    from_revisions: list[str]
    to: str
    to_revisions: list[str]
    dialect: str
    revisions: tuple[Segment, ...]
    sql: str
    statement_count: int
    sha256: str
    # Rendered twice: the revisions whose text differed (a set iterated in a revision...).
    unstable_revisions: list[str]
    lint: dict[str, Any] | None = None  # services.safety.lint.with_lint adds it, uncached

    @property
    def deterministic(self) -> bool:
        return not self.unstable_revisions


PreviewCache = SizedLRU["SqlPreview"]


def preview_cache(max_bytes: int) -> PreviewCache:
    """Rendered previews, bounded in memory; a changed project changes every key."""
    return SizedLRU(max_bytes, lambda preview: 2 * len(preview.sql) + 1024)


def preview_sql(
    registry: Registry,
    cache: PreviewCache,
    name: str,
    *,
    action: str = "upgrade",
    from_: str = CURRENT,
    to: str | None = None,
    dialect: str | None = None,
    twice: bool = True,
) -> SqlPreview:
    """Render `action` from `from_` (current, base or revision specs) to `to`, offline;
    `twice=False` renders once, when whether the text is stable does not matter (a lint).

    Raises the revision errors of the read API for a bad range, MultipleHeadsError for a
    relative downgrade from several heads, and OfflineUnsupportedError naming every revision
    of the range that needs a live database.
    """
    managed = registry.get(name)
    graph = managed.graph()
    start = _start(managed, graph, from_)
    to = to or DEFAULT_TO[action]
    request = PreviewRequest(managed.database, action, start, to, dialect, twice)
    key = (graph.signature, name, action, start, request.to, dialect)
    cached = cache.get(key) or (None if twice else cache.get((*key, "once")))
    if cached is None:
        preview = _redacted(render_preview(managed.scripts, graph, request), managed.redactor)
        cached = _describe(name, graph, request, preview)
        cache.put(key if twice else (*key, "once"), cached)
    return cached


def _redacted(preview: Preview, redactor: Redactor) -> Preview:
    """The preview as served: a revision may write an env value into its SQL.

    Redacted once, before caching; each segment apart, so that they still join into the
    text, whose sha256 (and ETag) is then the served text's, not Alembic's.
    """
    segments = tuple(replace(s, sql=redactor.redact(s.sql)) for s in preview.segments)
    if all(new.sql is old.sql for new, old in zip(segments, preview.segments, strict=True)):
        return preview
    sql = "".join(segment.sql for segment in segments)
    sha256 = hashlib.sha256(sql.encode()).hexdigest()
    return replace(preview, segments=segments, sql=sql, sha256=sha256)


def _start(managed: Managed, graph: RevisionGraph, from_: str) -> tuple[str, ...]:
    if from_ == CURRENT:
        current = managed.state.current_heads(graph)
        unknown = graph.unknown(current)
        if unknown:
            raise UnknownDatabaseRevisionError(managed.database.name, unknown)
        return current
    if from_ == BASE:
        return ()
    return tuple(graph.resolve_one(spec, ()).revision for spec in from_.split(","))


def _describe(
    name: str, graph: RevisionGraph, request: PreviewRequest, preview: Preview
) -> SqlPreview:
    targets = resolve_targets(graph, request.action, request.start, request.to)
    return SqlPreview(
        database=name,
        action=request.action,
        from_revisions=list(request.start),
        to=request.to,
        to_revisions=targets,
        dialect=preview.dialect,
        revisions=preview.segments,
        sql=preview.sql,
        statement_count=preview.statement_count,
        sha256=preview.sha256,
        unstable_revisions=list(preview.unstable),
    )
