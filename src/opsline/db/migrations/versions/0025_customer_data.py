"""Customer data quality, merges, risk flags (issue 17)

Revision ID: 0025_customer_data
Revises: 0024_portal
"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401
import opsline.db.base  # noqa: F401

revision = '0025_customer_data'
down_revision = '0024_portal'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass  # reserved: filled in by the work on this area (nothing to do until then)


def downgrade() -> None:
    pass
