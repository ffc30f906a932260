"""Production safety: the lint of an operation's plan, and the checksum ledger of revision files

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 06:20:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("migctl_operations", sa.Column("lint", sa.JSON))
    op.create_table(
        "migctl_revision_checksums",
        sa.Column("database", sa.String(63), nullable=False),
        sa.Column("revision", sa.String(255), nullable=False),
        sa.Column("path", sa.String(1024), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("operation_id", sa.Integer),
        sa.PrimaryKeyConstraint(
            "database", "revision", name=op.f("pk_migctl_revision_checksums")
        ),
    )


def downgrade() -> None:
    op.drop_table("migctl_revision_checksums")
    with op.batch_alter_table("migctl_operations") as batch:
        batch.drop_column("lint")
