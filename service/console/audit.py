"""The audit log page: filters and cursor paging, as GET /api/v1/audit-events."""

from __future__ import annotations

import datetime as dt

from flask import render_template, request
from flask.typing import ResponseReturnValue

from service.api.context import control_store, current_principal
from service.api.fields import MAX_ID
from service.console.blueprint import console, invalid
from service.services import audit as service

FILTERS = {"database": 63, "actor": 255, "action": 64}  # and their longest accepted value
PAGE_SIZE = 50


@console.route("/audit")
def audit() -> ResponseReturnValue:
    filters: dict[str, object] = {
        key: request.args.get(key, "")[:size] or None for key, size in FILTERS.items()
    }
    filters["operation_id"] = _id("operation_id")
    try:
        since, until = _moment("since"), _moment("until")
    except ValueError:
        return invalid({"since/until": ["A date and time, like 2026-12-02T06:30 (UTC)."]})
    page = service.list_audit_events(
        control_store(),
        filters=filters,
        since=since,
        until=until,
        before=_id("before"),
        limit=PAGE_SIZE,
        databases=current_principal().databases,
    )
    return render_template("console/audit.html", page=page, filters=filters)


def _id(key: str) -> int | None:
    value = request.args.get(key, type=int)
    return value if value and 0 < value <= MAX_ID else None


def _moment(key: str) -> dt.datetime | None:
    """A datetime-local field's value, read as UTC (what the page says it shows)."""
    value = request.args.get(key, "")
    if not value:
        return None
    moment = dt.datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
