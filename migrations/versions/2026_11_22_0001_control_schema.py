"""Operations, their steps, and the append-only audit log

Revision ID: 0001
Revises:
Create Date: 2026-11-22 05:30:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

APPEND_ONLY = """
CREATE FUNCTION migctl_audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'migctl_audit_events is append-only';
END $$
"""


def upgrade() -> None:
    op.create_table(
        "migctl_operations",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("database", sa.String(63), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("revision", sa.String(255), nullable=False),
        sa.Column("target_revisions", sa.JSON, nullable=False),
        sa.Column("expected_current", sa.JSON),
        sa.Column("purge", sa.Boolean, nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
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
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'succeeded', 'failed', 'interrupted', 'cancelled')",
            name="ck_migctl_operations_status",
        ),
        sa.CheckConstraint(
            "action IN ('upgrade', 'downgrade', 'stamp')", name="ck_migctl_operations_action"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_migctl_operations"),
        sa.UniqueConstraint(
            "actor", "idempotency_key", name="uq_migctl_operations_actor_idempotency_key"
        ),
    )
    op.create_index("ix_migctl_operations_database_id", "migctl_operations", ["database", "id"])
    op.create_index("ix_migctl_operations_status_id", "migctl_operations", ["status", "id"])
    op.create_index(
        "uq_migctl_operations_one_running_per_database",
        "migctl_operations",
        ["database"],
        unique=True,
        sqlite_where=sa.text("status = 'running'"),
        postgresql_where=sa.text("status = 'running'"),
    )
    op.create_table(
        "migctl_operation_steps",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("operation_id", sa.Integer, nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("revision", sa.String(255), nullable=False),
        sa.Column("direction", sa.String(16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("duration_ms", sa.Float, nullable=False),
        sa.Column("statement_count", sa.Integer, nullable=False),
        sa.Column("sql", sa.Text, nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_migctl_operation_steps"),
        sa.ForeignKeyConstraint(
            ["operation_id"],
            ["migctl_operations.id"],
            name="fk_migctl_operation_steps_operation_id_migctl_operations",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint(
            "operation_id", "position", name="uq_migctl_operation_steps_operation_id_position"
        ),
    )
    op.create_table(
        "migctl_audit_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("database", sa.String(63)),
        sa.Column("operation_id", sa.Integer),
        sa.Column("request_id", sa.String(64)),
        sa.Column("client_address", sa.String(64)),
        sa.Column("user_agent", sa.String(255)),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("details", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_migctl_audit_events"),
    )
    op.create_index(
        "ix_migctl_audit_events_database_id", "migctl_audit_events", ["database", "id"]
    )
    op.create_index(
        "ix_migctl_audit_events_operation_id_id", "migctl_audit_events", ["operation_id", "id"]
    )
    if op.get_context().dialect.name == "postgresql":
        op.execute(APPEND_ONLY)
        op.execute(
            "CREATE TRIGGER migctl_audit_events_append_only BEFORE UPDATE OR DELETE "
            "ON migctl_audit_events FOR EACH ROW "
            "EXECUTE FUNCTION migctl_audit_events_append_only()"
        )
        op.execute(
            "CREATE TRIGGER migctl_audit_events_no_truncate BEFORE TRUNCATE "
            "ON migctl_audit_events FOR EACH STATEMENT "
            "EXECUTE FUNCTION migctl_audit_events_append_only()"
        )


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute("DROP TRIGGER migctl_audit_events_no_truncate ON migctl_audit_events")
        op.execute("DROP TRIGGER migctl_audit_events_append_only ON migctl_audit_events")
        op.execute("DROP FUNCTION migctl_audit_events_append_only()")
    op.drop_table("migctl_audit_events")
    op.drop_table("migctl_operation_steps")
    op.drop_table("migctl_operations")
