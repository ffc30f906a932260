"""Workers record themselves and renew seen_at, so readiness can tell one is alive

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 02:40:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "migctl_workers",
        sa.Column("id", sa.String(128), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stopped_at", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("id", name="pk_migctl_workers"),
    )
    op.create_index("ix_migctl_workers_seen_at", "migctl_workers", ["seen_at"])


def downgrade() -> None:
    op.drop_index("ix_migctl_workers_seen_at", table_name="migctl_workers")
    op.drop_table("migctl_workers")
