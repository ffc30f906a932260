"""What a request may change in the runner process, and how it is put back afterwards."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Mapping, Sequence


@contextlib.contextmanager
def overlaid_environ(environ: Mapping[str, str]) -> Iterator[None]:
    """env.py files read os.environ (DATABASE_URL ...) at each run: set it per request."""
    saved = {key: os.environ.get(key) for key in environ}
    os.environ.update(environ)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def preserved_sys_path(prepend: Sequence[str]) -> Iterator[None]:
    """ScriptDirectory.from_config() prepends prepend_sys_path on every call: undo it."""
    saved = list(sys.path)
    sys.path[:0] = [path for path in prepend if path not in sys.path]
    try:
        yield
    finally:
        sys.path[:] = saved
