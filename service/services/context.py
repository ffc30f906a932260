"""Who is asking, and from where: recorded with every operation and audit event."""

from __future__ import annotations

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
