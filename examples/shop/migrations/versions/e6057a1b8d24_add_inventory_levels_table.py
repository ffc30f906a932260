"""add inventory levels table

One row per product with the quantity on hand and the quantity reserved by
open orders.  Products without a row are treated as out of stock.

Revision ID: e6057a1b8d24
Revises: b3d82e5f9c17
Create Date: 2026-01-20 11:45:29.006713

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "e6057a1b8d24"
down_revision: str | Sequence[str] | None = "b3d82e5f9c17"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "inventory_levels",
        sa.Column(
            "product_id",
            sa.Integer(),
            sa.ForeignKey("products.id", name="fk_inventory_levels_product_id_products"),
            primary_key=True,
        ),
        sa.Column("on_hand", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("reserved", sa.Integer(), nullable=False, server_default="0"),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.now(),
        ),
    )


def downgrade() -> None:
    op.drop_table("inventory_levels")
