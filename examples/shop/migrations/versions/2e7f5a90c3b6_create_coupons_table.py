"""create coupons table

Discount coupons, either a percentage or a fixed amount in cents.  A coupon
may be limited in time and in the number of redemptions.  This starts the
coupon branch, developed in parallel with the reporting branch.

Revision ID: 2e7f5a90c3b6
Revises: 4f2c9d81a6e3
Create Date: 2026-02-10 08:48:13.093157

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "2e7f5a90c3b6"
down_revision: str | Sequence[str] | None = "4f2c9d81a6e3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "coupons",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("code", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("amount", sa.Integer(), nullable=False),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("valid_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("max_redemptions", sa.Integer(), nullable=True),
        sa.UniqueConstraint("code", name="uq_coupons_code"),
        sa.CheckConstraint("kind IN ('percent', 'fixed')", name="ck_coupons_kind"),
    )


def downgrade() -> None:
    op.drop_table("coupons")
