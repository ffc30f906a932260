"""Who is asking, and from where: recorded with every operation and audit event."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from service.services.access import ANONYMOUS, Principal


@dataclass(frozen=True)
class RequestContext:
    actor: str = ANONYMOUS.name
    principal: Principal = field(default=ANONYMOUS)
    on_behalf_of: str | None = None
    request_id: str | None = None
    client_address: str | None = None
    user_agent: str | None = None

    @property
    def people(self) -> frozenset[str]:
        """The people this request speaks for: its token's and its X-On-Behalf-Of person."""
        return people(self.actor, self.on_behalf_of)


# "alice (chat)": the person, then an optional parenthesised channel.
_CHANNEL = re.compile(r"\([^()]*\)\s*$")


def person(name: str | None) -> str | None:
    """Who a token name or an X-On-Behalf-Of value names: the text before an optional
    parenthesised channel, trimmed and case-folded (`Alice`, `alice (chat)` -> `alice`)."""
    found = _CHANNEL.sub("", name or "").strip().casefold()
    return found or None


def people(actor: str | None, on_behalf_of: str | None) -> frozenset[str]:
    """The people behind a token name and an X-On-Behalf-Of value, without the blanks."""
    return frozenset(p for p in (person(actor), person(on_behalf_of)) if p is not None)
