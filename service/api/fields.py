"""Path converters and fields shared by several resources."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from werkzeug.routing import BaseConverter

DATABASE_NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,62}"
# Ids, partial ids, head(s), base, branch@..., relative steps: checked before Alembic sees them.
REVISION_SPEC_PATTERN = r"[A-Za-z0-9_.@+\-]{1,128}"


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


def revision_spec(**kwargs: Any) -> ma.fields.String:
    """A query or body field holding a revision spec."""
    validate = ma.validate.Regexp(
        f"^{REVISION_SPEC_PATTERN}$",
        error="A revision spec is 1-128 letters, digits or one of '_.@+-'.",
    )
    return ma.fields.String(validate=validate, **kwargs)
