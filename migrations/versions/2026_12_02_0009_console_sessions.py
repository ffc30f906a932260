"""Console sessions: a token exchanged once for a server-side session

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 06:20:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "migctl_console_sessions",
        sa.Column("id_hash", sa.String(64), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id_hash", name="pk_migctl_console_sessions"),
    )
    op.create_index(
        "ix_migctl_console_sessions_expires_at", "migctl_console_sessions", ["expires_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_migctl_console_sessions_expires_at", table_name="migctl_console_sessions")
    op.drop_table("migctl_console_sessions")
