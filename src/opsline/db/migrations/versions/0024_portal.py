"""Customer self-service portal (issue 16)

Revision ID: 0024_portal
Revises: 0023_tmf_hub
"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401
import opsline.db.base  # noqa: F401

revision = '0024_portal'
down_revision = '0023_tmf_hub'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass  # reserved: filled in by the work on this area (nothing to do until then)


def downgrade() -> None:
    pass
