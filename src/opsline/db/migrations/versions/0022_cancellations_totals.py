"""Cancellations speed (issue 12): running totals

Revision ID: 0022_cancellations_totals
Revises: 0021_cancellation_prevention
"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401
import opsline.db.base  # noqa: F401

revision = '0022_cancellations_totals'
down_revision = '0021_cancellation_prevention'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass  # reserved: filled in by the work on this area (nothing to do until then)


def downgrade() -> None:
    pass
