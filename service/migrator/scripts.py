"""One cached ScriptDirectory per project, reloaded when a file changes, and graph queries."""

from __future__ import annotations

import hashlib
import os
import threading
import time
import traceback
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic.config import Config
from alembic.script import ScriptDirectory
from alembic.script.revision import (
    MultipleHeads,
    RangeNotAncestorError,
    ResolutionError,
    RevisionError,
    _relative_destination,
)
from alembic.util import CommandError

from service.errors import (
    AmbiguousRevisionError,
    MigctlError,
    MultipleHeadsError,
    ProjectUnavailableError,
    RelativeStepError,
    RevisionNotFoundError,
    RevisionSpecError,
)
from service.migrator.revisions import RevisionInfo, revision_info
from service.migrator.sandbox import alembic_environment

_PLANS_KEPT = 256
_GRAPH_WARNINGS = ("is present more than once", "is not present")
_RELATIVE_HINTS = ("Relative revision", "Ambiguous walk", "Walked too far", "Ambiguous upgrade")
# No graph is this deep; a longer walk can only fail, after Alembic took its time to see it.
MAX_RELATIVE_STEPS = 10_000
# What Alembic's resolver raises, besides its own errors, on specs such as '@' or 'head+1'.
_SPEC_TRIPS = (AssertionError, AttributeError, IndexError, KeyError, TypeError, ValueError)


@dataclass(frozen=True)
class _Layout:
    """Where a project keeps its files, read from its config once per ini change."""

    ini_path: Path
    ini_stat: tuple[int, int]
    sys_path: tuple[str, ...]
    version_locations: tuple[str, ...]
    recursive: bool
    env_py: str


class ProjectScripts:
    """The ScriptDirectory of one Alembic project, cached while no file of it changes."""

    def __init__(self, ini: Path, section: str = "alembic", rescan_seconds: float = 2.0) -> None:
        self.ini = ini
        self.section = section
        self.directory = ini.parent
        self.rescan_seconds = rescan_seconds
        self._lock = threading.Lock()
        self._layout: _Layout | None = None
        self._signature = ""
        self._quick = ""
        self._next_rescan = 0.0
        self._loaded: RevisionGraph | ProjectUnavailableError | None = None

    def config(self, **kwargs: Any) -> Config:
        return Config(file_=str(self.ini), ini_section=self.section, **kwargs)

    def graph(self) -> RevisionGraph:
        """The current graph; raises ProjectUnavailableError while the project is broken."""
        with self._lock:
            if not self._unchanged_at_a_glance():
                self._rescan()
            loaded = self._loaded
        assert loaded is not None
        if isinstance(loaded, ProjectUnavailableError):
            raise ProjectUnavailableError(loaded.detail, **loaded.context)
        return loaded

    def _unchanged_at_a_glance(self) -> bool:
        """A few stats (ini, env.py, version folders); every file only once per rescan period.

        Adding, removing or renaming a revision changes its folder; an in-place edit of one
        is seen at the next full rescan, at most `rescan_seconds` later.
        """
        if self._loaded is None or self._layout is None:
            return False
        quick = _quick_signature(self._layout)
        return quick == self._quick and time.monotonic() < self._next_rescan

    def _rescan(self) -> None:
        layout = self._current_layout()
        signature = _signature(layout)
        if signature != self._signature or self._loaded is None:
            self._loaded = self._load(signature)
            self._signature = signature
        self._quick = _quick_signature(layout)
        self._next_rescan = time.monotonic() + self.rescan_seconds

    @property
    def sys_path(self) -> tuple[str, ...]:
        """prepend_sys_path entries, resolved against the ini file's folder."""
        return self._layout.sys_path if self._layout else ()

    @property
    def signature(self) -> str:
        """Changes whenever env.py, the ini file or a version file changes (after graph())."""
        return self._signature

    def _current_layout(self) -> _Layout:
        stat = _stat(str(self.ini))
        if self._layout is None or self._layout.ini_stat != stat:
            self._layout = self._read_layout(stat)
        return self._layout

    def _read_layout(self, ini_stat: tuple[int, int]) -> _Layout:
        with alembic_environment({}):
            try:
                config = self.config()
                script = ScriptDirectory.from_config(config)
            except Exception as exc:  # a missing script_location, a bad option value
                raise ProjectUnavailableError(f"{self.ini}: {exc}", path=self.ini.name) from exc
        return _Layout(
            ini_path=self.ini,
            ini_stat=ini_stat,
            sys_path=_prepend_sys_path(config, self.directory),
            version_locations=tuple(str(path) for path in script._version_locations),
            recursive=script.recursive_version_locations,
            env_py=script.env_py_location,
        )

    def _load(self, signature: str) -> RevisionGraph | ProjectUnavailableError:
        with alembic_environment({}, self.sys_path), warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            try:
                script = ScriptDirectory.from_config(self.config())
                graph = RevisionGraph(script, self.directory, signature)
            except KeyboardInterrupt:
                raise
            except BaseException as exc:  # revision files are user code: SystemExit too
                return _load_failure(exc, [str(w.message) for w in seen], self.directory)
        messages = [str(warning.message) for warning in seen]
        problems = [m for m in messages if any(p in m for p in _GRAPH_WARNINGS)]
        if problems:
            return ProjectUnavailableError("; ".join(problems), path=None)
        return graph


