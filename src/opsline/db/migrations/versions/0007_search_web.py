"""Search indexes (FTS5 / trigram), exact lookups and page indexes (issue 9)

Revision ID: 0007_search_web
Revises: 0006_notifications
"""

from __future__ import annotations

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = "0007_search_web"
down_revision = "0006_notifications"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
