"""Path converters and fields shared by several resources."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import marshmallow as ma
from werkzeug.routing import BaseConverter

DATABASE_NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,62}"
# Ids, partial ids, head(s), base, branch@..., relative steps: checked before Alembic sees them.
REVISION_SPEC_PATTERN = r"[A-Za-z0-9_.@+\-]{1,128}"
_SURROGATE = re.compile("[\ud800-\udfff]")


class DatabaseNameConverter(BaseConverter):
    regex = DATABASE_NAME_PATTERN


class RevisionSpecConverter(BaseConverter):
    regex = REVISION_SPEC_PATTERN


CONVERTERS: dict[str, tuple[type[BaseConverter], str]] = {
    "dbname": (DatabaseNameConverter, DATABASE_NAME_PATTERN),
    "revspec": (RevisionSpecConverter, REVISION_SPEC_PATTERN),
}


class RecordedDateTime(ma.fields.DateTime):
    """A date and time as a file recorded it: ISO 8601, with an offset only if it had one."""


def converter_schema(pattern: str) -> Any:
    return lambda _converter: {"type": "string", "pattern": f"^{pattern}$"}


def free_text(max_length: int, **kwargs: Any) -> ma.fields.String:
    """A body field of free text: stored as text, so no NUL and no unpaired surrogate."""
    validate: list[Callable[[str], Any]] = [ma.validate.Length(max=max_length), _storable_text]
    return ma.fields.String(validate=validate, **kwargs)


def _storable_text(value: str) -> None:
    # PostgreSQL text cannot hold NUL; UTF-8 cannot hold an unpaired surrogate ("\ud800").
    if "\x00" in value or _SURROGATE.search(value):
        raise ma.ValidationError("Must not contain NUL characters or unpaired surrogates.")


def revision_spec(**kwargs: Any) -> ma.fields.String:
    """A query or body field holding a revision spec."""
    validate = ma.validate.Regexp(
        f"^{REVISION_SPEC_PATTERN}$",
        error="A revision spec is 1-128 letters, digits or one of '_.@+-'.",
    )
    return ma.fields.String(validate=validate, **kwargs)
