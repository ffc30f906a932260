"""Production safety: the lint of the SQL a change would run."""

from __future__ import annotations

import marshmallow as ma
from flask.views import MethodView

from service.api.context import preview_cache, registry
from service.api.lint_schemas import LintSchema
from service.api.resources.previews import PreviewArgsSchema
from service.api.smorest import Blueprint
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
