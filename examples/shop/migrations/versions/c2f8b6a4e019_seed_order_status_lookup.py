"""seed order status lookup

Data migration.  Creates the ``order_statuses`` lookup table and seeds the
canonical statuses with ``op.bulk_insert`` (rendered as INSERT statements
in offline mode).  Status codes already used by existing orders but unknown
to the canonical list are imported as legacy statuses.  Online, the
migration reads them and logs what it imports; offline it cannot read data,
so it emits an equivalent set-based INSERT ... SELECT instead.

Revision ID: c2f8b6a4e019
Revises: 9e5a1c3d7f08
Create Date: 2026-03-02 15:41:09.907165

"""

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

# revision identifiers, used by Alembic.
revision: str = "c2f8b6a4e019"
down_revision: str | Sequence[str] | None = "9e5a1c3d7f08"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("alembic.shop")

CANONICAL_STATUSES = [
    {"code": "pending", "label": "Pending payment", "is_final": False, "sort_order": 10},
    {"code": "paid", "label": "Paid", "is_final": False, "sort_order": 20},
    {"code": "shipped", "label": "Shipped", "is_final": False, "sort_order": 30},
    {"code": "delivered", "label": "Delivered", "is_final": True, "sort_order": 40},
    {"code": "cancelled", "label": "Cancelled", "is_final": True, "sort_order": 50},
    {"code": "refunded", "label": "Refunded", "is_final": True, "sort_order": 60},
]
LEGACY_SORT_ORDER = 900


def upgrade() -> None:
    order_statuses = op.create_table(
        "order_statuses",
        sa.Column("code", sa.String(20), primary_key=True),
        sa.Column("label", sa.String(60), nullable=False),
        sa.Column("is_final", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("sort_order", sa.Integer(), nullable=False),
    )
    op.bulk_insert(order_statuses, CANONICAL_STATUSES)

    if context.is_offline_mode():
        op.execute(
            f"""
            INSERT INTO order_statuses (code, label, is_final, sort_order)
            SELECT DISTINCT o.status, o.status, FALSE, {LEGACY_SORT_ORDER}
            FROM orders o
            WHERE o.status NOT IN (SELECT code FROM order_statuses)
            """
        )
    else:
        known = {row["code"] for row in CANONICAL_STATUSES}
        used = op.get_bind().execute(sa.text("SELECT DISTINCT status FROM orders")).scalars()
        legacy = sorted(set(used) - known)
        if legacy:
            log.info("importing legacy order statuses: %s", ", ".join(legacy))
            op.bulk_insert(
                order_statuses,
                [
                    {
                        "code": code,
                        "label": code,
                        "is_final": False,
                        "sort_order": LEGACY_SORT_ORDER,
                    }
                    for code in legacy
                ],
            )


def downgrade() -> None:
    # orders.status keeps the codes; only the lookup table goes away.
    op.drop_table("order_statuses")
