"""widen product name and add weight

Product names from the new supplier feed exceed 120 characters, so the
column grows to 255.  Shipping costs are now weight based: every product
gets a mandatory weight in grams, 0 until the catalogue team fills it in.
SQLite cannot alter a column type in place, so the change runs in batch
mode (copy and move the table).  ``copy_from`` describes the table as it
is before this revision, which lets the batch run without reflection and
therefore also in offline (--sql) mode.  The downgrade shortens the name
again and fails on PostgreSQL if a longer name has been stored since.

Revision ID: 4f2c9d81a6e3
Revises: e6057a1b8d24
Create Date: 2026-02-02 14:20:55.318402

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "4f2c9d81a6e3"
down_revision: str | Sequence[str] | None = "e6057a1b8d24"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _products(name_length: int, with_weight: bool) -> sa.Table:
    columns = [
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("sku", sa.String(40), nullable=False),
        sa.Column("name", sa.String(name_length), nullable=False),
        sa.Column("price_cents", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.true()),
    ]
    if with_weight:
        columns.append(sa.Column("weight_grams", sa.Integer(), nullable=False, server_default="0"))
    return sa.Table(
        "products",
        sa.MetaData(),
        *columns,
        sa.UniqueConstraint("sku", name="uq_products_sku"),
    )


def upgrade() -> None:
    with op.batch_alter_table("products", copy_from=_products(120, with_weight=False)) as batch:
        batch.alter_column(
            "name", existing_type=sa.String(120), type_=sa.String(255), existing_nullable=False
        )
        batch.add_column(
            sa.Column("weight_grams", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("products", copy_from=_products(255, with_weight=True)) as batch:
        batch.drop_column("weight_grams")
        batch.alter_column(
            "name", existing_type=sa.String(255), type_=sa.String(120), existing_nullable=False
        )
