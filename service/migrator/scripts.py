"""One project's revision graph, exported by its runner when a file changes, and queries on it."""

from __future__ import annotations

import hashlib
import itertools
import os
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    error_from_wire,
)
from service.migrator.exported import ExportedRevision, ExportedScripts
from service.migrator.revisions import RevisionInfo, revision_info
from service.migrator.runners import RunnerProcess
from service.migrator.walks import explain_walk

_PLANS_KEPT = 256
_NOTHING_TO_WATCH: dict[str, Any] = {
    "sys_path": [],
    "version_locations": [],
    "recursive": False,
    "env_py_path": "",
}
_RELATIVE_HINTS = ("Relative revision", "Ambiguous walk", "Walked too far", "Ambiguous upgrade")
# No graph is this deep; a longer walk can only fail, after Alembic took its time to see it.
MAX_RELATIVE_STEPS = 10_000
# What Alembic's resolver raises, besides its own errors, on specs such as '@' or 'head+1'.
_SPEC_TRIPS = (AssertionError, AttributeError, IndexError, KeyError, TypeError, ValueError)


@dataclass(frozen=True)
class _Layout:
    """Where a project keeps its files, as its runner reported them."""

    ini_path: Path
    ini_stat: tuple[int, int]
    sys_path: tuple[str, ...]
    version_locations: tuple[str, ...]
    recursive: bool
    env_py: str


class ProjectScripts:
    """The revision graph of one Alembic project, exported again whenever a file changes.

    Every request stats the ini, env.py and the version folders; every file is stat'ed at
    most once per `rescan_seconds` (an in-place edit). Only a change asks the runner.
    """

    def __init__(
        self,
        ini: Path,
        section: str,
        runner: RunnerProcess,
        rescan_seconds: float = 2.0,
    ) -> None:
        self.ini = ini
        self.section = section
        self.directory = ini.parent
        self.runner = runner
        self.rescan_seconds = rescan_seconds
        self._lock = threading.Lock()
        self._layout: _Layout | None = None
        self._signature = ""
        self._quick = ""
        self._next_rescan = 0.0
        self._generations = itertools.count(1)
        self._loaded: RevisionGraph | ProjectUnavailableError | None = None

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

    @property
    def signature(self) -> str:
        """Changes whenever env.py, the ini file or a version file changes (after graph())."""
        return self._signature

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
        layout = self._layout
        if layout is not None and layout.ini_stat != _stat(str(self.ini)):
            layout = None  # the ini may name other version folders or env.py: ask again
        before = _signature(layout) if layout is not None else ""
        if layout is None or before != self._signature or self._loaded is None:
            loaded, fresh = self._export()
            if fresh is None:  # the runner failed: try again on the next request
                self._loaded, self._layout = loaded, None
                return
            # Files that change while the runner loads them are seen at the next rescan.
            signature = before if fresh == layout else _signature(fresh)
            if isinstance(loaded, RevisionGraph):
                loaded.signature = signature
            self._loaded, self._layout, self._signature = loaded, fresh, signature
        assert self._layout is not None
        self._quick = _quick_signature(self._layout)
        self._next_rescan = time.monotonic() + self.rescan_seconds

    def _export(self) -> tuple[RevisionGraph | ProjectUnavailableError, _Layout | None]:
        """Ask the runner to load the files as they are now; its answer becomes the graph."""
        ini_stat = _stat(str(self.ini))
        generation = str(next(self._generations))
        try:
            exported = self.runner.request("load", signature=generation)
        except MigctlError as exc:
            return ProjectUnavailableError(exc.detail, **{"path": None, **exc.context}), None
        raw = exported.get("layout") or _NOTHING_TO_WATCH  # an unreadable ini: watch it alone
        layout = _Layout(
            ini_path=self.ini,
            ini_stat=ini_stat,
            sys_path=tuple(str(path) for path in raw["sys_path"]),
            version_locations=tuple(str(path) for path in raw["version_locations"]),
            recursive=bool(raw["recursive"]),
            env_py=str(raw["env_py_path"]),
        )
        if exported.get("error") is not None:
            error = error_from_wire(exported["error"])
            return ProjectUnavailableError(error.detail, **error.context), layout
        try:
            return RevisionGraph(exported["graph"], generation), layout
        except (RevisionError, CommandError, KeyError, ValueError) as exc:
            detail = f"The revision graph of {self.ini} cannot be planned: {exc}"
            return ProjectUnavailableError(detail, path=None), layout


class RevisionGraph:
    """Read-only questions about an exported revision graph; safe to share between threads."""

    def __init__(self, exported: dict[str, Any], generation: str, signature: str = "") -> None:
        revisions = [ExportedRevision(item) for item in exported["revisions"]]
        self.script = ExportedScripts(revisions)
        self.generation = generation  # what the runner loaded: requests name it
        self.signature = signature  # of the files this graph was loaded from
        self.env_py_path = str(exported["env_py"])
        self.map = self.script.revision_map
        self.newest_first = tuple(revision_info(revision) for revision in revisions)
        self._by_id = {info.revision: info for info in self.newest_first}
        self._heads = tuple(exported["heads"])  # in the order the project's alembic lists them
        # Alembic walks the whole graph for each plan (~3 ms at 1,000 revisions), while a
        # database's heads change rarely: remember recent plans of this (immutable) graph.
        self._plans: dict[tuple[tuple[str, ...], str], tuple[RevisionInfo, ...]] = {}

    def info(self, revision: str) -> RevisionInfo:
        return self._by_id[revision]

    def knows(self, revision: str) -> bool:
        return revision in self._by_id

    def heads(self) -> list[RevisionInfo]:
        return [self._by_id[head] for head in self._heads]

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
            try:
                with translated(to, self.script.get_heads()):
                    steps = list(self.map.iterate_revisions(to, key[0], implicit_base=True))
            except RelativeStepError as exc:
                raise self.walk_error(to, current) or exc from exc
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
        """The revisions a spec names: ids, partial ids, head(s), base, branch@..., +N, x-N.

        A relative step that walks down to base names none (a downgrade's destination)."""
        try:
            with translated(spec, self.script.get_heads()):
                found = self._parse(spec, tuple(current))
        except RelativeStepError as exc:
            raise self.walk_error(spec, current) or exc from exc
        relative = _relative_destination.fullmatch(spec) is not None
        if relative and any(r is None for r in found):  # Alembic: the walk left the graph
            raise self.walk_error(spec, current) or RelativeStepError(
                f"{spec!r} walks past the end of the graph.", revision=spec
            )
        return tuple(self._by_id[r.revision] for r in found if r is not None and r != "base")

    def resolve_one(self, spec: str, current: Sequence[str]) -> RevisionInfo:
        """Exactly one revision; `base` means the root revision."""
        found = self.resolve(spec, current)
        if not found and _relative_destination.fullmatch(spec):
            raise self.walk_error(spec, current) or RevisionNotFoundError(
                f"{spec!r} names no revision.", revision=spec
            )
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

    def walk_error(self, spec: str, current: Sequence[str]) -> RelativeStepError | None:
        """The relative step's fault in words ('walks past base: only 3 revisions below
        head'), or None when Alembic's own message is all there is to say."""
        match = _relative_destination.fullmatch(spec)
        if match is None or abs(int(match.group(3))) > MAX_RELATIVE_STEPS:
            return None  # refused before any walk: that refusal says it
        detail = explain_walk(self.map, spec, tuple(current))
        if detail is None:
            return None
        return RelativeStepError(detail, revision=spec, heads=list(self._heads))

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
