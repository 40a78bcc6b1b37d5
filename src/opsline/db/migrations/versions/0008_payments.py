"""Payments: statements, lines, matching rules, allocations, suspense, refunds (issue 10)

Revision ID: 0008_payments
Revises: 0007_search_web
"""

from __future__ import annotations

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = "0008_payments"
down_revision = "0007_search_web"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
