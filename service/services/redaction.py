"""Secrets out of everything migctl answers and records: the redactors of a process.

Where data leaves the migrator (errors, step SQL, previews) the use cases redact it with the
database's own redactor, once, before it is stored or cached.
"""

from __future__ import annotations

from service.errors import MigctlError
from service.secrets import Redactor
from service.settings import Settings


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
