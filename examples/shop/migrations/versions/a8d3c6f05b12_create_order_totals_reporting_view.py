"""create order totals reporting view

First revision of the ``reporting`` branch, developed in parallel with the
coupon feature.  The view gives the reporting tools one row per order with
its line count and total in cents, so they no longer aggregate order lines
themselves.  Plain SQL that both PostgreSQL and SQLite understand.

Revision ID: a8d3c6f05b12
Revises: 4f2c9d81a6e3
Create Date: 2026-02-09 10:05:41.774019

"""

from collections.abc import Sequence

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "a8d3c6f05b12"
down_revision: str | Sequence[str] | None = "4f2c9d81a6e3"
branch_labels: str | Sequence[str] | None = ("reporting",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE VIEW report_order_totals AS
        SELECT o.id AS order_id,
               o.customer_id,
               o.status,
               o.placed_at,
               COUNT(l.id) AS line_count,
               COALESCE(SUM(l.quantity * l.unit_price_cents), 0) AS total_cents
        FROM orders o
        LEFT JOIN order_lines l ON l.order_id = o.id
        GROUP BY o.id, o.customer_id, o.status, o.placed_at
        """
    )


def downgrade() -> None:
    op.execute("DROP VIEW report_order_totals")
