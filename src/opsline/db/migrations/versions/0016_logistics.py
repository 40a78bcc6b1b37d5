"""Logistics: courier collections of equipment, attempts and warehouse receipts (issue 12 item 5)

Revision ID: 0016_logistics
Revises: 0015_cancellations
"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401
import opsline.db.base  # noqa: F401
from sqlalchemy import Text  # noqa: F401  (autogenerate renders JSONB(astext_type=Text()))
from sqlalchemy.dialects import postgresql  # noqa: F401

revision = '0016_logistics'
down_revision = '0015_cancellations'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
