"""The control tables (operations, steps, audit, workers, approvals, webhook outbox)."""

from __future__ import annotations

import sqlalchemy as sa

from service.lifecycle import Action, Status

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

STATUSES = tuple(str(status) for status in Status)
ACTIONS = tuple(str(action) for action in Action)
ONE_RUNNING_PER_DATABASE = "uq_migctl_operations_one_running_per_database"

operations = sa.Table(
    "migctl_operations",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("database", sa.String(63), nullable=False),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("revision", sa.String(255), nullable=False),
    sa.Column("target_revisions", sa.JSON, nullable=False),
    sa.Column("expected_current", sa.JSON),
    sa.Column("purge", sa.Boolean, nullable=False, default=False),
    sa.Column("reason", sa.Text),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("actor", sa.String(255), nullable=False),
    sa.Column("on_behalf_of", sa.String(255)),
    sa.Column("request_id", sa.String(64)),
    sa.Column("client_address", sa.String(64)),
    sa.Column("user_agent", sa.String(255)),
    sa.Column("idempotency_key", sa.String(255)),
    sa.Column("request_hash", sa.String(64)),
    sa.Column("planned_steps", sa.JSON, nullable=False),
    sa.Column("heads_before", sa.JSON),
    sa.Column("heads_after", sa.JSON),
    sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True)),
    sa.Column("executing_at", sa.DateTime(timezone=True)),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
    sa.Column("heartbeat_at", sa.DateTime(timezone=True)),
    sa.Column("lease_expires_at", sa.DateTime(timezone=True)),
    sa.Column("worker_id", sa.String(128)),
    sa.Column("error_code", sa.String(64)),
    sa.Column("error_type", sa.String(255)),
    sa.Column("error_message", sa.Text),
    sa.Column("failed_revision", sa.String(255)),
    sa.Column("failed_sql", sa.Text),
    # Two-person approval: how many approvals it needs (null: none), until when, and what
    # the approvers review (the plan and each revision file's sha256 when it was requested).
    sa.Column("approvals_required", sa.Integer),
    sa.Column("approval_expires_at", sa.DateTime(timezone=True)),
    sa.Column("approval_binding", sa.JSON),
    sa.Column("lint", sa.JSON),  # findings of the planned SQL when it was queued
    sa.Column("rollout_id", sa.Integer),  # the rollout that queued it, if one did
    sa.CheckConstraint(f"status IN {STATUSES!r}", name="status"),
    sa.CheckConstraint(f"action IN {ACTIONS!r}", name="action"),
    sa.UniqueConstraint("actor", "idempotency_key"),
    sa.Index("ix_migctl_operations_database_id", "database", "id"),
    sa.Index("ix_migctl_operations_status_id", "status", "id"),
    sa.Index("ix_migctl_operations_rollout_id", "rollout_id"),
    # The database, not the code, guarantees one running operation per managed database.
    sa.Index(
        ONE_RUNNING_PER_DATABASE,
        "database",
        unique=True,
        sqlite_where=sa.text(f"status = '{Status.RUNNING}'"),
        postgresql_where=sa.text(f"status = '{Status.RUNNING}'"),
    ),
)

