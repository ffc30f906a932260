"""add coupon redemptions

Records which order used which coupon and the discount it granted.  An
order can use at most one coupon, hence the unique constraint on order_id.

Revision ID: 6b0d4e8f17a9
Revises: 2e7f5a90c3b6
Create Date: 2026-02-12 17:30:02.651288

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "6b0d4e8f17a9"
down_revision: str | Sequence[str] | None = "2e7f5a90c3b6"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "coupon_redemptions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "coupon_id",
            sa.Integer(),
            sa.ForeignKey("coupons.id", name="fk_coupon_redemptions_coupon_id_coupons"),
            nullable=False,
        ),
        sa.Column(
            "order_id",
            sa.Integer(),
            sa.ForeignKey("orders.id", name="fk_coupon_redemptions_order_id_orders"),
            nullable=False,
        ),
        sa.Column("discount_cents", sa.Integer(), nullable=False),
        sa.Column(
            "redeemed_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.now(),
        ),
        sa.UniqueConstraint("order_id", name="uq_coupon_redemptions_order_id"),
    )
    op.create_index("ix_coupon_redemptions_coupon_id", "coupon_redemptions", ["coupon_id"])


def downgrade() -> None:
    op.drop_index("ix_coupon_redemptions_coupon_id", table_name="coupon_redemptions")
    op.drop_table("coupon_redemptions")
