"""Offline SQL previews: what `alembic upgrade|downgrade|stamp A:B --sql` prints, per revision."""

from __future__ import annotations

import functools
import hashlib
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext, MigrationStep

from service.errors import MigctlError, OfflineUnsupportedError
from service.migrator.plans import plan_steps, step_direction, step_revision
from service.migrator.sandbox import alembic_environment, env_py_failure
from service.migrator.scripts import ProjectScripts, RevisionGraph
from service.migrator.state import env_py_environ
from service.secrets import redact, url_secrets
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


@dataclass(frozen=True)
class PreviewRequest:
    """A range to render: `start` are resolved revision ids (empty for base)."""

    database: ManagedDatabase
    action: str
    start: tuple[str, ...]
    to: str
    dialect: str | None = None


def render_preview(
    scripts: ProjectScripts, graph: RevisionGraph, request: PreviewRequest
) -> Preview:
    """Render offline; raises OfflineUnsupportedError listing every revision that needs a DB."""
    steps = plan_steps(graph, request.action, request.start, request.to)
    dialect = request.dialect or request.database.dialect
    if not steps:
        return Preview(request.action, request.start, dialect, (), "", 0, _sha256(""))
    recorder = _Recorder(steps)
    text = _run_offline(scripts, graph, request, recorder)
    if recorder.unsupported:
        raise OfflineUnsupportedError(recorder.unsupported)
    segments = recorder.segments(text)
    total = sum(segment.statement_count for segment in segments)
    return Preview(request.action, request.start, dialect, segments, text, total, _sha256(text))


def _run_offline(
    scripts: ProjectScripts, graph: RevisionGraph, request: PreviewRequest, recorder: _Recorder
) -> str:
    database = request.database
    url = f"{request.dialect}://" if request.dialect else database.url.reveal()
    buffer = io.StringIO()
    config = scripts.config(output_buffer=buffer, stdout=io.StringIO())
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    options: dict[str, Any] = {
        "fn": recorder,
        "as_sql": True,
        "starting_rev": request.start or None,
        "destination_rev": request.to,
    }
    secrets = url_secrets(database.url.reveal()) + [v.reveal() for v in database.env.values()]
    recorder.secrets = secrets
    with alembic_environment(env_py_environ(database, url), scripts.sys_path):
        recorder.buffer = buffer
        try:
            with EnvironmentContext(config, graph.script, **options):
                graph.script.run_env()
        except (MigctlError, KeyboardInterrupt):
            raise
        except BaseException as exc:  # env.py's offline branch failed
            raise env_py_failure(exc, graph.env_py_path, secrets) from None
    return buffer.getvalue()


class _Recorder:
    """The `fn` handed to Alembic: yields the planned steps and notes where each one's SQL is."""

    def __init__(self, steps: list[MigrationStep]) -> None:
        self.steps = steps
        self.buffer = io.StringIO()
        self.bounds: list[int] = []
        self.counts: list[int] = []
        self.unsupported: list[dict[str, str]] = []
        self.secrets: list[str] = []

    def __call__(self, heads: tuple[str, ...], context: MigrationContext) -> Iterator[Any]:
        self._count_statements(context)
        for step in self.steps:
            self.bounds.append(self.buffer.tell())
            self.counts.append(0)
            step.migration_fn = self._guarded(step, step.migration_fn)
            yield step
        self.bounds.append(self.buffer.tell())

    def segments(self, text: str) -> tuple[Segment, ...]:
        """One segment a step; text before the first and after the last joins its neighbour."""
        cuts = [0, *self.bounds[1:-1], len(text)]
        return tuple(
            Segment(step_revision(step), step_direction(step), text[cuts[i] : cuts[i + 1]], count)
            for i, (step, count) in enumerate(zip(self.steps, self.counts, strict=True))
        )

    def _count_statements(self, context: MigrationContext) -> None:
        impl, execute = context.impl, context.impl._exec

        def counted(*args: Any, **kwargs: Any) -> Any:
            if self.counts:
                self.counts[-1] += 1
            return execute(*args, **kwargs)

        impl._exec = counted  # type: ignore[method-assign]

    def _guarded(self, step: MigrationStep, migration_fn: Callable[..., Any]) -> Callable[..., Any]:
        # Keep going after a revision that needs a live database, to name every such revision.
        @functools.wraps(migration_fn)  # Alembic names the step after the function
        def run(**kwargs: Any) -> None:
            try:
                migration_fn(**kwargs)
            except Exception as exc:
                reason = redact(f"{type(exc).__name__}: {exc}".strip(), self.secrets)
                self.unsupported.append({"revision": step_revision(step), "reason": reason})

        return run


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
