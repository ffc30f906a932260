"""merge reporting and coupons

Joins the reporting branch and the coupon branch back into a single line
of history.  No schema change of its own.

Revision ID: 9e5a1c3d7f08
Revises: d91b7e24c5a8, 6b0d4e8f17a9
Create Date: 2026-02-23 09:00:18.226930

"""

from collections.abc import Sequence

# revision identifiers, used by Alembic.
revision: str = "9e5a1c3d7f08"
down_revision: str | Sequence[str] | None = ("d91b7e24c5a8", "6b0d4e8f17a9")
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
