"""The change page: pick a target, see the pending steps and their SQL, queue with a reason."""

from __future__ import annotations

import secrets
from typing import Any

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
from service.api.resources.operations import IdempotencyHeaderSchema, OperationCreateSchema
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
    to = request.args.get("to") or "heads"
    to = "heads" if _SPEC.validate({"revision": to}) else to
    return render_template(
        "console/change.html",
        db=databases.describe_database(registry(), name),
        to=to,
        targets=revisions.list_revisions(registry(), name, first=0, last=499).items,
        **_preview(name, to),
        may_override=_may(Permission.OVERRIDE),
        may_upgrade=_may(Permission.UPGRADE),
        policy=registry().get(name).database,
        form_key=secrets.token_urlsafe(16),  # a double submit queues one operation
    )


def _preview(name: str, to: str) -> dict[str, Any]:
    """Pending steps, highlighted SQL and lint; or the problem that stops them."""
    try:
        pending = revisions.pending_revisions(registry(), name, to=to)
        preview = previews.preview_sql(registry(), preview_cache(), name, to=to)
        lint = with_lint(registry(), preview).lint
        return {"pending": pending, "sql": sql_html(preview.sql), "lint": lint, "problem": None}
    except MigctlError as exc:
        return {"pending": None, "sql": None, "lint": None, "problem": exc}


def _may(permission: Permission) -> bool:
    return permission in GRANTS[current_principal().role]


@console.route("/databases/<dbname:name>/operations", methods=["POST"])
def queue(name: str) -> ResponseReturnValue:
    """The same validation, service and audit events as POST /api/v1/.../operations."""
    try:
        body, key = _form_request()
    except ma.ValidationError as exc:
        return invalid(exc.messages)
    record = operations_service.request_operation(
        registry(),
        control_store(),
        name,
        OperationRequest(**body),
        request_context(),
        idempotency_key=key,
        previews=preview_cache(),  # linted, and refused under `lint = block`, as in the API
    )
    return redirect(url_for("console.operation", operation_id=record.id), code=303)


def _form_request() -> tuple[dict[str, Any], str | None]:
    """The form as the API's body and Idempotency-Key; ValidationError as the API's 422."""
    fields: dict[str, Any] = {"action": "upgrade", "revision": request.form.get("revision")}
    if reason := request.form.get("reason", "").strip():
        fields["reason"] = reason
    if acknowledge := request.form.getlist("acknowledge"):
        fields["acknowledge"] = acknowledge
    body = OperationCreateSchema().load(fields)
    body["acknowledge"] = tuple(body.get("acknowledge") or ())
    key = request.form.get("idempotency_key") or None
    headers = IdempotencyHeaderSchema().load({"Idempotency-Key": key} if key else {})
    return body, headers.get("idempotency_key")
