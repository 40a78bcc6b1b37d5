"""Cancellations: the cancellation journey, its checklist steps and policies (issue 12)

Revision ID: 0015_cancellations
Revises: 0014_debtors_provision
"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401
import opsline.db.base  # noqa: F401
from sqlalchemy import Text  # noqa: F401  (autogenerate renders JSONB(astext_type=Text()))
from sqlalchemy.dialects import postgresql  # noqa: F401

revision = '0015_cancellations'
down_revision = '0014_debtors_provision'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
