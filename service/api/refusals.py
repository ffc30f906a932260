"""POSTs refused before their use case ran (a bad body, media type or route) are audited too."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import g, request

from service.api.context import control_store, request_context
from service.services import audit as audit_service

logger = logging.getLogger(__name__)


def audit_refused_post(problem: Mapping[str, Any]) -> None:
    """Record an `operation.refused` event for a refused POST; best effort, as the answer
    (already a problem) must not turn into a 500 when the control database is down."""
    if request.method != "POST" or not request.path.startswith("/api/"):
        return
    args = request.view_args or {}
    details = {
        "code": problem.get("code"),
        "detail": problem.get("detail"),
        "errors": problem.get("errors"),
        "request": f"POST {request.path}",
    }
    try:
        audit_service.record_refusal(
            control_store(),
            request_context(),
            database=args.get("db"),
            operation_id=args.get("operation_id"),
            details={key: value for key, value in details.items() if value is not None},
        )
    except Exception:  # whatever the control database raised, the caller gets its problem
        logger.warning(
            "refused request not audited (request %s)",
            g.get("request_id"),
            exc_info=True,
            extra={"action": "audit_failed"},
        )
