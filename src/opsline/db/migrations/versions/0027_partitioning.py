"""Monthly partitioning on PostgreSQL (issue 13)

Revision ID: 0027_partitioning
Revises: 0026_revenue_assurance
"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401
import opsline.db.base  # noqa: F401

revision = '0027_partitioning'
down_revision = '0026_revenue_assurance'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass  # reserved: filled in by the work on this area (nothing to do until then)


def downgrade() -> None:
    pass
