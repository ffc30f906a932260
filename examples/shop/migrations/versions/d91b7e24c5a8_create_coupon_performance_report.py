"""create coupon performance report

Daily aggregate per coupon (redemptions and total discount), filled by the
nightly reporting job.  It references ``coupons``, which lives on the other
branch, so this revision declares ``depends_on`` the coupons revision: an
upgrade of the reporting branch alone pulls that revision in first.

Revision ID: d91b7e24c5a8
Revises: a8d3c6f05b12
Create Date: 2026-02-16 13:12:37.480561

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "d91b7e24c5a8"
down_revision: str | Sequence[str] | None = "a8d3c6f05b12"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = "2e7f5a90c3b6"


def upgrade() -> None:
    op.create_table(
        "report_coupon_performance",
        sa.Column(
            "coupon_id",
            sa.Integer(),
            sa.ForeignKey("coupons.id", name="fk_report_coupon_performance_coupon_id_coupons"),
            primary_key=True,
        ),
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("redemptions", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("discount_cents", sa.Integer(), nullable=False, server_default="0"),
    )


def downgrade() -> None:
    op.drop_table("report_coupon_performance")
