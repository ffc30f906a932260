"""Secret values that never print, and their redaction from any text migctl shows or logs.

A secret leaks in more shapes than its configured text: decoded or re-encoded by a URL
parser, or cut short by a driver that quotes only part of a statement. `Redactor` finds
every form of every secret, and any prefix or suffix of a form long enough to matter.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, TypeVar
from urllib.parse import quote, quote_plus, unquote, unquote_plus, urlsplit

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

MASK = "***"
# A piece of a secret this long is a leak; shorter secrets are redacted only whole, so that
# a 3-letter value does not blank out every word it happens to be part of.
FRAGMENT = 8
_SENSITIVE_QUERY_KEYS = ("password", "passwd", "secret", "token", "key")
_PERCENT_HEX = re.compile(r"%[0-9A-F]{2}")
_DATABASE_URL = re.compile(r"^(sqlite|postgres|postgresql|mysql|mariadb|mssql|oracle)(\+\w+)?://")
# Tokens migctl issues (`migctl_` + URL-safe base64), even ones it never saw: 8 random
# characters hold an upper-case letter or '-' (99%; more, the longer), which names such as
# migctl_version or migctl_test_0a1b, lower case as SQL names are, do not.
TOKEN_PREFIX = "migctl_"
_TOKEN = re.compile(r"(?<![\w-])migctl_((?=[a-z0-9_]*[A-Z-])[\w-]{8,})")
_BEARER = re.compile(r"(?i)\b(bearer\s+)[\w.~+/=-]{16,}")
# Up to this many anchors, one str.find each beats one regex scan (see _anchor_hits).
_FIND_LIMIT = 32
T = TypeVar("T")


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
    query = {key: (MASK if _sensitive(key) else value) for key, value in parsed.query.items()}
    return parsed.set(query=query).render_as_string(hide_password=True)


def url_secrets(url: str) -> list[str]:
    """The parts of a URL that must never be shown: its password (as written and decoded)
    and the values of sensitive query keys. The rest of a URL (host, user) is not secret."""
    found = []
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return [url]  # cannot tell its parts apart: the whole of it is the secret
    if parsed.password:
        found.append(str(parsed.password))
    with contextlib.suppress(ValueError):
        found.append(urlsplit(url).password or "")  # as written: urlsplit does not decode
    for key, value in parsed.query.items():
        if _sensitive(key):
            found.extend([value] if isinstance(value, str) else value)
    return [value for value in found if value]


def value_secrets(value: str) -> list[str]:
    """What is secret in a configured value: the whole of it, unless it is a database URL
    (a DATABASE_URL in a database's env): then its password, as for the database's own URL.
    Else every 8+ character prefix of such a value would blank out each `postgresql://`."""
    return url_secrets(value) if _DATABASE_URL.match(value) else [value]


def _sensitive(key: str) -> bool:
    return any(word in key.lower() for word in _SENSITIVE_QUERY_KEYS)


def secret_forms(secret: str) -> frozenset[str]:
    """The shapes `secret` takes in text: as given, percent-decoded, percent-encoded as URL
    libraries do (with upper- and lower-case hex), as a SQL string literal, escaped as in
    JSON or a repr, and with '%' doubled."""
    bases = {secret, unquote(secret), unquote_plus(secret)}
    forms = set(bases)
    for base in bases:
        for encoded in _encodings(base):
            forms.update((encoded, _PERCENT_HEX.sub(lambda m: m.group().lower(), encoded)))
        forms.add(base.replace("'", "''"))
        forms.add(json.dumps(base)[1:-1])
        forms.add(repr(base)[1:-1])
    # A DB-API "pyformat" statement and an ini value (sqlalchemy.url) double every '%'.
    forms.update([form.replace("%", "%%") for form in forms if "%" in form])
    return frozenset(form for form in forms if form)


def _encodings(value: str) -> tuple[str, ...]:
    return (
        quote(value, safe=""),
        quote(value),  # keeps '/'
        quote_plus(value),
        quote(value, safe="!'()*~"),  # JavaScript's encodeURIComponent
    )


class Redactor:
    """Replaces with `***` every form of the given secrets, every prefix or suffix of 8 or
    more characters of a form, and anything shaped like a migctl or bearer token.

    Immutable and thread-safe; build it once (per process, or per database for long texts
    such as previews), as building it costs far more than using it.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets = frozenset(secret for secret in secrets if secret)
        forms = {form for secret in self.secrets for form in secret_forms(secret)}
        self._ends = _ends_by_anchor(form for form in forms if len(form) >= FRAGMENT)
        self._trie = _literal_trie(self._ends) if len(self._ends) > _FIND_LIMIT else None
        self._short = sorted(form for form in forms if len(form) < FRAGMENT)
        self._whole = _whole_words(self._short)

    def with_secrets(self, secrets: Iterable[str]) -> Redactor:
        return Redactor(self.secrets | set(secrets))

    def redact(self, text: str) -> str:
        """`text` without any secret; the same object when there was nothing to redact."""
        spans = _merged(self._spans(text))
        if not spans:
            return text
        parts, last = [], 0
        for start, end in spans:
            parts += [text[last:start], MASK]
            last = end
        parts.append(text[last:])
        return "".join(parts)

    def redact_value(self, value: T) -> T:
        """A JSON-like value (dicts, lists, strings) with every string in it redacted."""
        return _redact_value(self, value)  # type: ignore[no-any-return]

    def _spans(self, text: str) -> Iterator[tuple[int, int]]:
        # Each regex runs only when a plain substring test says it may match: on a long
        # preview, `in` is some 20 times faster than a regex scan.
        for at, anchor in self._anchor_hits(text):
            yield from _grown(text, at, self._ends[anchor])
        if self._whole is not None and any(form in text for form in self._short):
            yield from (match.span() for match in self._whole.finditer(text))
        if TOKEN_PREFIX in text:
            yield from (match.span(1) for match in _TOKEN.finditer(text))
        if "earer" in text or "EARER" in text:
            # The value only: "Bearer" stays, so that a reader knows what was there.
            yield from ((match.end(1), match.end()) for match in _BEARER.finditer(text))

    def _anchor_hits(self, text: str) -> Iterator[tuple[int, str]]:
        """Where a form's first or last 8 characters stand in `text`, overlaps included."""
        if self._trie is None:
            for anchor in self._ends:
                at = text.find(anchor)
                while at >= 0:
                    yield at, anchor
                    at = text.find(anchor, at + 1)
            return
        match = self._trie.search(text)
        while match is not None:
            yield match.start(), match.group()
            match = self._trie.search(text, match.start() + 1)


def _grown(text: str, at: int, ends: list[tuple[str, bool]]) -> Iterator[tuple[int, int]]:
    """From an anchor at `at`, each piece of a form: as far as the text follows the form."""
    for form, starts_form in ends:
        if starts_form:
            yield at, at + _common_prefix(text, at, form)
        else:
            yield at + FRAGMENT - _common_suffix(text, at + FRAGMENT, form), at + FRAGMENT


def _ends_by_anchor(forms: Iterable[str]) -> dict[str, list[tuple[str, bool]]]:
    """Each form under its first 8 characters (True) and its last 8 (False)."""
    ends: dict[str, list[tuple[str, bool]]] = {}
    for form in sorted(forms):
        ends.setdefault(form[:FRAGMENT], []).append((form, True))
        ends.setdefault(form[-FRAGMENT:], []).append((form, False))
    return ends


def _literal_trie(words: Iterable[str]) -> re.Pattern[str] | None:
    """A pattern matching any of `words` (all of one length), shaped as a trie: the regex
    engine tries one branch per character instead of every word at every position."""
    trie: dict[str, Any] = {}
    for word in words:
        node = trie
        for char in word:
            node = node.setdefault(char, {})
    return re.compile(_trie_pattern(trie)) if trie else None


def _trie_pattern(node: Mapping[str, Any]) -> str:
    branches = [re.escape(char) + _trie_pattern(child) for char, child in sorted(node.items())]
    if len(branches) <= 1:
        return "".join(branches)
    return "(?:" + "|".join(branches) + ")"


def _whole_words(forms: Iterable[str]) -> re.Pattern[str] | None:
    """Short forms, matched only where they are not part of a longer word."""
    patterns = [
        ("(?<!\\w)" if form[0].isalnum() or form[0] == "_" else "")
        + re.escape(form)
        + ("(?!\\w)" if form[-1].isalnum() or form[-1] == "_" else "")
        for form in sorted(forms, key=lambda form: (-len(form), form))
    ]
    return re.compile("|".join(patterns)) if patterns else None


def _common_prefix(text: str, at: int, form: str) -> int:
    size = FRAGMENT
    while size < len(form) and at + size < len(text) and text[at + size] == form[size]:
        size += 1
    return size


def _common_suffix(text: str, end: int, form: str) -> int:
    size = FRAGMENT
    while size < len(form) and end - size > 0 and text[end - size - 1] == form[-size - 1]:
        size += 1
    return size


def _merged(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def _redact_value(redactor: Redactor, value: Any) -> Any:
    if isinstance(value, str):
        return redactor.redact(value)
    if isinstance(value, Mapping):
        return {key: _redact_value(redactor, item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_redact_value(redactor, item) for item in value)
    return value


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` without any form or 8+ character piece of `secrets` (see Redactor)."""
    return Redactor(secrets).redact(text)


class RedactingFilter(logging.Filter):
    """Redacts a record's message, arguments, traceback and stack before any handler
    formats it. One per process, on every handler migctl's processes write through."""

    def __init__(self, redactor: Redactor | None = None) -> None:
        super().__init__()
        self._configured = self._redactor = redactor or Redactor()
        self._learned: set[str] = set()
        self._lock = threading.Lock()

    def use(self, redactor: Redactor) -> None:
        """Redact `redactor`'s secrets from now on, and those learned so far."""
        with self._lock:
            self._configured = redactor
            self._redactor = redactor.with_secrets(self._learned) if self._learned else redactor

    def learn(self, secret: str) -> None:
        """Also redact `secret` (a token this process accepted) from now on."""
        if secret in self._learned:
            return
        with self._lock:
            self._learned.add(secret)
            self._redactor = self._configured.with_secrets(self._learned)

    def filter(self, record: logging.LogRecord) -> bool:
        redactor = self._redactor
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: show it and its arguments, redacted
            message = f"{record.msg!s} {record.args!r}"
        record.msg, record.args = redactor.redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redactor.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redactor.redact(record.stack_info)
        return True
