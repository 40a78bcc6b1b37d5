"""TMF688 event hub listeners and deliveries (issue 14)

Revision ID: 0023_tmf_hub
Revises: 0022_cancellations_totals
"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401
import opsline.db.base  # noqa: F401

revision = '0023_tmf_hub'
down_revision = '0022_cancellations_totals'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass  # reserved: filled in by the work on this area (nothing to do until then)


def downgrade() -> None:
    pass
