"""Path converters and fields shared by several resources."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import marshmallow as ma
from werkzeug.routing import BaseConverter, ValidationError

DATABASE_NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,62}"
# Ids, partial ids, head(s), base, branch@..., relative steps: checked before Alembic sees them.
REVISION_SPEC_PATTERN = r"[A-Za-z0-9_.@+\-]{1,128}"
# Ids of the control tables (INTEGER), in ASCII digits: int() and werkzeug's int converter
# (\d) also take Arabic-Indic or fullwidth digits, and int() '1_000'.
MAX_ID = 2**31 - 1
ID_PATTERN = r"[0-9]{1,10}"
_ASCII_DIGITS = re.compile(f"^{ID_PATTERN}$")
_SURROGATE = re.compile("[\ud800-\udfff]")


class DatabaseNameConverter(BaseConverter):
    regex = DATABASE_NAME_PATTERN


class RevisionSpecConverter(BaseConverter):
    regex = REVISION_SPEC_PATTERN


class IdConverter(BaseConverter):
    """An id of at most MAX_ID in ASCII digits; anything else does not match the route."""

    regex = ID_PATTERN
    weight = 50  # as werkzeug's number converters: before string parts

    def to_python(self, value: str) -> int:
        number = int(value)
        if number > MAX_ID:
            raise ValidationError()
        return number

    def to_url(self, value: Any) -> str:
        return str(int(value))


def _string_schema(pattern: str) -> dict[str, Any]:
    return {"type": "string", "pattern": f"^{pattern}$"}


CONVERTERS: dict[str, tuple[type[BaseConverter], dict[str, Any]]] = {
    "dbname": (DatabaseNameConverter, _string_schema(DATABASE_NAME_PATTERN)),
    "revspec": (RevisionSpecConverter, _string_schema(REVISION_SPEC_PATTERN)),
    "id": (IdConverter, {"type": "integer", "minimum": 0, "maximum": MAX_ID}),
}


class RecordedDateTime(ma.fields.DateTime):
    """A date and time as a file recorded it: ISO 8601, with an offset only if it had one."""


class AsciiInteger(ma.fields.Integer):
    """An integer query parameter written in ASCII digits only."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, str) and not _ASCII_DIGITS.match(value):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


def converter_schema(schema: dict[str, Any]) -> Any:
    return lambda _converter: schema


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
