"""The Alembic lock and sandbox for migctl's own control schema (projects run in runners)."""

from __future__ import annotations

import contextlib
import io
import logging
import logging.config
import os
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

# alembic.context and alembic.op are module-global proxies: two threads inside
# EnvironmentContext at once corrupt each other's output (docs/alembic-in-a-service.md).
ALEMBIC_LOCK = threading.RLock()


@contextlib.contextmanager
def alembic_environment(environ: Mapping[str, str], sys_path: Sequence[str] = ()) -> Iterator[None]:
    """Hold ALEMBIC_LOCK with `environ` and `sys_path` set; restore logging, paths, stdout after."""
    with (
        ALEMBIC_LOCK,
        _preserved_logging(),
        _file_config_disabled(),
        _overlaid_environ(environ),
        _preserved_sys_path(sys_path),
        contextlib.redirect_stdout(io.StringIO()),
    ):
        yield


@contextlib.contextmanager
def _overlaid_environ(environ: Mapping[str, str]) -> Iterator[None]:
    # env.py files read os.environ (DATABASE_URL ...) at each run; only safe under the lock.
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
def _preserved_sys_path(prepend: Sequence[str]) -> Iterator[None]:
    # ScriptDirectory.from_config() prepends prepend_sys_path on every call (see
    # docs/alembic-in-a-service.md).
    saved = list(sys.path)
    sys.path[:0] = prepend
    try:
        yield
    finally:
        sys.path[:] = saved


@contextlib.contextmanager
def _file_config_disabled() -> Iterator[None]:
    # The generic env.py calls fileConfig(), which disables every existing logger.
    original = logging.config.fileConfig

    def ignore(*_args: Any, **_kwargs: Any) -> None:
        return None

    logging.config.fileConfig = ignore
    try:
        yield
    finally:
        logging.config.fileConfig = original


@contextlib.contextmanager
def _preserved_logging() -> Iterator[None]:
    root, manager = logging.getLogger(), logging.Logger.manager
    saved_root = (root.level, list(root.handlers))
    saved = {
        name: (logger.disabled, logger.level, list(logger.handlers), logger.propagate)
        for name, logger in manager.loggerDict.items()
        if isinstance(logger, logging.Logger)
    }
    try:
        yield
    finally:
        root.setLevel(saved_root[0])
        root.handlers[:] = saved_root[1]
        for name, logger in list(manager.loggerDict.items()):
            if not isinstance(logger, logging.Logger):
                continue
            if name in saved:
                logger.disabled, logger.level, handlers, logger.propagate = saved[name]
                logger.handlers[:] = handlers
            else:
                logger.handlers[:] = []
                logger.propagate = True
