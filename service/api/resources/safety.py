"""Production safety: the lint of the SQL a change would run."""

from __future__ import annotations

import marshmallow as ma
from flask.views import MethodView

from service.api.context import control_store, preview_cache, registry, request_context
from service.api.lint_schemas import LintSchema
from service.api.resources.previews import PreviewArgsSchema
from service.api.smorest import Blueprint
from service.services.safety import checksums
from service.services.safety import lint as service

blp = Blueprint("Safety", __name__, description="Lint, lock bounds, checksums and drift.")


class RangeLintSchema(LintSchema):
    database = ma.fields.String()
    action = ma.fields.String()
    from_revisions = ma.fields.List(ma.fields.String(), data_key="from")
    to = ma.fields.String()
    to_revisions = ma.fields.List(ma.fields.String())
    sha256 = ma.fields.String(metadata={"description": "SHA-256 of the SQL linted (as /sql)"})


@blp.route("/databases/<dbname:db>/lint")
class Lint(MethodView):
    @blp.arguments(PreviewArgsSchema, location="query")
    @blp.response(200, RangeLintSchema)
    @blp.problems(404, 409, 422, 503)
    def get(self, args, db):
        """Lint the SQL of an upgrade, downgrade or stamp (PostgreSQL)

        Takes the range of `/sql`; each finding names its rule, the revision and statement,
        why it is dangerous and what to do instead.
        """
        preview, report = service.lint_range(registry(), preview_cache(), db, **args)
        return {
            **report.as_dict(),
            "database": db,
            "action": preview.action,
            "from_revisions": preview.from_revisions,
            "to": preview.to,
            "to_revisions": preview.to_revisions,
            "sha256": preview.sha256,
        }


class UnrecordedSchema(ma.Schema):
    revision = ma.fields.String()
    path = ma.fields.String(allow_none=True)


class RecordedSchema(UnrecordedSchema):
    sha256_recorded = ma.fields.String(metadata={"description": "When migctl applied it"})
    sha256_now = ma.fields.String(metadata={"description": "Of the file now (modified only)"})
    applied_by = ma.fields.String()
    applied_at = ma.fields.String()
    operation_id = ma.fields.Integer(allow_none=True)


class VerificationSchema(ma.Schema):
    database = ma.fields.String()
    ok = ma.fields.Boolean(metadata={"description": "No applied revision modified or missing"})
    checked = ma.fields.Integer(metadata={"description": "Applied revisions compared"})
    modified = ma.fields.List(
        ma.fields.Nested(RecordedSchema), metadata={"description": "File changed since applied"}
    )
    missing = ma.fields.List(
        ma.fields.Nested(RecordedSchema), metadata={"description": "Applied, file gone"}
    )
    unrecorded = ma.fields.List(
        ma.fields.Nested(UnrecordedSchema),
        metadata={"description": "Applied outside migctl: no checksum to compare"},
    )


@blp.route("/databases/<dbname:db>/verify")
class Verify(MethodView):
    @blp.response(200, VerificationSchema)
    @blp.problems(404, 409, 503)
    def get(self, db):
        """Compare the applied revisions with their files now

        Like Flyway's `validate`: a revision file edited after migctl applied it is
        `modified`, one gone is `missing`, one applied outside migctl is `unrecorded`.
        """
        return checksums.verify(registry(), control_store(), db)


@blp.route("/databases/<dbname:db>/verify/accept")
class VerifyAccept(MethodView):
    @blp.response(200, VerificationSchema)
    @blp.problems(401, 403, 404, 409, 503)
    def post(self, db):
        """Record the files now as the baseline of every applied revision (admin)

        Audited as `checksums.accepted`, naming the revisions that were modified, missing or
        unrecorded.
        """
        return checksums.accept(registry(), control_store(), db, request_context())
