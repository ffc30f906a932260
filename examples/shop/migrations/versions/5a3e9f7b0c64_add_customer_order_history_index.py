"""add customer order history index

The "my orders" page lists a customer's orders newest first and was doing
a sequential scan on orders.  A composite index on (customer_id,
placed_at) serves both the filter and the sort.

Revision ID: 5a3e9f7b0c64
Revises: c2f8b6a4e019
Create Date: 2026-03-09 11:27:50.138847

"""

from collections.abc import Sequence

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "5a3e9f7b0c64"
down_revision: str | Sequence[str] | None = "c2f8b6a4e019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_orders_customer_id_placed_at", "orders", ["customer_id", "placed_at"])


def downgrade() -> None:
    op.drop_index("ix_orders_customer_id_placed_at", table_name="orders")
