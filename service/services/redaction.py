"""Secrets out of everything migctl answers, records and logs: the redactors of a process.

Where data leaves the migrator (errors, step SQL, previews) the use cases redact it with the
database's own redactor, once, before it is stored or cached. Logs go through one filter
per process that knows every database's secrets and the tokens this process accepted.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from service.errors import MigctlError
from service.secrets import TOKEN_PREFIX, RedactingFilter, Redactor
from service.settings import Settings

# Logging is process-wide, so is its filter: every handler migctl writes through shares it.
LOG_FILTER = RedactingFilter()


def redactor_for(settings: Settings) -> Redactor:
    """Every secret of the configuration: for text that may concern any database."""
    return Redactor(settings.secret_values())


def redacted_error(error: MigctlError, redactor: Redactor) -> MigctlError:
    """`error` with its detail and context redacted (the same object when already clean)."""
    detail = redactor.redact(error.detail)
    context = redactor.redact_value(dict(error.context))
    if detail is error.detail and context == error.context:
        return error
    clean = MigctlError.__new__(type(error))
    MigctlError.__init__(clean, detail, **context)
    return clean


def log_redaction(settings: Settings, handlers: Iterable[logging.Handler] | None = None) -> None:
    """Redact the configuration's secrets from every record `handlers` emit (by default the
    root logger's: call it once logging is configured)."""
    LOG_FILTER.use(redactor_for(settings))
    attach_log_redaction(logging.getLogger().handlers if handlers is None else handlers)


def attach_log_redaction(handlers: Iterable[logging.Handler]) -> None:
    for handler in handlers:
        if LOG_FILTER not in handler.filters:
            handler.addFilter(LOG_FILTER)


def learn_token(token: str) -> None:
    """A token this process accepted: its logs will not show any 8+ character piece of it.

    The `migctl_` prefix is not part of the secret, or `migctl_v...` would blank out
    migctl's own table names in the logs.
    """
    LOG_FILTER.learn(token.removeprefix(TOKEN_PREFIX))
