"""Rollouts: one action to many databases, a few at a time; read, pause, resume, cancel."""

from __future__ import annotations

import datetime as dt
from typing import Any

import marshmallow as ma
from flask import url_for
from flask.views import MethodView

from service.api.context import control_store, registry, request_context
from service.api.fields import revision_spec
from service.api.resources.operations import IdempotencyHeaderSchema
from service.api.smorest import Blueprint
from service.lifecycle import Action, RolloutStatus
from service.services import rollouts as service

blp = Blueprint("Rollouts", __name__, description="One change to many databases, in waves.")
_NAME = ma.fields.String(validate=ma.validate.Length(min=1, max=63))


class SelectorSchema(ma.Schema):
    names = ma.fields.List(_NAME, validate=ma.validate.Length(max=10_000))
    environment = ma.fields.String(validate=ma.validate.Length(max=100))
    labels = ma.fields.List(
        ma.fields.String(validate=ma.validate.Length(min=1, max=200)),
        validate=ma.validate.Length(max=20),
        metadata={"description": "`key=value` or `key`; all must match"},
    )

    @ma.post_load
    def _make(self, data, **_kwargs):
        return service.Selector(
            names=tuple(data.get("names", ())),
            environment=data.get("environment"),
            labels=tuple(data.get("labels", ())),
        )


class RolloutCreateSchema(ma.Schema):
    action = ma.fields.String(required=True, validate=ma.validate.OneOf(list(Action)))
    revision = revision_spec(required=True, metadata={"description": "heads, an id ..."})
    selector = ma.fields.Nested(SelectorSchema, required=True)
    max_parallel = ma.fields.Integer(load_default=1, validate=ma.validate.Range(min=1, max=256))
    canary = ma.fields.Integer(
        load_default=0,
        validate=ma.validate.Range(min=0, max=1000),
        metadata={"description": "How many databases go first; the rest wait for their success"},
    )
    stop_on_failure = ma.fields.Boolean(
        load_default=True, metadata={"description": "Stop at the first failure (max_failures 0)"}
    )
    max_failures = ma.fields.Integer(
        validate=ma.validate.Range(min=0),
        metadata={"description": "Failures tolerated before it stops (instead of stop_on_failure)"},
    )

    @ma.post_load
    def _make(self, data, **_kwargs):
        stop = data.pop("stop_on_failure")
        default = 0 if stop else 2**31 - 1
        data["max_failures"] = min(data.get("max_failures", default), 2**31 - 1)
        return service.RolloutRequest(**data)


class TargetSchema(ma.Schema):
    database = ma.fields.String()
    canary = ma.fields.Boolean()
    state = ma.fields.Function(
        service.target_state,
        metadata={"description": "pending, skipped (not queued: see problem), or the operation's"},
    )
    operation_id = ma.fields.Integer(allow_none=True)
    problem = ma.fields.Function(
        service.target_problem,
        metadata={
            "description": "Why it was skipped (`rollout-stopped`: the rollout ended first), "
            "or its operation's error code and message; null otherwise"
        },
    )
    started_at = ma.fields.DateTime(allow_none=True)
    finished_at = ma.fields.DateTime(allow_none=True)


class RolloutSummarySchema(ma.Schema):
    id = ma.fields.Integer(attribute="record.id")
    status = ma.fields.String(
        attribute="record.status", metadata={"description": ", ".join(RolloutStatus)}
    )
    action = ma.fields.String(attribute="record.action")
    revision = ma.fields.String(attribute="record.revision")
    selector = ma.fields.Dict(attribute="record.selector")
    max_parallel = ma.fields.Integer(attribute="record.max_parallel")
    canary = ma.fields.Integer(attribute="record.canary")
    max_failures = ma.fields.Integer(attribute="record.max_failures")
    actor = ma.fields.String(attribute="record.actor")
    created_at = ma.fields.DateTime(attribute="record.created_at")
    finished_at = ma.fields.DateTime(attribute="record.finished_at", allow_none=True)
    totals = ma.fields.Dict(
        keys=ma.fields.String(), values=ma.fields.Integer(), metadata={"description": "per state"}
    )
    eta_seconds = ma.fields.Float(
        allow_none=True,
        metadata={"description": "Mean operation time, times waves left; null at first"},
    )


