"""Debtors: IFRS 9 bad-debt provision, month-end ageing snapshots and forward-looking adjustments (issue 11 item 6)

Revision ID: 0014_debtors_provision
Revises: 0013_debtors_agencies
"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401
import opsline.db.base  # noqa: F401
from sqlalchemy import Text  # noqa: F401  (autogenerate renders JSONB(astext_type=Text()))
from sqlalchemy.dialects import postgresql  # noqa: F401

revision = '0014_debtors_provision'
down_revision = '0013_debtors_agencies'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
