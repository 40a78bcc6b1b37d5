"""Cases and SLA: lifecycle CHECKs, policy calendars, breach risk (issues 8, 9)

Revision ID: 0004_cases_sla
Revises: 0003_orders_inventory_partners
"""

from __future__ import annotations

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = "0004_cases_sla"
down_revision = "0003_orders_inventory_partners"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
