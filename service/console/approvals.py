"""Approvals: operations waiting for me, approve, reject with a reason (never my own)."""

from __future__ import annotations

import marshmallow as ma
from flask import redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from service.api.context import control_store, current_principal, registry, request_context
from service.api.resources.operations import RejectSchema
from service.console.blueprint import console, invalid
from service.lifecycle import Status
from service.services import approvals
from service.services import operations as operations_service
from service.services.access import GRANTS, Permission


@console.route("/approvals")
def approvals_page() -> ResponseReturnValue:
    records, _total = operations_service.list_operations(
        control_store(),
        filters={"status": str(Status.AWAITING_APPROVAL)},
        principal=current_principal(),
        first=0,
        last=99,
    )
    context, store = request_context(), control_store()
    # With their decisions so far (the list leaves them out): a handful of rows at most.
    full = [
        operations_service.get_operation(store, r.id, principal=context.principal) for r in records
    ]
    return render_template(
        "console/approvals.html",
        waiting=[(record, approvals.same_person(record, context)) for record in full],
        may_approve=may_approve(),
    )


def may_approve() -> bool:
    return Permission.APPROVE in GRANTS[current_principal().role]


@console.route("/operations/<id:operation_id>/approve", methods=["POST"])
def approve(operation_id: int) -> ResponseReturnValue:
    """The same checks and audit events as POST /api/v1/operations/{id}/approve."""
    approvals.approve(registry(), control_store(), operation_id, request_context())
    return redirect(url_for("console.operation", operation_id=operation_id), code=303)


@console.route("/operations/<id:operation_id>/reject", methods=["POST"])
def reject(operation_id: int) -> ResponseReturnValue:
    reason = request.form.get("reason", "").strip()
    try:
        body = RejectSchema().load({"reason": reason})
    except ma.ValidationError as exc:
        return invalid(exc.messages)
    if not reason:
        return invalid({"reason": ["Say why: the requester reads it."]})
    approvals.reject(control_store(), operation_id, request_context(), body["reason"])
    return redirect(url_for("console.operation", operation_id=operation_id), code=303)