operation_steps = sa.Table(
    "migctl_operation_steps",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "operation_id",
        sa.Integer,
        sa.ForeignKey("migctl_operations.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("revision", sa.String(255), nullable=False),
    sa.Column("direction", sa.String(16), nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("duration_ms", sa.Float, nullable=False),
    sa.Column("statement_count", sa.Integer, nullable=False),
    sa.Column("sql", sa.Text, nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.UniqueConstraint("operation_id", "position"),
)

audit_events = sa.Table(
    "migctl_audit_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("actor", sa.String(255), nullable=False),
    sa.Column("on_behalf_of", sa.String(255)),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("database", sa.String(63)),
    sa.Column("operation_id", sa.Integer),
    sa.Column("request_id", sa.String(64)),
    sa.Column("client_address", sa.String(64)),
    sa.Column("user_agent", sa.String(255)),
    sa.Column("outcome", sa.String(32), nullable=False),
    sa.Column("details", sa.JSON, nullable=False),
    sa.Column("worker", sa.String(128)),  # the worker that acted for `actor`, if one did
    sa.Index("ix_migctl_audit_events_database_id", "database", "id"),
    sa.Index("ix_migctl_audit_events_operation_id_id", "operation_id", "id"),
)

# Every worker process, so that readiness can tell whether one is alive (seen_at is renewed
# every poll interval). Rows of workers long gone are pruned when a worker starts.
workers = sa.Table(
    "migctl_workers",
    metadata,
    sa.Column("id", sa.String(128), primary_key=True),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("stopped_at", sa.DateTime(timezone=True)),
    sa.Index("ix_migctl_workers_seen_at", "seen_at"),
)

# What happened to operations, in commit order: `id` is the server-sent event id a client
# resumes from (Last-Event-ID), so a row must never become visible behind a larger id.
events = sa.Table(
    "migctl_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("operation_id", sa.Integer, nullable=False),
    sa.Column("database", sa.String(63), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_migctl_events_operation_id_id", "operation_id", "id"),
    sa.Index("ix_migctl_events_database_id", "database", "id"),
)

# Each approval or rejection of an operation, with what the approver saw (the binding).
approvals = sa.Table(
    "migctl_approvals",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "operation_id",
        sa.Integer,
        sa.ForeignKey("migctl_operations.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("decision", sa.String(16), nullable=False),
    sa.Column("actor", sa.String(255), nullable=False),
    sa.Column("on_behalf_of", sa.String(255)),
    sa.Column("reason", sa.Text),
    sa.Column("binding", sa.JSON, nullable=False),
    sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("decision IN ('approved', 'rejected')", name="decision"),
    sa.Index("ix_migctl_approvals_operation_id", "operation_id"),
)

DELIVERY_STATUSES = ("pending", "delivered", "failed")

# The webhook outbox: one row per (audit event, subscription), written in the event's own
# transaction; any worker claims due rows and delivers them, at least once.
webhook_deliveries = sa.Table(
    "migctl_webhook_deliveries",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("webhook", sa.String(63), nullable=False),
    sa.Column("event_id", sa.Integer, nullable=False),
    sa.Column("event_type", sa.String(64), nullable=False),
    sa.Column("database", sa.String(63)),
    sa.Column("operation_id", sa.Integer),
    sa.Column("body", sa.Text, nullable=False),  # signed and sent as is on every attempt
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_attempt_at", sa.DateTime(timezone=True)),
    sa.Column("last_status_code", sa.Integer),
    sa.Column("last_error", sa.Text),
    sa.CheckConstraint(f"status IN {DELIVERY_STATUSES!r}", name="status"),
    sa.Index("ix_migctl_webhook_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
    sa.Index("ix_migctl_webhook_deliveries_webhook_id", "webhook", "id"),
)

# Subscriptions a receiver answered 410 Gone: off until the file gives them another URL.
webhooks_disabled = sa.Table(
    "migctl_webhooks_disabled",
    metadata,
    sa.Column("webhook", sa.String(63), primary_key=True),
    sa.Column("url_sha256", sa.String(64), nullable=False),
    sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
)

# The sha256 of each revision file when migctl applied or stamped it (a Flyway-like ledger):
# an edit after the fact shows as `modified` in /verify.
revision_checksums = sa.Table(
    "migctl_revision_checksums",
    metadata,
    sa.Column("database", sa.String(63), nullable=False),
    sa.Column("revision", sa.String(255), nullable=False),
    sa.Column("path", sa.String(1024), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("actor", sa.String(255), nullable=False),
    sa.Column("operation_id", sa.Integer),
    sa.PrimaryKeyConstraint("database", "revision"),
)

# Each database's state as a worker last read it, so fleet views never run env.py per request.
database_states = sa.Table(
    "migctl_database_states",
    metadata,
    sa.Column("database", sa.String(63), primary_key=True),
    sa.Column("state", sa.String(32), nullable=False),
    sa.Column("current_heads", sa.JSON, nullable=False),
    sa.Column("pending_count", sa.Integer),
    sa.Column("problem_code", sa.String(64)),
    sa.Column("refreshed_at", sa.DateTime(timezone=True), nullable=False),
)

# A rollout: one action to many databases, a few at a time; workers advance it.
rollouts = sa.Table(
    "migctl_rollouts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("revision", sa.String(255), nullable=False),
    sa.Column("selector", sa.JSON, nullable=False),
    sa.Column("max_parallel", sa.Integer, nullable=False),
    sa.Column("canary", sa.Integer, nullable=False),
    sa.Column("max_failures", sa.Integer, nullable=False),
    sa.Column("actor", sa.String(255), nullable=False),
    sa.Column("on_behalf_of", sa.String(255)),
    sa.Column("request_id", sa.String(64)),
    sa.Column("idempotency_key", sa.String(255)),
    sa.Column("request_hash", sa.String(64)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
    # A short lease: the one worker advancing it now, so max_parallel holds across workers.
    sa.Column("advancer", sa.String(128)),
    sa.Column("advance_until", sa.DateTime(timezone=True)),
    sa.UniqueConstraint("actor", "idempotency_key"),
    sa.Index("ix_migctl_rollouts_status", "status"),
)

rollout_targets = sa.Table(
    "migctl_rollout_targets",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "rollout_id",
        sa.Integer,
        sa.ForeignKey("migctl_rollouts.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("database", sa.String(63), nullable=False),
    sa.Column("canary", sa.Boolean, nullable=False),
    sa.Column("operation_id", sa.Integer),
    sa.Column("problem_code", sa.String(64)),  # why no operation could be queued for it
    sa.Column("problem_detail", sa.Text),
    sa.UniqueConstraint("rollout_id", "database"),
)

# Console sign-ins: the cookie holds a random id, this table only its SHA-256, so a copy of
# the control database opens no session. `token_hash` is the tokens file's digest: a revoked
# token ends its sessions at their next request.
console_sessions = sa.Table(
    "migctl_console_sessions",
    metadata,
    sa.Column("id_hash", sa.String(64), primary_key=True),
    sa.Column("token_hash", sa.String(64), nullable=False),
    sa.Column("csrf_token", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_migctl_console_sessions_expires_at", "expires_at"),
)
