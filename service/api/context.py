"""Access, from a view, to what create_app() built, and to who is asking."""

from __future__ import annotations

from flask import current_app, g, request

from service.api.slots import WAITERS, Slots
from service.services.access import ANONYMOUS, Principal
from service.services.context import RequestContext
from service.services.control import ControlStore
from service.services.previews import PreviewCache
from service.services.registry import Registry
from service.services.wiring import Services

SERVICES = "migctl"


def services() -> Services:
    found: Services = current_app.extensions[SERVICES]
    return found


def registry() -> Registry:
    """The managed databases this caller may see (others do not exist for it)."""
    return services().registry.limited_to(current_principal().databases)


def preview_cache() -> PreviewCache:
    return services().previews


def current_principal() -> Principal:
    principal: Principal = g.get("principal") or ANONYMOUS
    return principal


def waiter_slots() -> Slots:
    """Long polls of this process: a bounded share of its threads."""
    slots: Slots = current_app.extensions[WAITERS]
    return slots


def control_store() -> ControlStore:
    return services().store


def request_context() -> RequestContext:
    """The caller as the audit log records it."""
    principal = g.get("principal")
    return RequestContext(
        actor=principal.name if principal is not None else "unauthenticated",
        principal=principal or ANONYMOUS,
        on_behalf_of=g.get("on_behalf_of"),
        request_id=g.get("request_id"),
        client_address=(request.remote_addr or "")[:64] or None,
        user_agent=(request.user_agent.string or "")[:255] or None,
    )