class TargetList(ma.fields.List):  # type: ignore[type-arg]
    """Targets as TargetSchema documents them, dumped by hand: marshmallow's nested dump of
    200 targets was a third of GET /rollouts/{id}, which a portal polls during a rollout."""

    def _serialize(self, value: Any, attr: Any, obj: Any, **kwargs: Any) -> Any:
        return None if value is None else [target_json(target) for target in value]


def target_json(target: service.TargetRecord) -> dict[str, Any]:
    return {
        "database": target.database,
        "canary": target.canary,
        "state": service.target_state(target),
        "operation_id": target.operation_id,
        "problem": service.target_problem(target),
        "started_at": _iso(target.started_at),
        "finished_at": _iso(target.finished_at),
    }


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat()


class RolloutSchema(RolloutSummarySchema):
    targets = TargetList(ma.fields.Nested(TargetSchema), attribute="record.targets")


class RolloutQueryArgsSchema(ma.Schema):
    status = ma.fields.String(validate=ma.validate.OneOf(list(RolloutStatus)))


@blp.route("/rollouts")
class Rollouts(MethodView):
    @blp.arguments(RolloutQueryArgsSchema, location="query")
    @blp.response(200, RolloutSummarySchema(many=True))
    @blp.paginate()
    @blp.problems(503)
    def get(self, args, pagination_parameters):
        """List rollouts, newest first, with their totals per state (`status` filters)"""
        views, total = service.list_rollouts(
            control_store(),
            args.get("status"),
            request_context(),
            first=pagination_parameters.first_item,
            last=pagination_parameters.last_item,
        )
        pagination_parameters.item_count = total
        return views

    @blp.arguments(RolloutCreateSchema)
    @blp.arguments(IdempotencyHeaderSchema, location="headers")
    @blp.response(202, RolloutSchema, headers={"Location": {"schema": {"type": "string"}}})
    @blp.problems(400, 401, 403, 404, 409, 413, 415, 422, 503)
    def post(self, body, headers, **_kwargs):
        """Start a rollout: queue the action on every selected database, max_parallel at a time

        Workers queue each database's operation (single-flight and audited as any other),
        the `canary` first; new operations stop once failures exceed `max_failures`.
        """
        view = service.request_rollout(
            registry(), control_store(), body, request_context(), headers.get("idempotency_key")
        )
        location = url_for("Rollouts.RolloutById", rollout_id=view.record.id)
        return view, 202, {"Location": location}


@blp.route("/rollouts/<id:rollout_id>")
class RolloutById(MethodView):
    @blp.response(200, RolloutSchema)
    @blp.problems(404, 503)
    def get(self, rollout_id):
        """Get a rollout: each database's operation and state, totals, and an ETA"""
        return service.get_rollout(control_store(), rollout_id, request_context())


def _change(rollout_id: int, status: RolloutStatus) -> service.RolloutView:
    return service.change_rollout(control_store(), rollout_id, status, request_context())


@blp.route("/rollouts/<id:rollout_id>/pause", methods=["POST"])
@blp.response(200, RolloutSchema)
@blp.problems(401, 403, 404, 409, 503)
def pause(rollout_id):
    """Pause: no new operations start (those running finish)"""
    return _change(rollout_id, RolloutStatus.PAUSED)


@blp.route("/rollouts/<id:rollout_id>/resume", methods=["POST"])
@blp.response(200, RolloutSchema)
@blp.problems(401, 403, 404, 409, 503)
def resume(rollout_id):
    """Resume a paused rollout"""
    return _change(rollout_id, RolloutStatus.RUNNING)


@blp.route("/rollouts/<id:rollout_id>/cancel", methods=["POST"])
@blp.response(200, RolloutSchema)
@blp.problems(401, 403, 404, 409, 503)
def cancel(rollout_id):
    """Cancel: no new operations, its queued ones cancelled (those running finish)"""
    return _change(rollout_id, RolloutStatus.CANCELLED)
