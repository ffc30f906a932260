"""Production safety: the lint of the SQL a change would run."""

from __future__ import annotations

import marshmallow as ma
from flask import url_for
from flask.views import MethodView

from service.api.context import control_store, preview_cache, registry, request_context
from service.api.lint_schemas import LintSchema
from service.api.resources.previews import PreviewArgsSchema
from service.api.smorest import Blueprint
from service.services.safety import checksums, drift, locks
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


class DriftCheckSchema(ma.Schema):
    id = ma.fields.Integer()
    database = ma.fields.String()
    checked_at = ma.fields.DateTime()
    actor = ma.fields.String()
    drift = ma.fields.Boolean(metadata={"description": "The models and the database differ"})
    database_heads = ma.fields.List(
        ma.fields.String(), metadata={"description": "Where the database was when compared"}
    )
    script_heads = ma.fields.List(ma.fields.String())
    summary = ma.fields.Dict(
        keys=ma.fields.String(),
        values=ma.fields.Integer(),
        metadata={"description": "Differences by kind (add_table, modify_type ...)"},
    )
    total = ma.fields.Integer()
    diffs = ma.fields.List(
        ma.fields.Dict(),
        metadata={
            "description": "Alembic's compare_metadata items as objects: `kind`, `table`, "
            "`column`, `from`, `to` ... (the first 50)"
        },
    )


@blp.route("/databases/<dbname:db>/drift-checks")
class DriftChecks(MethodView):
    @blp.response(201, DriftCheckSchema, headers={"Location": {"schema": {"type": "string"}}})
    @blp.problems(401, 403, 404, 422, 503)
    def post(self, db):
        """Compare the models (env.py's target_metadata) with the database: `alembic check`

        Runs Alembic's compare_metadata in the project's own interpreter, read-only and
        bounded by `MIGCTL_RUNNER_TIMEOUT_SECONDS`; the result is kept (and audited).
        """
        check = drift.run_drift_check(registry(), control_store(), db, request_context())
        location = url_for("Safety.DriftCheckById", db=db, check_id=check.id)
        return check, 201, {"Location": location}


@blp.route("/databases/<dbname:db>/drift-checks/<int:check_id>")
class DriftCheckById(MethodView):
    @blp.response(200, DriftCheckSchema)
    @blp.problems(404, 503)
    def get(self, db, check_id):
        """One drift check, as it was run"""
        return drift.get_drift_check(registry(), control_store(), db, check_id)


class SessionSchema(ma.Schema):
    pid = ma.fields.Integer()
    state = ma.fields.String(allow_none=True)
    query_start = ma.fields.String(allow_none=True)
    backend_start = ma.fields.String(allow_none=True)
    application_name = ma.fields.String(allow_none=True)
    query = ma.fields.String(allow_none=True, metadata={"description": "First 200 characters"})


class WaitSchema(ma.Schema):
    locktype = ma.fields.String()
    relation = ma.fields.String(allow_none=True)
    mode = ma.fields.String()


class LeaseSchema(ma.Schema):
    holder = ma.fields.String()
    expires_at = ma.fields.String()
    expired = ma.fields.Boolean()


class LockOperationSchema(ma.Schema):
    id = ma.fields.Integer()
    worker_id = ma.fields.String(allow_none=True)
    heartbeat_at = ma.fields.DateTime(allow_none=True)
    lease_expires_at = ma.fields.DateTime(allow_none=True)
    lease_expired = ma.fields.Boolean()


class LockStatusSchema(ma.Schema):
    database = ma.fields.String()
    kind = ma.fields.String(metadata={"description": "advisory, table, named (MySQL) or none"})
    holder = ma.fields.Nested(
        SessionSchema, allow_none=True, metadata={"description": "The session holding it"}
    )
    migrating = ma.fields.Nested(
        SessionSchema,
        allow_none=True,
        metadata={"description": "The job's migrating session, when env.py opened its own"},
    )
    waiting_for = ma.fields.List(
        ma.fields.Nested(WaitSchema),
        metadata={"description": "Locks the migrating session (or the holder) waits for"},
    )
    blocked_by = ma.fields.List(
        ma.fields.Nested(SessionSchema), metadata={"description": "Sessions it waits behind"}
    )
    lease = ma.fields.Nested(
        LeaseSchema, allow_none=True, metadata={"description": 'Of `lock = "table"`'}
    )
    operation = ma.fields.Nested(
        LockOperationSchema,
        allow_none=True,
        metadata={"description": "The operation migctl runs on the database, if any"},
    )


@blp.route("/databases/<dbname:db>/locks")
class Locks(MethodView):
    @blp.response(200, LockStatusSchema)
    @blp.problems(404, 503)
    def get(self, db):
        """Who holds the migration lock, and what that session waits for

        From `pg_locks` and `pg_stat_activity` (PostgreSQL), or the lease row of
        `lock = "table"`, beside the operation migctl runs on the database.
        """
        return locks.lock_status(registry(), control_store(), db)


@blp.route("/databases/<dbname:db>/locks/release")
class LocksRelease(MethodView):
    @blp.response(200, LockStatusSchema)
    @blp.problems(401, 403, 404, 409, 503)
    def post(self, db):
        """Release a migration lock whose holder is gone (admin)

        Clears a lease whose holder let it expire; 409 `lock-held` while its holder lives.
        Audited as `lock.released` (released or refused).
        """
        return locks.release(registry(), control_store(), db, request_context())
