"""What a leak of a secret looks like: its forms, and the fragments a driver's context keeps.

Written apart from service.secrets on purpose: the tests must not trust the code they check
to say what counts as a leak.
"""

from __future__ import annotations

import re
from urllib.parse import quote, quote_plus, unquote

FRAGMENT = 8  # the shortest prefix or suffix of a secret that counts as a leak


def forms(secret: str) -> set[str]:
    """The secret as configured, decoded, percent-encoded as URLs and drivers do, and with
    '%' doubled as a DB-API statement (paramstyle pyformat) writes it."""
    found = {secret}
    for base in {secret, unquote(secret)}:
        found.add(base)
        for encoded in (quote(base, safe=""), quote_plus(base, safe=""), quote(base)):
            found.add(encoded)
            found.add(re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), encoded))
    return found | {form.replace("%", "%%") for form in found}


def pieces(secret: str) -> set[str]:
    """Every form, and every prefix and suffix of 8 or more characters of each form."""
    found = set()
    for form in forms(secret):
        found.add(form)
        for size in range(FRAGMENT, len(form)):
            found.update((form[:size], form[-size:]))
    return found


def leaks(text: str, *secrets: str) -> list[str]:
    """The forms and fragments of `secrets` that `text` shows, longest first (empty: none)."""
    shown = {piece for secret in secrets for piece in pieces(secret) if piece in text}
    return sorted(shown, key=len, reverse=True)
