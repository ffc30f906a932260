"""Queued upgrades, downgrades and stamps: request, list, read (long-poll) and cancel."""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

import marshmallow as ma
from flask import url_for
from flask.views import MethodView

from service.api.context import (
    control_store,
    current_principal,
    preview_cache,
    registry,
    request_context,
    waiter_slots,
)
from service.api.fields import free_text, revision_spec
from service.api.lint_schemas import LintSchema
from service.api.problems import operation_error_codes
from service.api.smorest import Blueprint
from service.lifecycle import Action, Status
from service.services import approvals
from service.services import operations as service
from service.services.safety.rules import RULES

blp = Blueprint("Operations", __name__, description="Changes to a database, run by a worker.")

# Seconds before a long poll refused for want of a free slot is worth trying again.
WAIT_RETRY_AFTER_SECONDS = "2"
_RETRY_AFTER_HEADER = {
    "description": "Sent when `wait` was not honoured (too many waiting calls): seconds "
    "before waiting again",
    "schema": {"type": "integer", "minimum": 0},
}
_KEY = ma.validate.Regexp(r"^[\x21-\x7e]{1,255}$", error="1-255 visible ASCII characters.")


class OperationCreateSchema(ma.Schema):
    action = ma.fields.String(required=True, validate=ma.validate.OneOf(list(Action)))
    revision = revision_spec(required=True, metadata={"description": "heads, an id, -1, base ..."})
    expected_current = ma.fields.List(
        revision_spec(),
        validate=ma.validate.Length(max=32),
        metadata={"description": "Fail unless the database is at exactly these revisions"},
    )
    reason = free_text(1000)
    purge = ma.fields.Boolean(load_default=False, metadata={"description": "stamp only"})
    acknowledge = ma.fields.List(
        ma.fields.String(validate=ma.validate.OneOf(list(RULES))),
        validate=ma.validate.Length(max=len(RULES)),
        metadata={"description": "Lint rules to queue anyway under `lint = block` (admin)"},
    )
    accept_modified = ma.fields.Boolean(
        load_default=False,
        metadata={"description": "Queue although applied revision files changed (admin)"},
    )

    @ma.validates_schema
    def _purge_is_for_stamps(self, data, **_kwargs):
        if data.get("purge") and data.get("action") != "stamp":
            raise ma.ValidationError("Only a stamp can purge the version table.", "purge")


class PlannedStepSchema(ma.Schema):
    revision = ma.fields.String()
    direction = ma.fields.String()


class StepSchema(PlannedStepSchema):
    position = ma.fields.Integer()
    started_at = ma.fields.DateTime()
    duration_ms = ma.fields.Float()
    statement_count = ma.fields.Integer()
    sql = ma.fields.String()
    outcome = ma.fields.String(metadata={"description": "succeeded, failed or rolled_back"})


class ErrorSchema(ma.Schema):
    code = ma.fields.String(
        attribute="error_code",
        metadata={
            "description": "A problem code (see Problem) from planning under the lock, or one of "
            + ", ".join(f"`{code}`" for code in operation_error_codes())
        },
    )
    type = ma.fields.String(attribute="error_type")
    message = ma.fields.String(attribute="error_message")
    revision = ma.fields.String(attribute="failed_revision", allow_none=True)
    sql = ma.fields.String(attribute="failed_sql", allow_none=True)


class _RecordError(ma.fields.Nested):
    """The record's error_* columns as one object (null unless it failed), documented as the
    Error schema, which a Method field could not be."""

    def get_value(self, obj, attr, accessor=None, default=ma.missing):
        return obj if obj.error_code else None


class OperationSummarySchema(ma.Schema):
    id = ma.fields.Integer()
    database = ma.fields.String()
    action = ma.fields.String()
    revision = ma.fields.String()
    target_revisions = ma.fields.List(ma.fields.String())
    expected_current = ma.fields.List(ma.fields.String(), allow_none=True)
    purge = ma.fields.Boolean()
    reason = ma.fields.String(allow_none=True)
    status = ma.fields.String(metadata={"description": ", ".join(Status)})
    actor = ma.fields.String()
    on_behalf_of = ma.fields.String(allow_none=True, metadata={"description": "X-On-Behalf-Of"})
    request_id = ma.fields.String(allow_none=True)
    planned_steps = ma.fields.List(ma.fields.Nested(PlannedStepSchema))
    heads_before = ma.fields.List(ma.fields.String(), allow_none=True)
    heads_after = ma.fields.List(ma.fields.String(), allow_none=True)
    requested_at = ma.fields.DateTime()
    started_at = ma.fields.DateTime(allow_none=True)
    finished_at = ma.fields.DateTime(allow_none=True)
    heartbeat_at = ma.fields.DateTime(allow_none=True)
    lint = ma.fields.Nested(
        LintSchema,
        allow_none=True,
        metadata={"description": "The lint of the plan when queued (null when off)"},
    )
    error = _RecordError(
        ErrorSchema, allow_none=True, metadata={"description": "Why it failed, else null"}
    )
    rollout_id = ma.fields.Integer(
        allow_none=True, metadata={"description": "The rollout that queued it, else null"}
    )


class ApprovalSchema(ma.Schema):
    decision = ma.fields.String(metadata={"description": "approved or rejected"})
    actor = ma.fields.String()
    on_behalf_of = ma.fields.String(allow_none=True)
    reason = ma.fields.String(allow_none=True)
    decided_at = ma.fields.DateTime()


