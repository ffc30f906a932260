"""How log lines are written: text for a person at a terminal, one JSON object for collectors."""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from collections.abc import Iterable
from typing import Any

from service.logcontext import FIELDS, TEXT_FORMAT

FORMATS = ("auto", "text", "json")
# gunicorn's access atoms worth a field of their own (never the path or query: they may
# carry a token; the redacted request line is the message).
_ACCESS_ATOMS = {"m": "method", "s": "status", "{x-request-id}o": "request_id"}


def resolved(name: str) -> str:
    """`auto` is text when a person reads stderr at a terminal, JSON otherwise."""
    if name != "auto":
        return name
    return "text" if sys.stderr.isatty() else "json"


class JsonFormatter(logging.Formatter):
    """One JSON object a line: timestamp, level, logger, message and the context fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "timestamp": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in (*FIELDS, "method", "status", "duration_ms", "process"):
            value = getattr(record, name, None)
            if value not in (None, "-", ""):
                line[name] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = record.exc_text
        return json.dumps(line, default=str)


class AccessFields(logging.Filter):
    """Keeps the safe atoms of gunicorn's access record as fields, before redaction joins
    its arguments into the message."""

    def filter(self, record: logging.LogRecord) -> bool:
        atoms = record.args if isinstance(record.args, dict) else {}
        for atom, name in _ACCESS_ATOMS.items():
            if atoms.get(atom) not in (None, "-"):
                setattr(record, name, atoms[atom])
        if isinstance(atoms.get("D"), int):
            record.duration_ms = round(atoms["D"] / 1000, 3)
        return True


def formatter(name: str) -> logging.Formatter:
    if resolved(name) == "json":
        return JsonFormatter()
    return logging.Formatter(TEXT_FORMAT)


def apply(handlers: Iterable[logging.Handler], name: str) -> None:
    """Write what `handlers` emit in format `name` (auto, text or json)."""
    chosen = formatter(name)
    for handler in handlers:
        handler.setFormatter(chosen)


def keep_access_fields(handlers: Iterable[logging.Handler]) -> None:
    """For gunicorn's access log: must run before the redaction filter."""
    for handler in handlers:
        if not any(isinstance(f, AccessFields) for f in handler.filters):
            handler.filters.insert(0, AccessFields())
