"""Operation events: what server-sent event streams replay and follow

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 06:20:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "migctl_events",
        sa.Column("id", sa.Integer, nullable=False, autoincrement=True),
        sa.Column("operation_id", sa.Integer, nullable=False),
        sa.Column("database", sa.String(63), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_migctl_events"),
    )
    op.create_index("ix_migctl_events_operation_id_id", "migctl_events", ["operation_id", "id"])
    op.create_index("ix_migctl_events_database_id", "migctl_events", ["database", "id"])


def downgrade() -> None:
    op.drop_table("migctl_events")
