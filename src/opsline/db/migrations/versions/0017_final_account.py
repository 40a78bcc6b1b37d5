"""Billing: final accounts (early-termination and unreturned-equipment charges, final invoice or credit) (issue 12 item 6)

Revision ID: 0017_final_account
Revises: 0016_logistics
"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401
import opsline.db.base  # noqa: F401
from sqlalchemy import Text  # noqa: F401  (autogenerate renders JSONB(astext_type=Text()))
from sqlalchemy.dialects import postgresql  # noqa: F401

revision = '0017_final_account'
down_revision = '0016_logistics'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
