"""Lifecycles, reactions and billing-edge fields for orders, inventory, partners and catalog (issues 8, 9):
early-termination fee on order items, line suspension orders to partners, partner holiday country, the consumer
"reasonable penalty" cap on contract terms. (State CHECKs keep their values; they are now generated from the
lifecycle declarations.)

Revision ID: 0003_orders_inventory_partners
Revises: 0002_operations
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_orders_inventory_partners"
down_revision = "0002_operations"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("product_order_item", schema=None) as batch_op:
        batch_op.add_column(sa.Column("etf_minor", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("etf_currency", sa.String(length=3), nullable=True))
        batch_op.add_column(sa.Column("etf_tax_rate_code", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("etf_waiver_reason", sa.Text(), nullable=True))

    with op.batch_alter_table("partner", schema=None) as batch_op:
        batch_op.add_column(sa.Column("holiday_country", sa.String(length=2), nullable=True))
    # Installations so far are South African ISPs billing in rand: their partners keep SA public holidays.
    op.execute("UPDATE partner SET holiday_country = 'ZA' WHERE currency = 'ZAR'")

    with op.batch_alter_table("partner_service_order", schema=None) as batch_op:
        batch_op.add_column(sa.Column("service_state", sa.String(length=20), nullable=True))
        batch_op.create_check_constraint("service_state", "service_state IS NULL OR service_state IN ('suspended','active')")

    with op.batch_alter_table("contract_term", schema=None) as batch_op:
        batch_op.add_column(sa.Column("penalty_cap_fraction", sa.Numeric(precision=6, scale=4), nullable=True))
        batch_op.create_check_constraint("penalty_cap_fraction", "penalty_cap_fraction IS NULL OR (penalty_cap_fraction >= 0 AND penalty_cap_fraction <= 1)")
        batch_op.create_check_constraint("penalty_cap_consumers_only", "customer_kind = 'consumer' OR penalty_cap_fraction IS NULL")
    # the seeded consumer policy (an operator edits it in /admin)
    op.execute("UPDATE contract_term SET penalty_cap_fraction = 0.20 WHERE customer_kind = 'consumer' AND months > 0")


def downgrade() -> None:
    with op.batch_alter_table("contract_term", schema=None) as batch_op:
        batch_op.drop_constraint("penalty_cap_consumers_only", type_="check")
        batch_op.drop_constraint("penalty_cap_fraction", type_="check")
        batch_op.drop_column("penalty_cap_fraction")
    with op.batch_alter_table("partner_service_order", schema=None) as batch_op:
        batch_op.drop_constraint("service_state", type_="check")
        batch_op.drop_column("service_state")
    with op.batch_alter_table("partner", schema=None) as batch_op:
        batch_op.drop_column("holiday_country")
    with op.batch_alter_table("product_order_item", schema=None) as batch_op:
        for col in ("etf_waiver_reason", "etf_tax_rate_code", "etf_currency", "etf_minor"):
            batch_op.drop_column(col)
