"""The change page: pick a target, see the pending steps and their SQL, queue with a reason."""

from __future__ import annotations

import marshmallow as ma
from flask import redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from service.api.context import (
    control_store,
    current_principal,
    preview_cache,
    registry,
    request_context,
)
from service.api.resources.operations import OperationCreateSchema
from service.console.blueprint import console, invalid
from service.console.highlight import sql_html
from service.errors import MigctlError
from service.services import databases, previews, revisions
from service.services import operations as operations_service
from service.services.access import GRANTS, Permission
from service.services.operations import OperationRequest

_SPEC = OperationCreateSchema(only=("revision",))


@console.route("/databases/<name>/change")
def change(name: str) -> ResponseReturnValue:
    detail = databases.describe_database(registry(), name)
    to = request.args.get("to") or "heads"
    if _SPEC.validate({"revision": to}):
        to = "heads"
    try:
        pending = revisions.pending_revisions(registry(), name, to=to)
        preview = previews.preview_sql(registry(), preview_cache(), name, to=to)
        sql, problem = sql_html(preview.sql), None
    except MigctlError as exc:
        pending, sql, problem = None, None, exc
    everything = revisions.list_revisions(registry(), name, first=0, last=499).items
    return render_template(
        "console/change.html",
        db=detail,
        to=to,
        targets=everything,
        pending=pending,
        sql=sql,
        problem=problem,
        may_upgrade=Permission.UPGRADE in GRANTS[current_principal().role],
        policy=registry().get(name).database,
    )


@console.route("/databases/<name>/operations", methods=["POST"])
def queue(name: str) -> ResponseReturnValue:
    """The same validation, service and audit events as POST /api/v1/.../operations."""
    fields = {"action": "upgrade", "revision": request.form.get("revision", "")}
    if reason := request.form.get("reason", "").strip():
        fields["reason"] = reason
    try:
        body = OperationCreateSchema().load(fields)
    except ma.ValidationError as exc:
        return invalid(exc.messages)
    record = operations_service.request_operation(
        registry(), control_store(), name, OperationRequest(**body), request_context()
    )
    return redirect(url_for("console.operation", operation_id=record.id), code=303)
