"""Errors the runner reports: a stable code, a detail and context, as migctl's errors carry."""

from __future__ import annotations

import contextlib
import traceback
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from alembic.script.revision import (
    MultipleHeads,
    RangeNotAncestorError,
    ResolutionError,
    RevisionError,
)
from alembic.util import CommandError

_RELATIVE_HINTS = ("Relative revision", "Ambiguous walk", "Walked too far", "Ambiguous upgrade")


class RunnerError(Exception):
    """What a request failed with; `code` is one of migctl's problem codes."""

    def __init__(self, code: str, detail: str, **context: Any) -> None:
        super().__init__(detail)
        self.code, self.detail, self.context = code, detail, context

    def as_message(self) -> dict[str, Any]:
        return {"code": self.code, "detail": self.detail, "context": self.context}


@contextlib.contextmanager
def translated(spec: str, heads: Sequence[str]) -> Iterator[None]:
    """Alembic's revision errors as RunnerErrors carrying Alembic's reason."""
    try:
        yield
    except RunnerError:
        raise
    except RevisionError as exc:
        raise revision_error(spec, heads, exc) from exc
    except CommandError as exc:  # ScriptDirectory wraps a RevisionError in a vaguer message
        cause = exc.__cause__
        if isinstance(cause, RevisionError):
            raise revision_error(spec, heads, cause) from exc
        raise RunnerError(
            "revision-unresolvable", f"{spec!r}: {exc}", revision=spec, heads=list(heads)
        ) from exc
    except (KeyError, ValueError, AssertionError, IndexError, TypeError) as exc:
        raise RunnerError(
            "revision-unresolvable", f"{spec!r} cannot be resolved: {exc!r}", revision=spec
        ) from exc


def revision_error(spec: str, heads: Sequence[str], exc: RevisionError) -> RunnerError:
    message = str(exc)
    if isinstance(exc, MultipleHeads):
        return RunnerError(
            "multiple-heads",
            f"{spec!r} is ambiguous: the scripts have several heads ({', '.join(exc.heads)}); "
            "name one (a revision id or branch@head) or use 'heads'.",
            heads=list(exc.heads),
        )
    if isinstance(exc, ResolutionError):
        if message.startswith("Multiple revisions start with"):
            return RunnerError("ambiguous-revision", message, revision=spec)
        if message.startswith(("No such revision", "No such branch")):
            return RunnerError("revision-not-found", message, revision=spec)
        return RunnerError("revision-unresolvable", message, revision=spec)
    if isinstance(exc, RangeNotAncestorError):
        return RunnerError(
            "revision-unresolvable", f"{spec!r}: {message}", revision=spec, heads=list(heads)
        )
    code = (
        "invalid-relative-step" if message.startswith(_RELATIVE_HINTS) else "revision-unresolvable"
    )
    return RunnerError(code, f"{spec!r}: {message}", revision=spec, heads=list(heads))


def load_failure(
    exc: BaseException, warnings_seen: Sequence[str], project_dir: Path
) -> RunnerError:
    """The project file and line where loading the scripts failed, when it is one of ours."""
    missing = [message for message in warnings_seen if "is not present" in message]
    if missing:
        return RunnerError("project-unavailable", "; ".join(missing), path=None, line=None)
    path, line = culprit(exc, project_dir)
    where = f"{path}, line {line}" if line else path or "the project"
    reason = f"{type(exc).__name__}: {exc}"
    return RunnerError(
        "project-unavailable", f"Cannot load {where}: {reason}", path=path, line=line
    )


def env_py_failure(exc: BaseException, env_py: str) -> RunnerError:
    """What to answer when env.py raises, fails to import or calls sys.exit()."""
    return RunnerError(
        "project-unavailable", f"env.py failed: {type(exc).__name__}: {exc}", path=env_py
    )


def culprit(exc: BaseException, project_dir: Path) -> tuple[str | None, int | None]:
    if isinstance(exc, SyntaxError) and exc.filename:
        return relative(exc.filename, project_dir), exc.lineno
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        found = relative(frame.filename, project_dir)
        if found is not None:
            return found, frame.lineno
    return None, None


def relative(filename: str, project_dir: Path) -> str | None:
    try:
        return Path(filename).resolve().relative_to(project_dir.resolve()).as_posix()
    except ValueError:
        return None
