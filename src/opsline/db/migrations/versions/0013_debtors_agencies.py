"""Debtors: hand-over of debt to collection agencies, recalls and recovery files (issue 11 item 5)

Revision ID: 0013_debtors_agencies
Revises: 0012_debtors_writeoffs
"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401
import opsline.db.base  # noqa: F401
from sqlalchemy import Text  # noqa: F401  (autogenerate renders JSONB(astext_type=Text()))
from sqlalchemy.dialects import postgresql  # noqa: F401

revision = '0013_debtors_agencies'
down_revision = '0012_debtors_writeoffs'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
