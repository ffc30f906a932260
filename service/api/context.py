"""Access, from a view, to what create_app() built, and to who is asking."""

from __future__ import annotations

from flask import current_app, g, request

from service.services.context import RequestContext
from service.services.registry import Registry
from service.store.db import ControlStore

REGISTRY = "migctl"
CONTROL_STORE = "migctl.store"


def registry() -> Registry:
    found: Registry = current_app.extensions[REGISTRY]
    return found


def control_store() -> ControlStore:
    found: ControlStore = current_app.extensions[CONTROL_STORE]
    return found


def request_context() -> RequestContext:
    """The caller as the audit log records it; the actor stays anonymous until tokens exist."""
    return RequestContext(
        request_id=g.get("request_id"),
        client_address=(request.remote_addr or "")[:64] or None,
        user_agent=(request.user_agent.string or "")[:255] or None,
    )