class OperationSchema(OperationSummarySchema):
    steps = ma.fields.List(ma.fields.Nested(StepSchema), metadata={"description": "As they ran"})
    approvals_required = ma.fields.Integer(
        allow_none=True, metadata={"description": "Approvals it needs (null: none)"}
    )
    approval_expires_at = ma.fields.DateTime(allow_none=True)
    approval_review = ma.fields.Dict(
        attribute="approval_binding",
        allow_none=True,
        metadata={
            "description": "What approvers approve: `heads`, `plan` and the sha256 of each "
            "planned revision file (`files`); the worker refuses to run if any changed"
        },
    )
    approvals = ma.fields.List(ma.fields.Nested(ApprovalSchema))


class RejectSchema(ma.Schema):
    reason = free_text(1000, required=True)


class OperationQueryArgsSchema(ma.Schema):
    status = ma.fields.String(validate=ma.validate.OneOf(list(Status)))
    action = ma.fields.String(validate=ma.validate.OneOf(list(Action)))
    database = ma.fields.String(validate=ma.validate.Length(max=63))


class WaitArgsSchema(ma.Schema):
    wait = ma.fields.Float(
        load_default=0,
        validate=ma.validate.Range(min=0, max=service.MAX_WAIT_SECONDS),
        metadata={"description": "Seconds to wait for the operation to end (long poll)"},
    )


class IdempotencyHeaderSchema(ma.Schema):
    idempotency_key = ma.fields.String(data_key="Idempotency-Key", validate=_KEY)


@blp.route("/databases/<dbname:db>/operations")
class DatabaseOperations(MethodView):
    @blp.arguments(OperationCreateSchema)
    @blp.arguments(IdempotencyHeaderSchema, location="headers")
    @blp.response(202, OperationSchema, headers={"Location": {"schema": {"type": "string"}}})
    @blp.problems(400, 401, 403, 404, 409, 413, 415, 422, 503)
    def post(self, body, headers, db):
        """Queue an upgrade, downgrade or stamp

        The same `Idempotency-Key` with the same body gives back the same operation.
        """
        body["expected_current"] = _tuple_or_none(body.get("expected_current"))
        body["acknowledge"] = tuple(body.get("acknowledge") or ())
        record = service.request_operation(
            registry(),
            control_store(),
            db,
            service.OperationRequest(**body),
            request_context(),
            headers.get("idempotency_key"),
            preview_cache(),
        )
        location = url_for("Operations.OperationById", operation_id=record.id)
        return record, 202, {"Location": location}

    @blp.arguments(OperationQueryArgsSchema(only=("status", "action")), location="query")
    @blp.response(200, OperationSummarySchema(many=True))
    @blp.paginate()
    @blp.problems(503)
    def get(self, args, db, pagination_parameters):
        """List this database's operations, newest first"""
        registry().get(db)
        return _page({**args, "database": db}, pagination_parameters)


@blp.route("/operations")
class Operations(MethodView):
    @blp.arguments(OperationQueryArgsSchema, location="query")
    @blp.response(200, OperationSummarySchema(many=True))
    @blp.paginate()
    @blp.problems(503)
    def get(self, args, pagination_parameters):
        """List operations, newest first"""
        return _page(args, pagination_parameters)


@blp.route("/operations/<id:operation_id>")
class OperationById(MethodView):
    @blp.arguments(WaitArgsSchema, location="query")
    @blp.response(200, OperationSchema, headers={"Retry-After": _RETRY_AFTER_HEADER})
    @blp.problems(404, 503)
    def get(self, args, operation_id):
        """Get one operation with its steps

        With `wait=N` (up to 60), answers as soon as the operation ends or N seconds pass.
        When too many calls wait already, answers at once, with `Retry-After`.
        """
        with waiter_slots().take() if args["wait"] else nullcontext(True) as waits:
            record = service.get_operation(
                control_store(),
                operation_id,
                wait=args["wait"] if waits else 0,
                principal=current_principal(),
            )
        retry = not waits and not record.finished
        return record, 200, {"Retry-After": WAIT_RETRY_AFTER_SECONDS} if retry else {}


@blp.route("/operations/<id:operation_id>/cancel", methods=["POST"])
@blp.response(200, OperationSchema)
@blp.problems(401, 403, 404, 409, 503)
def cancel(operation_id):
    """Cancel a queued operation (409 once it runs)"""
    return service.cancel_operation(control_store(), operation_id, request_context())


@blp.route("/operations/<id:operation_id>/approve", methods=["POST"])
@blp.response(200, OperationSchema)
@blp.problems(401, 403, 404, 409, 503)
def approve(operation_id):
    """Approve an operation awaiting approval (never its requester's own)

    The last approval required queues it. 409 `approval-stale` when the plan or a revision
    file changed since it was requested.
    """
    return approvals.approve(registry(), control_store(), operation_id, request_context())


@blp.route("/operations/<id:operation_id>/reject", methods=["POST"])
@blp.arguments(RejectSchema)
@blp.response(200, OperationSchema)
@blp.problems(401, 403, 404, 409, 422, 503)
def reject(body, operation_id):
    """Reject an operation awaiting approval, with a reason: it ends `rejected`"""
    return approvals.reject(control_store(), operation_id, request_context(), body["reason"])


def _page(filters: dict[str, Any], pagination_parameters: Any) -> list[Any]:
    records, total = service.list_operations(
        control_store(),
        filters=filters,
        principal=current_principal(),
        first=pagination_parameters.first_item,
        last=pagination_parameters.last_item,
    )
    pagination_parameters.item_count = total
    return records


def _tuple_or_none(values: list[str] | None) -> tuple[str, ...] | None:
    return None if values is None else tuple(values)