class RevisionGraph:
    """Read-only questions about a loaded revision graph; safe to share between threads."""

    def __init__(self, script: ScriptDirectory, project_dir: Path, signature: str = "") -> None:
        self.script = script
        self.signature = signature  # of the files this graph was loaded from
        self.env_py_path = _relative(script.env_py_location, project_dir) or "env.py"
        self.map = script.revision_map
        self.newest_first = tuple(revision_info(s, project_dir) for s in script.walk_revisions())
        self._by_id = {info.revision: info for info in self.newest_first}
        # Alembic walks the whole graph for each plan (~3 ms at 1,000 revisions), while a
        # database's heads change rarely: remember recent plans of this (immutable) graph.
        self._plans: dict[tuple[tuple[str, ...], str], tuple[RevisionInfo, ...]] = {}

    def info(self, revision: str) -> RevisionInfo:
        return self._by_id[revision]

    def knows(self, revision: str) -> bool:
        return revision in self._by_id

    def heads(self) -> list[RevisionInfo]:
        return [self._by_id[head] for head in self.script.get_heads()]

    def branch_points(self) -> list[RevisionInfo]:
        return [info for info in self.newest_first if info.is_branch_point]

    def effective_current(self, current: Sequence[str]) -> list[RevisionInfo]:
        """The recorded heads plus what they imply through depends_on, as `alembic current`."""
        with translated(",".join(current), self.script.get_heads()):
            found = {script.revision for script in self.script.get_all_current(tuple(current))}
        return [info for info in self.newest_first if info.revision in found]

    def unknown(self, current: Sequence[str]) -> list[str]:
        return [revision for revision in current if revision not in self._by_id]

    def pending(self, current: Sequence[str], to: str = "heads") -> list[RevisionInfo]:
        """Revisions `alembic upgrade <to>` would apply from `current`, in execution order."""
        key = (tuple(current), to)
        plan = self._plans.get(key)
        if plan is None:
            with translated(to, self.script.get_heads()):
                steps = list(self.map.iterate_revisions(to, key[0], implicit_base=True))
            plan = tuple(self._by_id[step.revision] for step in reversed(steps))
            if len(self._plans) >= _PLANS_KEPT:
                self._plans.clear()
            self._plans[key] = plan
        return list(plan)

    def applied(self, current: Sequence[str]) -> frozenset[str]:
        """Every revision the database has: all of them but those `upgrade heads` would run."""
        pending = {info.revision for info in self.pending(current)}
        return frozenset(self._by_id) - pending

    def resolve(self, spec: str, current: Sequence[str]) -> tuple[RevisionInfo, ...]:
        """The revisions a spec names: ids, partial ids, head(s), base, branch@..., +N, x-N."""
        with translated(spec, self.script.get_heads()):
            found = self._parse(spec, tuple(current))
        return tuple(self._by_id[r.revision] for r in found if r is not None)

    def resolve_one(self, spec: str, current: Sequence[str]) -> RevisionInfo:
        """Exactly one revision; `base` means the root revision."""
        found = self.resolve(spec, current)
        if spec == "base" or spec.endswith("@base"):
            found = self._bases(spec)
        if len(found) > 1:
            names = [info.revision for info in found]
            raise MultipleHeadsError(
                f"{spec!r} names {len(found)} revisions ({', '.join(names)}); "
                "name one of them, or a branch (branch@head).",
                heads=names,
            )
        if not found:
            raise RevisionNotFoundError(f"{spec!r} names no revision.", revision=spec)
        return found[0]

    def _bases(self, spec: str) -> tuple[RevisionInfo, ...]:
        bases = [self._by_id[b] for b in self.script.get_bases()]
        label = spec.partition("@")[0] if "@" in spec else None
        if label:
            with translated(spec, self.script.get_heads()):
                lineage = set(self.map.filter_for_lineage(tuple(self._by_id), label))
            bases = [b for b in bases if b.revision in lineage]
        return tuple(bases)

    def _parse(self, spec: str, current: tuple[str, ...]) -> tuple[Any, ...]:
        if _steps_down_from_current(spec):
            _label, target = self.map._parse_downgrade_target(current, spec, True)
            return (target,)
        return tuple(self.map._parse_upgrade_target(current, spec, True))


def _steps_down_from_current(spec: str) -> bool:
    """`-1`, `branch@-2`: relative to the database's heads, which only a downgrade walks."""
    match = _relative_destination.match(spec)
    return match is not None and match.group(2) is None and match.group(3).startswith("-")


