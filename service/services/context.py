"""Who is asking, and from where: recorded with every operation and audit event."""

from __future__ import annotations

from dataclasses import dataclass

ANONYMOUS = "anonymous"


@dataclass(frozen=True)
class RequestContext:
    actor: str = ANONYMOUS
    request_id: str | None = None
    client_address: str | None = None
    user_agent: str | None = None
