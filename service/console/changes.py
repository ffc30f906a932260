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
from service.services.safety.lint import with_lint

_SPEC = OperationCreateSchema(only=("revision",))


@console.route("/databases/<dbname:name>/change")
def change(name: str) -> ResponseReturnValue:
    detail = databases.describe_database(registry(), name)
    to = request.args.get("to") or "heads"
    if _SPEC.validate({"revision": to}):
        to = "heads"
    try:
        pending = revisions.pending_revisions(registry(), name, to=to)
        preview = with_lint(
            registry(), previews.preview_sql(registry(), preview_cache(), name, to=to)
        )
        sql, lint, problem = sql_html(preview.sql), preview.lint, None
    except MigctlError as exc:
        pending, sql, lint, problem = None, None, None, exc
    everything = revisions.list_revisions(registry(), name, first=0, last=499).items
    return render_template(
        "console/change.html",
        db=detail,
        to=to,
        targets=everything,
        pending=pending,
        sql=sql,
        lint=lint,
        problem=problem,
        may_override=Permission.OVERRIDE in GRANTS[current_principal().role],
        may_upgrade=Permission.UPGRADE in GRANTS[current_principal().role],
        policy=registry().get(name).database,
    )


@console.route("/databases/<dbname:name>/operations", methods=["POST"])
def queue(name: str) -> ResponseReturnValue:
    """The same validation, service and audit events as POST /api/v1/.../operations."""
    fields: dict[str, object] = {"action": "upgrade", "revision": request.form.get("revision")}
    if reason := request.form.get("reason", "").strip():
        fields["reason"] = reason
    if acknowledge := request.form.getlist("acknowledge"):
        fields["acknowledge"] = acknowledge
    try:
        body = OperationCreateSchema().load(fields)
    except ma.ValidationError as exc:
        return invalid(exc.messages)
    body["acknowledge"] = tuple(body.get("acknowledge") or ())
    record = operations_service.request_operation(
        registry(),
        control_store(),
        name,
        OperationRequest(**body),
        request_context(),
        idempotency_key=None,
        previews=preview_cache(),  # linted, and refused under `lint = block`, as in the API
    )
    return redirect(url_for("console.operation", operation_id=record.id), code=303)
