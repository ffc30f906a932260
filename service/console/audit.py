"""The audit log page: filters and cursor paging, as GET /api/v1/audit-events."""

from __future__ import annotations

from flask import render_template, request
from flask.typing import ResponseReturnValue

from service.api.context import control_store, current_principal
from service.api.fields import MAX_ID
from service.console.blueprint import console
from service.services import audit as service

FILTERS = {"database": 63, "actor": 255, "action": 64}  # and their longest accepted value
PAGE_SIZE = 50


@console.route("/audit")
def audit() -> ResponseReturnValue:
    filters = {key: request.args.get(key, "")[:size] or None for key, size in FILTERS.items()}
    before = request.args.get("before", type=int)
    page = service.list_audit_events(
        control_store(),
        filters=filters,
        before=before if before and 0 < before <= MAX_ID else None,
        limit=PAGE_SIZE,
        databases=current_principal().databases,
    )
    return render_template("console/audit.html", page=page, filters=filters)