@contextmanager
def translated(spec: str, heads: Sequence[str]) -> Iterator[None]:
    """Turn Alembic's revision errors into migctl errors carrying Alembic's reason.

    A relative step longer than MAX_RELATIVE_STEPS is refused before Alembic walks it.
    """
    for part in spec.split(","):
        match = _relative_destination.match(part)
        if match and abs(int(match.group(3))) > MAX_RELATIVE_STEPS:
            raise RelativeStepError(
                f"{spec!r}: a relative step walks at most {MAX_RELATIVE_STEPS} revisions.",
                revision=spec,
                heads=list(heads),
            )
    try:
        yield
    except MigctlError:
        raise
    except RevisionError as exc:
        raise _revision_error(spec, heads, exc) from exc
    except CommandError as exc:  # ScriptDirectory wraps a RevisionError in a vaguer message
        cause = exc.__cause__
        if isinstance(cause, RevisionError):
            raise _revision_error(spec, heads, cause) from exc
        raise RevisionSpecError(f"{spec!r}: {exc}", revision=spec, heads=list(heads)) from exc
    except _SPEC_TRIPS as exc:  # Alembic asserts on some specs the grammar lets through
        relative = _relative_destination.match(spec) is not None
        error = RelativeStepError if relative else RevisionSpecError
        reason = f": {exc}" if str(exc) and not isinstance(exc, AssertionError) else ""
        raise error(f"{spec!r} cannot be resolved{reason}.", revision=spec) from exc


def _revision_error(spec: str, heads: Sequence[str], exc: RevisionError) -> MigctlError:
    message = str(exc)
    if isinstance(exc, MultipleHeads):
        return MultipleHeadsError(
            f"{spec!r} is ambiguous: the scripts have several heads ({', '.join(exc.heads)}); "
            "name one (a revision id or branch@head) or use 'heads'.",
            heads=list(exc.heads),
        )
    if isinstance(exc, ResolutionError):
        if message.startswith("Multiple revisions start with"):
            return AmbiguousRevisionError(message, revision=spec)
        if message.startswith(("No such revision", "No such branch")):
            return RevisionNotFoundError(message, revision=spec)
        return RevisionSpecError(message, revision=spec)
    if isinstance(exc, RangeNotAncestorError):
        return RevisionSpecError(f"{spec!r}: {message}", revision=spec, heads=list(heads))
    error = RelativeStepError if message.startswith(_RELATIVE_HINTS) else RevisionSpecError
    return error(f"{spec!r}: {message}", revision=spec, heads=list(heads))


def _load_failure(
    exc: BaseException, seen: list[str], project_dir: Path
) -> ProjectUnavailableError:
    missing = [message for message in seen if "is not present" in message]
    if missing:
        return ProjectUnavailableError("; ".join(missing), path=None)
    path, line = _culprit(exc, project_dir)
    where = f"{path}, line {line}" if line else path or "the project"
    reason = f"{type(exc).__name__}: {exc}"
    return ProjectUnavailableError(f"Cannot load {where}: {reason}", path=path, line=line)


def _culprit(exc: BaseException, project_dir: Path) -> tuple[str | None, int | None]:
    """The project file (relative path) and line where loading failed, if it is one of ours."""
    if isinstance(exc, SyntaxError) and exc.filename:
        return _relative(exc.filename, project_dir), exc.lineno
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        relative = _relative(frame.filename, project_dir)
        if relative is not None:
            return relative, frame.lineno
    return None, None


def _relative(filename: str, project_dir: Path) -> str | None:
    try:
        return Path(filename).resolve().relative_to(project_dir.resolve()).as_posix()
    except ValueError:
        return None


def _prepend_sys_path(config: Config, directory: Path) -> tuple[str, ...]:
    """prepend_sys_path entries resolved against the ini's folder, as the alembic CLI run there."""
    paths = config.get_prepend_sys_paths_list() or []
    return tuple(os.path.normpath(directory / path) for path in paths if path)


def _stat(path: str) -> tuple[int, int]:
    try:
        status = os.stat(path)
    except OSError:
        return (0, 0)
    return (status.st_mtime_ns, status.st_size)


def _quick_signature(layout: _Layout) -> str:
    stats = [_stat(str(Path(location))) for location in layout.version_locations]
    return repr((layout.ini_stat, _stat(str(layout.ini_path)), _stat(layout.env_py), stats))


def _signature(layout: _Layout) -> str:
    """A cheap fingerprint of every .py file in the version locations, env.py and the ini."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(repr((layout.ini_stat, _stat(layout.env_py))).encode())
    for location in layout.version_locations:
        for root, dirs, files in os.walk(location):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__") if layout.recursive else []
            for name in sorted(files):
                if name.endswith(".py"):
                    digest.update(f"{root}/{name}{_stat(os.path.join(root, name))}".encode())
    return digest.hexdigest()
