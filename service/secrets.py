"""Secret values that never print, and masking of database URLs and messages that quote them."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

MASK = "***"
_SENSITIVE_QUERY_KEYS = ("password", "passwd", "secret", "token", "key")


class Secret:
    """A string that shows as `***` in repr, str and logs; `reveal()` gives the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({MASK!r})"

    def __str__(self) -> str:
        return MASK

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def mask_url(url: str) -> str:
    """The URL with its password and sensitive query values replaced by `***`."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return MASK
    query = {
        key: (MASK if any(word in key.lower() for word in _SENSITIVE_QUERY_KEYS) else value)
        for key, value in parsed.query.items()
    }
    return parsed.set(query=query).render_as_string(hide_password=True)


def url_secrets(url: str) -> list[str]:
    """The parts of a URL that must never be shown: the whole URL and its password."""
    found = [url]
    try:
        password = make_url(url).password
    except (ArgumentError, ValueError):
        return found
    if password:
        found.append(str(password))
    return found


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with every occurrence of each secret replaced by `***`, longest first."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text
