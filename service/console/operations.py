"""Operations: the list, one operation's page, and the live part of it that refreshes."""

from __future__ import annotations

from typing import Any

from flask import redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from service.api.context import control_store, current_principal, request_context
from service.api.resources.streams import follow_response
from service.console.blueprint import console
from service.lifecycle import Status
from service.services import approvals, progress, streams
from service.services import operations as service
from service.services.access import GRANTS, Permission
from service.services.progress import OperationRecord
from service.services.streams import Follow

PAGE_SIZE = 25
MAX_PAGE = 10_000  # keeps OFFSET within what every control database takes


@console.route("/operations")
def operations() -> ResponseReturnValue:
    status = request.args.get("status") if request.args.get("status") in set(Status) else None
    database = request.args.get("database", "")[:63] or None
    page = min(max(request.args.get("page", 1, type=int) or 1, 1), MAX_PAGE)
    first = (page - 1) * PAGE_SIZE
    records, total = service.list_operations(
        control_store(),
        filters={"status": status, "database": database},
        principal=current_principal(),
        first=first,
        last=first + PAGE_SIZE - 1,
    )
    return render_template(
        "console/operations.html",
        records=records,
        statuses=list(Status),
        status=status,
        database=database,
        page=page,
        more=first + PAGE_SIZE < total,
    )


@console.route("/operations/<id:operation_id>")
def operation(operation_id: int) -> ResponseReturnValue:
    """The page webhook messages link to."""
    record = service.get_operation(control_store(), operation_id, principal=current_principal())
    return render_template(
        "console/operation.html",
        op=record,
        progress=_progress(record),
        mine=approvals.same_person(record, request_context()),
        may_approve=Permission.APPROVE in GRANTS[current_principal().role],
        may_cancel=Permission.CANCEL in GRANTS[current_principal().role],
    )


@console.route("/operations/<id:operation_id>/live")
def operation_live(operation_id: int) -> ResponseReturnValue:
    """The steps and outcome alone: swapped in at each of the operation's events."""
    record = service.get_operation(control_store(), operation_id, principal=current_principal())
    return render_template(
        "console/_operation_live.html",
        op=record,
        progress=_progress(record),
        may_cancel=Permission.CANCEL in GRANTS[current_principal().role],
    )


@console.route("/operations/<id:operation_id>/events")
def operation_events(operation_id: int) -> ResponseReturnValue:
    """GET /api/v1/operations/{id}/events for the signed-in browser (EventSource sends no
    Authorization header): the same stream, slots and resume by Last-Event-ID."""
    streams.check_operation(control_store(), operation_id, current_principal())
    after = request.headers.get("Last-Event-ID", "0")
    resume = int(after) if after.isdigit() and len(after) < 10 else 0
    return follow_response(Follow(after=resume, operation_id=operation_id))


def _progress(record: OperationRecord) -> dict[str, Any] | None:
    return None if record.finished else progress.operation_progress(control_store(), record)


@console.route("/operations/<id:operation_id>/cancel", methods=["POST"])
def cancel(operation_id: int) -> ResponseReturnValue:
    service.cancel_operation(control_store(), operation_id, request_context())
    return redirect(url_for("console.operation", operation_id=operation_id), code=303)
