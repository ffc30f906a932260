"""Managed databases: the list, one database with its status, and the status alone."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask.views import MethodView

from service.api.context import control_store, registry
from service.api.smorest import Blueprint
from service.services import databases as service
from service.services import fleet
from service.services.databases import SchemaState

blp = Blueprint("Databases", __name__, description="Managed databases and their status.")


class ProjectSchema(ma.Schema):
    alembic_config = ma.fields.String(metadata={"description": "Path of the alembic.ini"})
    alembic_section = ma.fields.String()


class PolicySchema(ma.Schema):
    """The effective policy, defaults applied: what a request will meet before it runs."""

    allow_downgrade = ma.fields.Boolean(metadata={"description": "false in production by default"})
    allow_stamp = ma.fields.Boolean()
    require_approval = ma.fields.Boolean(
        metadata={"description": "Operations wait for approvers (true in production by default)"}
    )
    approvals_required = ma.fields.Integer(
        metadata={"description": "Distinct approvers needed, none of them the requester"}
    )
    approval_ttl = ma.fields.Float(
        metadata={"description": "Seconds an operation may await approval before it expires"}
    )
    lint = ma.fields.String(
        metadata={"description": "off, warn or block (block in production by default)"}
    )
    lock_timeout = ma.fields.String(
        allow_none=True,
        metadata={"description": "Each step's lock_timeout (5s in production by default)"},
    )
    statement_timeout = ma.fields.String(
        allow_none=True, metadata={"description": "Each step's statement_timeout; null: none"}
    )


class DatabaseSchema(ma.Schema):
    name = ma.fields.String(required=True)
    environment = ma.fields.String()
    description = ma.fields.String()
    dialect = ma.fields.String(metadata={"description": "postgresql, sqlite, mysql ..."})
    url = ma.fields.String(metadata={"description": "The URL, password masked"})
    project = ma.fields.Nested(ProjectSchema)
    policy = ma.fields.Nested(PolicySchema)
    labels = ma.fields.Dict(
        keys=ma.fields.String(),
        values=ma.fields.String(),
        metadata={"description": "Free key = value tags from the databases file"},
    )


class StatusSchema(ma.Schema):
    database = ma.fields.String()
    state = ma.fields.Enum(SchemaState, by_value=True)
    up_to_date = ma.fields.Boolean(
        allow_none=True, metadata={"description": "Nothing pending; null if unknown"}
    )
    current_heads = ma.fields.List(ma.fields.String())
    script_heads = ma.fields.List(ma.fields.String())
    multiple_heads = ma.fields.Boolean(metadata={"description": "The scripts have several heads"})
    pending_count = ma.fields.Integer(allow_none=True)
    pending_revisions = ma.fields.List(
        ma.fields.String(), allow_none=True, metadata={"description": "In execution order"}
    )
    unknown_revisions = ma.fields.List(
        ma.fields.String(), metadata={"description": "Recorded in the database, not in scripts"}
    )
    version_table = ma.fields.String(allow_none=True)


class StatusProblemSchema(ma.Schema):
    code = ma.fields.String()
    detail = ma.fields.String()


class DatabaseDetailSchema(DatabaseSchema):
    status = ma.fields.Nested(StatusSchema, allow_none=True)
    status_problem = ma.fields.Nested(
        StatusProblemSchema,
        allow_none=True,
        metadata={"description": "Why status is null (same codes as the status endpoint)"},
    )


class DatabaseQueryArgsSchema(ma.Schema):
    environment = ma.fields.String(
        validate=ma.validate.Length(max=100), metadata={"description": "Only this environment"}
    )
    state = ma.fields.String(
        validate=ma.validate.OneOf(fleet.STATES),
        metadata={"description": "Only databases in this state, as a worker last read it"},
    )
    label = ma.fields.List(
        ma.fields.String(validate=ma.validate.Length(min=1, max=200)),
        validate=ma.validate.Length(max=20),
        metadata={"description": "`key=value` or `key`; repeat for several (all must match)"},
    )


@blp.route("/databases")
class Databases(MethodView):
    @blp.arguments(DatabaseQueryArgsSchema, location="query")
    @blp.response(200, DatabaseSchema(many=True))
    @blp.paginate()
    def get(self, args, pagination_parameters):
        """List managed databases, by name"""
        found = _listed(args)
        pagination_parameters.item_count = len(found)
        first, last = pagination_parameters.first_item, pagination_parameters.last_item
        return found[first : last + 1]


@blp.route("/databases/<dbname:db>")
class DatabaseById(MethodView):
    @blp.response(200, DatabaseDetailSchema)
    @blp.problems(404)
    def get(self, db):
        """Get one database with its status

        When the status cannot be read, `status` is null and `status_problem` says why.
        """
        return service.describe_database(registry(), db)


@blp.route("/databases/<dbname:db>/status")
class Status(MethodView):
    @blp.response(200, StatusSchema)
    @blp.problems(404, 503)
    def get(self, db):
        """Get the migration status: current heads, script heads, what is pending"""
        return service.database_status(registry(), db)


def _listed(args: dict[str, Any]) -> list[service.DatabaseSummary]:
    environment, labels = args.get("environment"), args.get("label", [])
    if "state" not in args:
        chosen = fleet.select(registry(), environment=environment, labels=labels)
        return [service.summarize(managed) for managed in chosen]
    return list(
        fleet.fleet_entries(
            registry(), control_store(), state=args["state"], environment=environment, labels=labels
        )
    )
