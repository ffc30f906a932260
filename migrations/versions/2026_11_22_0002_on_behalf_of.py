"""Record who a bot acted for (X-On-Behalf-Of) beside the actor

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 06:00:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("migctl_operations") as batch:
        batch.add_column(sa.Column("on_behalf_of", sa.String(255)))
    op.add_column("migctl_audit_events", sa.Column("on_behalf_of", sa.String(255)))


def downgrade() -> None:
    with op.batch_alter_table("migctl_operations") as batch:
        batch.drop_column("on_behalf_of")
    if op.get_context().dialect.name == "postgresql":  # the append-only trigger refuses nothing here
        op.drop_column("migctl_audit_events", "on_behalf_of")
    else:
        with op.batch_alter_table("migctl_audit_events") as batch:
            batch.drop_column("on_behalf_of")
