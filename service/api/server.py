"""gunicorn running create_app(), configured from Settings (no gunicorn.conf.py needed)."""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication
from gunicorn.glogging import Logger

from service import logcontext, logformat, metrics
from service.api.app import create_app
from service.api.stopping import watch_sigterm
from service.services.redaction import attach_log_redaction
from service.settings import Settings


class _Server(BaseApplication):  # type: ignore[misc]
    def __init__(self, settings: Settings, options: dict[str, Any]) -> None:
        self.settings = settings
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        # Called in each worker after fork: every worker builds its own engines and caches.
        return create_app(self.settings)


# gunicorn builds its logger class itself: the format reaches it through this module.
LOG_FORMAT = ["auto"]


class RedactedLogger(Logger):  # type: ignore[misc]
    """gunicorn's error and access logs, through migctl's redaction (a request line may
    carry a token in its query string), context and format (text, or JSON)."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)  # called again on reload, with new handlers
        handlers = [*self.error_log.handlers, *self.access_log.handlers]
        logformat.keep_access_fields(self.access_log.handlers)  # before redaction joins them
        attach_log_redaction(handlers)
        logcontext.attach(handlers)
        if logformat.resolved(LOG_FORMAT[0]) == "json":
            logformat.apply(handlers, "json")


ACCESS_LOG_FORMAT = (
    '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" request=%({x-request-id}o)s'
)


def gunicorn_options(settings: Settings, **overrides: Any) -> dict[str, Any]:
    """Threads serve slow reads while Alembic work is serialised per process anyway."""
    options: dict[str, Any] = {
        "bind": settings.bind,
        "workers": settings.workers,
        "threads": settings.threads,
        "worker_class": "gthread",
        "timeout": 60,
        "graceful_timeout": 30,
        "accesslog": "-",
        "errorlog": "-",
        "loglevel": settings.log_level.lower(),
        "control_socket_disable": True,  # read-only containers; nothing here uses gunicornc
        "proc_name": "migctl",
        "logger_class": RedactedLogger,
        # gunicorn's default line, and the request id the app answered with (X-Request-ID).
        "access_log_format": ACCESS_LOG_FORMAT,
        "post_worker_init": watch_sigterm,  # event streams end at SIGTERM
    }
    if settings.metrics_dir is not None:
        options["child_exit"] = functools.partial(_child_exit, settings.metrics_dir)
    options.update(overrides)
    return options


def _child_exit(directory: Path, _server: Any, worker: Any) -> None:
    metrics.process_ended(directory, worker.pid)


def serve(settings: Settings, **overrides: Any) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    LOG_FORMAT[0] = settings.log_format
    options = gunicorn_options(settings, **overrides)
    # The app shares its threads out (long polls): tell it how many gunicorn runs.
    settings = dataclasses.replace(settings, threads=options["threads"])
    _Server(settings, options).run()
