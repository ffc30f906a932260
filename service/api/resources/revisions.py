"""Revisions of a database's Alembic project: list, one, heads, branch points, current, pending."""

from __future__ import annotations

import marshmallow as ma
from flask.views import MethodView

from service.api.context import registry
from service.api.fields import RecordedDateTime, revision_spec
from service.api.smorest import Blueprint
from service.services import revisions as service

blp = Blueprint(
    "Revisions", __name__, description="The revision graph and the database's place in it."
)

_READ_PROBLEMS = (404, 409, 422, 503)


class RevisionSchema(ma.Schema):
    revision = ma.fields.String(required=True)
    down_revisions = ma.fields.List(ma.fields.String())
    next_revisions = ma.fields.List(ma.fields.String())
    branch_labels = ma.fields.List(ma.fields.String())
    depends_on = ma.fields.List(ma.fields.String())
    message = ma.fields.String()
    description = ma.fields.String(metadata={"description": "The docstring after its first line"})
    created_at = RecordedDateTime(
        allow_none=True,
        metadata={
            "description": "The revision file's Create Date, ISO 8601: without an offset "
            "(the author's local time) unless the project sets Alembic's `timezone`"
        },
    )
    path = ma.fields.String(metadata={"description": "Relative to the project's folder"})
    is_head = ma.fields.Boolean()
    is_base = ma.fields.Boolean()
    is_branch_point = ma.fields.Boolean()
    is_merge = ma.fields.Boolean()
    applied = ma.fields.Boolean(
        allow_none=True,
        metadata={"description": "In the database; null while its state is unknown"},
    )


class CurrentSchema(ma.Schema):
    database = ma.fields.String()
    heads = ma.fields.List(ma.fields.String(), metadata={"description": "Version table rows"})
    revisions = ma.fields.List(
        ma.fields.Nested(RevisionSchema),
        metadata={"description": "What `alembic current` shows: heads and depends_on effects"},
    )
    unknown_revisions = ma.fields.List(
        ma.fields.String(), metadata={"description": "Recorded, but not in the scripts"}
    )


class PendingSchema(ma.Schema):
    database = ma.fields.String()
    current_heads = ma.fields.List(ma.fields.String())
    to = ma.fields.String()
    target_revisions = ma.fields.List(ma.fields.String())
    revisions = ma.fields.List(ma.fields.Nested(RevisionSchema))
    count = ma.fields.Integer()


class PendingArgsSchema(ma.Schema):
    to = revision_spec(
        load_default="heads",
        metadata={"description": "Upgrade destination: heads, head, an id, branch@head, +N"},
    )


@blp.route("/databases/<dbname:db>/revisions")
class Revisions(MethodView):
    @blp.response(200, RevisionSchema(many=True))
    @blp.paginate()
    @blp.problems(*_READ_PROBLEMS)
    def get(self, db, pagination_parameters):
        """List revisions, newest first

        The order of `alembic history`; each marked `applied` or not.
        """
        page = service.list_revisions(
            registry(),
            db,
            first=pagination_parameters.first_item,
            last=pagination_parameters.last_item,
        )
        pagination_parameters.item_count = page.total
        return page.items


@blp.route("/databases/<dbname:db>/revisions/<revspec:rev>")
class RevisionById(MethodView):
    @blp.response(200, RevisionSchema)
    @blp.problems(*_READ_PROBLEMS)
    def get(self, db, rev):
        """Get one revision

        `rev` is a full or unique partial id, `head`, `base`, `branch@head`,
        or a relative step (`head-1`, `+1`, `-1` from the database's current heads).
        """
        return service.get_revision(registry(), db, rev)


@blp.route("/databases/<dbname:db>/heads")
class Heads(MethodView):
    @blp.response(200, RevisionSchema(many=True))
    @blp.problems(404, 409, 503)
    def get(self, db):
        """List the script heads"""
        return service.list_heads(registry(), db)


@blp.route("/databases/<dbname:db>/branches")
class Branches(MethodView):
    @blp.response(200, RevisionSchema(many=True))
    @blp.problems(404, 409, 503)
    def get(self, db):
        """List the branch points (revisions with several next revisions)"""
        return service.list_branch_points(registry(), db)


@blp.route("/databases/<dbname:db>/current")
class Current(MethodView):
    @blp.response(200, CurrentSchema)
    @blp.problems(404, 503)
    def get(self, db):
        """Get the revisions recorded in the database's version table"""
        return service.current_revisions(registry(), db)


@blp.route("/databases/<dbname:db>/pending")
class Pending(MethodView):
    @blp.arguments(PendingArgsSchema, location="query")
    @blp.response(200, PendingSchema)
    @blp.problems(*_READ_PROBLEMS)
    def get(self, args, db):
        """List the revisions an upgrade would apply, in order

        Empty when the database is up to date with `to` (default `heads`).
        """
        return service.pending_revisions(registry(), db, to=args["to"])
