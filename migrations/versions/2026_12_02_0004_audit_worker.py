"""Audit events name the worker apart: `actor` is always who asked

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 04:30:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("migctl_audit_events", sa.Column("worker", sa.String(128)))


def downgrade() -> None:
    with op.batch_alter_table("migctl_audit_events") as batch:
        batch.drop_column("worker")
