"""Cases and SLA (issues 8, 9): the SLA engine's per-case summary on support_case (given to cases through its
service: breached and since when, next deadline, calibrated breach probability), the contractual-dispute flag
(messages to the customer wait for Legal/Brand sign-off), and the policy's "team hours" switch (a queue's calendar
applies only where the policy says so). State CHECKs keep their values; they are now generated from the case and
lead lifecycle declarations.

Revision ID: 0004_cases_sla
Revises: 0003_orders_inventory_partners
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import opsline.db.base

revision = "0004_cases_sla"
down_revision = "0003_orders_inventory_partners"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("support_case", schema=None) as batch_op:
        batch_op.add_column(sa.Column("contractual_dispute", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column("sla_state", sa.String(length=10), nullable=True))
        batch_op.add_column(sa.Column("sla_due_at", opsline.db.base.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("sla_breached_at", opsline.db.base.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("sla_risk", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("sla_as_of", opsline.db.base.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_check_constraint("sla_state", "sla_state IS NULL OR sla_state IN ('ok','at_risk','breached')")
        batch_op.create_check_constraint("sla_risk", "sla_risk IS NULL OR (sla_risk >= 0 AND sla_risk <= 1)")
        batch_op.create_index("ix_support_case_sla", ["sla_state", "priority", "sla_due_at"], unique=False)

    with op.batch_alter_table("sla_policy", schema=None) as batch_op:
        batch_op.add_column(sa.Column("team_hours", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("sla_policy", schema=None) as batch_op:
        batch_op.drop_column("team_hours")
    with op.batch_alter_table("support_case", schema=None) as batch_op:
        batch_op.drop_index("ix_support_case_sla")
        batch_op.drop_constraint("sla_risk", type_="check")
        batch_op.drop_constraint("sla_state", type_="check")
        for col in ("sla_as_of", "sla_risk", "sla_breached_at", "sla_due_at", "sla_state", "contractual_dispute"):
            batch_op.drop_column(col)
