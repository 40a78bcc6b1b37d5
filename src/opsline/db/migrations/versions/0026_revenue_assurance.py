"""Revenue assurance, dashboards, report subscriptions (issue 15)

Revision ID: 0026_revenue_assurance
Revises: 0025_customer_data
"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401
import opsline.db.base  # noqa: F401

revision = '0026_revenue_assurance'
down_revision = '0025_customer_data'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass  # reserved: filled in by the work on this area (nothing to do until then)


def downgrade() -> None:
    pass
