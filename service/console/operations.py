"""Operations: the list, one operation's page, and the live part of it that refreshes."""

from __future__ import annotations

from flask import redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from service.api.context import control_store, current_principal, request_context
from service.console.blueprint import console
from service.lifecycle import Status
from service.services import approvals
from service.services import operations as service
from service.services.access import GRANTS, Permission

PAGE_SIZE = 25


@console.route("/operations")
def operations() -> ResponseReturnValue:
    status = request.args.get("status") if request.args.get("status") in set(Status) else None
    database = request.args.get("database", "")[:63] or None
    page = max(request.args.get("page", 1, type=int) or 1, 1)
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


@console.route("/operations/<int:operation_id>")
def operation(operation_id: int) -> ResponseReturnValue:
    """The page webhook messages link to."""
    record = service.get_operation(control_store(), operation_id, principal=current_principal())
    return render_template(
        "console/operation.html",
        op=record,
        mine=approvals.same_person(record, request_context()),
        may_approve=Permission.APPROVE in GRANTS[current_principal().role],
    )


@console.route("/operations/<int:operation_id>/live")
def operation_live(operation_id: int) -> ResponseReturnValue:
    """The steps and outcome alone: htmx swaps it in every second until the operation ends."""
    record = service.get_operation(control_store(), operation_id, principal=current_principal())
    return render_template("console/_operation_live.html", op=record)


@console.route("/operations/<int:operation_id>/cancel", methods=["POST"])
def cancel(operation_id: int) -> ResponseReturnValue:
    service.cancel_operation(control_store(), operation_id, request_context())
    return redirect(url_for("console.operation", operation_id=operation_id), code=303)
