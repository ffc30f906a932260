"""What each log line concerns (request, operation, database, actor), set where work begins."""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import Iterator

FIELDS = ("request_id", "operation_id", "database", "actor")
_VALUES: dict[str, contextvars.ContextVar[object]] = {
    name: contextvars.ContextVar(name, default=None) for name in FIELDS
}
TEXT_FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s%(context)s: %(message)s"


@contextlib.contextmanager
def bound(**values: object) -> Iterator[None]:
    """Every line logged in this block (in this thread or task) carries `values`."""
    tokens = [(_VALUES[name], _VALUES[name].set(value)) for name, value in values.items()]
    try:
        yield
    finally:
        for variable, token in reversed(tokens):
            variable.reset(token)


def bind(**values: object) -> list[tuple[contextvars.ContextVar[object], object]]:
    """Set `values` until unbind(); for frameworks whose start and end are two callbacks."""
    return [(_VALUES[name], _VALUES[name].set(value)) for name, value in values.items()]


def unbind(tokens: list[tuple[contextvars.ContextVar[object], object]]) -> None:
    for variable, token in reversed(tokens):
        variable.reset(token)  # type: ignore[arg-type]


class ContextFilter(logging.Filter):
    """Puts the context on every record: as fields (for JSON) and as `context` (for text)."""

    def filter(self, record: logging.LogRecord) -> bool:
        shown = []
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is None:
                value = _VALUES[name].get()
                setattr(record, name, value)
            if value is not None:
                shown.append(f"{_SHORT[name]}={value}")
        record.context = f" [{' '.join(shown)}]" if shown else ""
        return True


_SHORT = {"request_id": "request", "operation_id": "operation", "database": "db", "actor": "actor"}
CONTEXT_FILTER = ContextFilter()


def attach(handlers: list[logging.Handler]) -> None:
    """Add the context to what `handlers` write (once each)."""
    for handler in handlers:
        if CONTEXT_FILTER not in handler.filters:
            handler.addFilter(CONTEXT_FILTER)
