"""Offline SQL: what `alembic upgrade|downgrade|stamp A:B --sql` prints, cut per step."""

from __future__ import annotations

import functools
import io
from collections.abc import Callable, Iterator
from typing import Any

from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext, MigrationStep

from .errors import RunnerError, env_py_failure
from .plans import plan_steps, step_direction, step_revision
from .project import Project
from .sandbox import overlaid_environ


def render(project: Project, request: dict[str, Any]) -> dict[str, Any]:
    """The segments of a preview; rendered twice when asked, to tell whether it is stable."""
    first = _render_once(project, request)
    if not request.get("twice") or first["unsupported"]:
        return {**first, "unstable": []}
    second = _render_once(project, request)
    unstable = [
        mine["revision"]
        for mine, theirs in zip(first["segments"], second["segments"])
        if mine["sql"] != theirs["sql"]
    ]
    return {**first, "unstable": unstable}


def _render_once(project: Project, request: dict[str, Any]) -> dict[str, Any]:
    script = project.loaded(request["signature"])
    start = tuple(request["start"])
    steps = plan_steps(script, request["action"], start, request["to"])
    if not steps:
        return {"segments": [], "unsupported": []}
    recorder = _Recorder(steps)
    text = _run_offline(project, request, recorder)
    return {"segments": recorder.segments(text), "unsupported": recorder.unsupported}


def _run_offline(project: Project, request: dict[str, Any], recorder: _Recorder) -> str:
    script = project.loaded(request["signature"])
    buffer = io.StringIO()
    config = project.config(output_buffer=buffer, stdout=io.StringIO())
    url = request["render_url"]
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    options: dict[str, Any] = {
        "fn": recorder,
        "as_sql": True,
        "starting_rev": tuple(request["start"]) or None,
        "destination_rev": request["to"],
    }
    recorder.buffer = buffer
    with overlaid_environ(request["environ"]):
        try:
            with EnvironmentContext(config, script, **options):
                script.run_env()
        except (RunnerError, KeyboardInterrupt):
            raise
        except BaseException as exc:  # env.py's offline branch failed
            raise env_py_failure(exc, project.env_py) from None
    return buffer.getvalue()


class _Recorder:
    """The `fn` handed to Alembic: yields the planned steps and notes where each one's SQL is."""

    def __init__(self, steps: list[MigrationStep]) -> None:
        self.steps = steps
        self.buffer = io.StringIO()
        self.bounds: list[int] = []
        self.counts: list[int] = []
        self.unsupported: list[dict[str, str]] = []

    def __call__(self, heads: Any, context: MigrationContext) -> Iterator[Any]:
        self._count_statements(context)
        for step in self.steps:
            self.bounds.append(self.buffer.tell())
            self.counts.append(0)
            step.migration_fn = self._guarded(step, step.migration_fn)
            yield step
        self.bounds.append(self.buffer.tell())

    def segments(self, text: str) -> list[dict[str, Any]]:
        """One segment a step; text before the first and after the last joins its neighbour."""
        cuts = [0, *self.bounds[1:-1], len(text)]
        return [
            {
                "revision": step_revision(step),
                "direction": step_direction(step),
                "sql": text[cuts[i] : cuts[i + 1]],
                "statement_count": self.counts[i],
            }
            for i, step in enumerate(self.steps)
        ]

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
                reason = f"{type(exc).__name__}: {exc}".strip()
                self.unsupported.append({"revision": step_revision(step), "reason": reason})

        return run
