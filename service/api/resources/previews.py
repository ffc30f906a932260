"""Offline SQL previews of an upgrade, downgrade or stamp, as JSON or as a plain SQL script."""

from __future__ import annotations

import hashlib
import json

import marshmallow as ma
from flask import Response, request
from flask.views import MethodView

from service.api.context import preview_cache, registry
from service.api.fields import revision_spec
from service.api.lint_schemas import LintSchema
from service.api.smorest import Blueprint
from service.lifecycle import Action
from service.services import previews as service
from service.services.safety.lint import with_lint

blp = Blueprint("Previews", __name__, description="The SQL a change would run, before it runs.")

DIALECTS = ("postgresql", "sqlite", "mysql", "mariadb", "mssql", "oracle")
_RANGE_PATTERN = r"^(current|base|[A-Za-z0-9_.@+\-]{1,128}(,[A-Za-z0-9_.@+\-]{1,128}){0,15})$"


class SegmentSchema(ma.Schema):
    revision = ma.fields.String()
    direction = ma.fields.String(metadata={"description": "upgrade, downgrade or stamp"})
    sql = ma.fields.String()
    statement_count = ma.fields.Integer()


class PreviewSchema(ma.Schema):
    database = ma.fields.String()
    action = ma.fields.String()
    from_revisions = ma.fields.List(ma.fields.String(), data_key="from")
    to = ma.fields.String(metadata={"description": "The destination as asked"})
    to_revisions = ma.fields.List(ma.fields.String(), metadata={"description": "Resolved"})
    dialect = ma.fields.String()
    revisions = ma.fields.List(
        ma.fields.Nested(SegmentSchema), metadata={"description": "In order"}
    )
    sql = ma.fields.String(metadata={"description": "The whole script; the segments joined"})
    statement_count = ma.fields.Integer()
    sha256 = ma.fields.String(metadata={"description": "SHA-256 of `sql` (UTF-8)"})
    deterministic = ma.fields.Boolean(
        metadata={
            "description": "The text was the same when rendered twice. False when a revision "
            "renders differently from run to run (it iterates a set, say): then `sql` and "
            "`sha256` describe one of its possible texts"
        }
    )
    unstable_revisions = ma.fields.List(
        ma.fields.String(), metadata={"description": "The revisions whose SQL differed"}
    )
    lint = ma.fields.Nested(
        LintSchema,
        allow_none=True,
        metadata={"description": "Findings of the SQL lint (null when the policy is off)"},
    )


class PreviewArgsSchema(ma.Schema):
    action = ma.fields.String(load_default="upgrade", validate=ma.validate.OneOf(list(Action)))
    from_ = ma.fields.String(
        data_key="from",
        load_default="current",
        validate=ma.validate.Regexp(_RANGE_PATTERN, error="current, base or revision specs."),
        metadata={"description": "current (read live), base, or comma-separated revisions"},
    )
    to = revision_spec(
        metadata={"description": "Destination; default heads for upgrade, required otherwise"}
    )
    dialect = ma.fields.String(
        validate=ma.validate.OneOf(DIALECTS),
        metadata={"description": "Render for this dialect; default the database's own"},
    )

    @ma.validates_schema
    def _destination_needed(self, data, **_kwargs):
        if data.get("action") != "upgrade" and not data.get("to"):
            raise ma.ValidationError(f"Required for a {data.get('action')}.", "to")


@blp.route("/databases/<dbname:db>/sql")
class SqlPreview(MethodView):
    @blp.arguments(PreviewArgsSchema, location="query")
    @blp.response(
        200,
        PreviewSchema,
        headers={
            "ETag": {
                "description": "Strong tag of the answer: the SQL's SHA-256 (-json, and a digest "
                "of the lint, for JSON)",
                "schema": {"type": "string"},
            },
            "Preview-Deterministic": {
                "description": "false when two renders of the range gave different texts",
                "schema": {"type": "string", "enum": ["true", "false"]},
            },
            "Preview-Unstable-Revisions": {
                "description": "Comma-separated revisions whose SQL differed between renders",
                "schema": {"type": "string"},
            },
        },
    )
    @blp.doc(responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}})
    @blp.problems(304, 404, 409, 422, 503)
    def get(self, args, db):
        """Preview the SQL of an upgrade, downgrade or stamp

        Byte for byte what `alembic <action> <from>:<to> --sql` prints, split per revision.
        With `Accept: text/plain` the answer is the script alone. The ETag follows the text.
        """
        preview = service.preview_sql(registry(), preview_cache(), db, **args)
        as_text = request.accept_mimetypes.best_match(["application/json", "text/plain"])
        if as_text != "text/plain":
            preview = with_lint(registry(), preview)
        tag = (
            preview.sha256
            if as_text == "text/plain"
            else f"{preview.sha256}-json{_lint_tag(preview)}"
        )
        headers = {
            "ETag": f'"{tag}"',
            "Vary": "Accept",
            "Preview-Deterministic": "true" if preview.deterministic else "false",
        }
        if preview.unstable_revisions:
            headers["Preview-Unstable-Revisions"] = ",".join(preview.unstable_revisions)
        if request.if_none_match.contains(tag):
            return Response(status=304, headers=headers)
        if as_text == "text/plain":
            return Response(preview.sql, mimetype="text/plain", headers=headers)
        return preview, 200, headers


def _lint_tag(preview: service.SqlPreview) -> str:
    """The lint follows revision comments and policy, not only the SQL: the tag follows it."""
    if preview.lint is None:
        return ""
    digest = hashlib.sha256(json.dumps(preview.lint, sort_keys=True).encode()).hexdigest()
    return f"-{digest[:16]}"
