"""One Alembic project: its ScriptDirectory, loaded once per signature, exported as data."""

from __future__ import annotations

import hashlib
import os
import re
import sys
import warnings
from pathlib import Path
from typing import Any

from alembic.config import Config
from alembic.script import Script, ScriptDirectory
from alembic.util import to_tuple

from .errors import RunnerError, load_failure, relative
from .sandbox import preserved_sys_path

_GRAPH_WARNINGS = ("is present more than once", "is not present")
_SPLIT = re.compile(r", *|(?: +)|\:")  # what alembic before 1.16 splits prepend_sys_path on


class Project:
    """The scripts of one ini file and section, as the alembic CLI run in its folder sees them."""

    def __init__(self, ini: str, section: str) -> None:
        self.ini = Path(ini)
        self.section = section
        self.directory = self.ini.parent
        self.signature: str | None = None
        self.script: ScriptDirectory | None = None
        self.sys_path: tuple[str, ...] = ()
        self.failure: RunnerError | None = None
        self.layout: dict[str, Any] | None = None

    def config(self, **kwargs: Any) -> Config:
        return Config(file_=str(self.ini), ini_section=self.section, **kwargs)

    def loaded(self, signature: str) -> ScriptDirectory:
        """The scripts for `signature`, loading them again when migctl saw files change."""
        if signature != self.signature:
            self._load()
            self.signature = signature
        if self.failure is not None:
            raise self.failure
        assert self.script is not None
        return self.script

    @property
    def env_py(self) -> str:
        assert self.script is not None
        return relative(self.script.env_py_location, self.directory) or "env.py"

    def _load(self) -> None:
        self.script, self.failure, self.layout = None, None, None
        try:
            config = self.config()
            self.sys_path = _prepend_sys_path(config, self.directory)
            self.layout = _layout(config, self.sys_path)
        except Exception as exc:  # a missing script_location, a bad option value
            self.failure = RunnerError(
                "project-unavailable", f"{self.ini}: {exc}", path=self.ini.name
            )
            return
        for path in reversed(self.sys_path):  # this process serves this one project
            if path not in sys.path:
                sys.path.insert(0, path)
        with preserved_sys_path(()), warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            try:
                script = ScriptDirectory.from_config(config)
                script.get_heads()  # load every revision now, not in the middle of a request
            except KeyboardInterrupt:
                raise
            except BaseException as exc:  # revision files are user code: SystemExit too
                self.failure = load_failure(exc, [str(w.message) for w in seen], self.directory)
                return
        problems = [
            str(w.message) for w in seen if any(p in str(w.message) for p in _GRAPH_WARNINGS)
        ]
        if problems:
            self.failure = RunnerError("project-unavailable", "; ".join(problems), path=None)
            return
        self.failure = _env_py_syntax(script.env_py_location, self.directory)
        self.script = script if self.failure is None else None

    def export(self) -> dict[str, Any]:
        """The files migctl must watch, and the graph as data (or why it cannot be loaded)."""
        graph = None
        if self.script is not None:
            graph = {
                "revisions": [self._revision(item) for item in self.script.walk_revisions()],
                "heads": list(self.script.get_heads()),
                "env_py": self.env_py,
            }
        failure = self.failure.as_message() if self.failure is not None else None
        return {"layout": self.layout, "graph": graph, "error": failure}

    def _revision(self, script: Script) -> dict[str, Any]:
        return {
            "revision": script.revision,
            "down_revisions": list(to_tuple(script.down_revision, default=())),
            # As declared: the loaded map has added the labels each revision inherits.
            "branch_labels": list(getattr(script, "_orig_branch_labels", script.branch_labels)),
            "depends_on": list(to_tuple(script.dependencies, default=())),
            "doc": script.longdoc or "",
            "path": relative(script.path, self.directory) or script.path,
            "sha256": _file_sha256(script.path),
        }


def _env_py_syntax(env_py: str, directory: Path) -> RunnerError | None:
    """Compile env.py without running it: a SyntaxError breaks every call that runs it, and
    readiness (which only loads the scripts, once per change) must see it too."""
    try:
        with open(env_py, "rb") as handle:
            compile(handle.read(), env_py, "exec", dont_inherit=True)
    except OSError:
        return None  # Alembic says so when it runs env.py
    except (SyntaxError, ValueError) as exc:
        return load_failure(exc, [], directory)
    return None


def _layout(config: Config, sys_path: tuple[str, ...]) -> dict[str, Any]:
    """The files whose change means the graph must be loaded again, from the ini alone."""
    with preserved_sys_path(()):
        script = ScriptDirectory.from_config(config)  # reads the ini; loads no revision yet
    return {
        "env_py_path": script.env_py_location,
        "version_locations": [str(path) for path in script._version_locations],
        "recursive": bool(getattr(script, "recursive_version_locations", False)),
        "sys_path": list(sys_path),
    }


def _prepend_sys_path(config: Config, directory: Path) -> tuple[str, ...]:
    """prepend_sys_path entries resolved against the ini's folder, as the CLI run there."""
    listed = getattr(config, "get_prepend_sys_paths_list", None)
    if listed is not None:
        paths = listed() or []
    else:
        raw = config.get_main_option("prepend_sys_path") or ""
        paths = [path for path in _SPLIT.split(raw) if path]
    return tuple(os.path.normpath(directory / path) for path in paths if path)


def _file_sha256(path: str) -> str | None:
    try:
        with open(path, "rb") as handle:
            return hashlib.sha256(handle.read()).hexdigest()
    except OSError:
        return None
