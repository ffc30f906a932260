"""create products table

The product catalogue.  Prices are stored as integer cents to avoid
floating point rounding; inactive products stay in the table so that old
orders keep pointing at them.

Revision ID: 7a41f0c3e962
Revises: 1c9e4b7a2d30
Create Date: 2026-01-12 09:31:47.220391

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "7a41f0c3e962"
down_revision: str | Sequence[str] | None = "1c9e4b7a2d30"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "products",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("sku", sa.String(40), nullable=False),
        sa.Column("name", sa.String(120), nullable=False),
        sa.Column("price_cents", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.UniqueConstraint("sku", name="uq_products_sku"),
    )


def downgrade() -> None:
    op.drop_table("products")
