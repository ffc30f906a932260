"""Fleets: a cache of each database's state, rollouts and their targets, operations.rollout_id

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 06:20:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "migctl_database_states",
        sa.Column("database", sa.String(63), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("current_heads", sa.JSON, nullable=False),
        sa.Column("pending_count", sa.Integer),
        sa.Column("problem_code", sa.String(64)),
        sa.Column("refreshed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("database", name="pk_migctl_database_states"),
    )
    op.create_table(
        "migctl_rollouts",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
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
        sa.Column("advancer", sa.String(128)),
        sa.Column("advance_until", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("id", name="pk_migctl_rollouts"),
        sa.UniqueConstraint(
            "actor", "idempotency_key", name="uq_migctl_rollouts_actor_idempotency_key"
        ),
    )
    op.create_index("ix_migctl_rollouts_status", "migctl_rollouts", ["status"])
    op.create_table(
        "migctl_rollout_targets",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("rollout_id", sa.Integer, nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("database", sa.String(63), nullable=False),
        sa.Column("canary", sa.Boolean, nullable=False),
        sa.Column("operation_id", sa.Integer),
        sa.Column("problem_code", sa.String(64)),
        sa.Column("problem_detail", sa.Text),
        sa.ForeignKeyConstraint(
            ["rollout_id"],
            ["migctl_rollouts.id"],
            name="fk_migctl_rollout_targets_rollout_id_migctl_rollouts",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_migctl_rollout_targets"),
        sa.UniqueConstraint(
            "rollout_id", "database", name="uq_migctl_rollout_targets_rollout_id_database"
        ),
    )
    with op.batch_alter_table("migctl_operations") as batch:
        batch.add_column(sa.Column("rollout_id", sa.Integer))
        batch.create_index("ix_migctl_operations_rollout_id", ["rollout_id"])


def downgrade() -> None:
    with op.batch_alter_table("migctl_operations") as batch:
        batch.drop_index("ix_migctl_operations_rollout_id")
        batch.drop_column("rollout_id")
    op.drop_table("migctl_rollout_targets")
    op.drop_index("ix_migctl_rollouts_status", table_name="migctl_rollouts")
    op.drop_table("migctl_rollouts")
    op.drop_table("migctl_database_states")
