"""Two-person approval (operations wait for approvers) and the webhook outbox

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 06:30:00

"""

import sqlalchemy as sa
from alembic import op
from alembic.operations import BatchOperations

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

OLD = ("queued", "running", "succeeded", "failed", "interrupted", "cancelled")
NEW = ("awaiting_approval", *OLD, "rejected", "expired")
RUNNING_INDEX = "uq_migctl_operations_one_running_per_database"


def _statuses(batch: BatchOperations, statuses: tuple[str, ...], old: int, new: int) -> None:
    batch.drop_constraint("ck_migctl_operations_status", type_="check")
    batch.alter_column(
        "status", type_=sa.String(new), existing_type=sa.String(old), nullable=False
    )
    batch.create_check_constraint("ck_migctl_operations_status", f"status IN {statuses!r}")


def _running_index() -> None:
    # SQLite's batch copy of the table does not carry the partial index's WHERE over.
    op.drop_index(RUNNING_INDEX, "migctl_operations")
    op.create_index(
        RUNNING_INDEX,
        "migctl_operations",
        ["database"],
        unique=True,
        sqlite_where=sa.text("status = 'running'"),
        postgresql_where=sa.text("status = 'running'"),
    )


def upgrade() -> None:
    with op.batch_alter_table("migctl_operations") as batch:
        _statuses(batch, NEW, old=16, new=32)
        batch.add_column(sa.Column("approvals_required", sa.Integer))
        batch.add_column(sa.Column("approval_expires_at", sa.DateTime(timezone=True)))
        batch.add_column(sa.Column("approval_binding", sa.JSON))
    _running_index()
    op.create_table(
        "migctl_approvals",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("operation_id", sa.Integer, nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("on_behalf_of", sa.String(255)),
        sa.Column("reason", sa.Text),
        sa.Column("binding", sa.JSON, nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_migctl_approvals"),
        sa.ForeignKeyConstraint(
            ["operation_id"],
            ["migctl_operations.id"],
            name="fk_migctl_approvals_operation_id_migctl_operations",
            ondelete="CASCADE",
        ),
        sa.CheckConstraint(
            "decision IN ('approved', 'rejected')", name="ck_migctl_approvals_decision"
        ),
    )
    op.create_index("ix_migctl_approvals_operation_id", "migctl_approvals", ["operation_id"])
    _webhook_tables()


def _webhook_tables() -> None:
    op.create_table(
        "migctl_webhook_deliveries",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("webhook", sa.String(63), nullable=False),
        sa.Column("event_id", sa.Integer, nullable=False),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("database", sa.String(63)),
        sa.Column("operation_id", sa.Integer),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True)),
        sa.Column("last_status_code", sa.Integer),
        sa.Column("last_error", sa.Text),
        sa.PrimaryKeyConstraint("id", name="pk_migctl_webhook_deliveries"),
        sa.CheckConstraint(
            "status IN ('pending', 'delivered', 'failed')",
            name="ck_migctl_webhook_deliveries_status",
        ),
    )
    op.create_index(
        "ix_migctl_webhook_deliveries_status_next_attempt_at",
        "migctl_webhook_deliveries",
        ["status", "next_attempt_at"],
    )
    op.create_index(
        "ix_migctl_webhook_deliveries_webhook_id", "migctl_webhook_deliveries", ["webhook", "id"]
    )
    op.create_table(
        "migctl_webhooks_disabled",
        sa.Column("webhook", sa.String(63), nullable=False),
        sa.Column("url_sha256", sa.String(64), nullable=False),
        sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("webhook", name="pk_migctl_webhooks_disabled"),
    )


def downgrade() -> None:
    op.drop_table("migctl_webhooks_disabled")
    op.drop_table("migctl_webhook_deliveries")
    op.drop_table("migctl_approvals")
    op.execute(
        "UPDATE migctl_operations SET status = 'cancelled' "
        "WHERE status IN ('awaiting_approval', 'rejected', 'expired')"
    )
    with op.batch_alter_table("migctl_operations") as batch:
        batch.drop_column("approval_binding")
        batch.drop_column("approval_expires_at")
        batch.drop_column("approvals_required")
        _statuses(batch, OLD, old=32, new=16)
    _running_index()
