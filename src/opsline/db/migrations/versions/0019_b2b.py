"""B2B service management: contracts with SLA rules, violations, service credits, monthly reviews, improvement plans, change requests, reconciliations (issue 15)

Revision ID: 0019_b2b
Revises: 0018_security
"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401
import opsline.db.base  # noqa: F401
from sqlalchemy import Text  # noqa: F401  (autogenerate renders JSONB(astext_type=Text()))
from sqlalchemy.dialects import postgresql  # noqa: F401

revision = '0019_b2b'
down_revision = '0018_security'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
