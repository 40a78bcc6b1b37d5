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

    # Case email goes through the notifications area now (templates, retries, timeline); its outbox goes.
    with op.batch_alter_table("case_email", schema=None) as batch_op:
        batch_op.drop_index("ix_case_email_case_id")
    op.drop_table("case_email")


def downgrade() -> None:
    op.create_table("case_email",
                    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
                    sa.Column("case_id", sa.BigInteger(), nullable=True),
                    sa.Column("account_id", sa.BigInteger(), nullable=True),
                    sa.Column("purpose", sa.String(length=40), nullable=False),
                    sa.Column("to_addr", sa.String(length=200), nullable=False),
                    sa.Column("subject", sa.String(length=300), nullable=False),
                    sa.Column("body", sa.Text(), nullable=False),
                    sa.Column("message_id", sa.String(length=300), nullable=False),
                    sa.Column("state", sa.String(length=10), nullable=False),
                    sa.Column("created_at", opsline.db.base.UTCDateTime(timezone=True), nullable=False),
                    sa.Column("sent_at", opsline.db.base.UTCDateTime(timezone=True), nullable=True),
                    sa.CheckConstraint("state IN ('queued','sent')", name=op.f("ck_case_email_state")),
                    sa.ForeignKeyConstraint(["account_id"], ["account.id"], name=op.f("fk_case_email_account_id_account")),
                    sa.ForeignKeyConstraint(["case_id"], ["support_case.id"], name=op.f("fk_case_email_case_id_support_case")),
                    sa.PrimaryKeyConstraint("id", name=op.f("pk_case_email")),
                    sa.UniqueConstraint("message_id", name=op.f("uq_case_email_message_id")))
    with op.batch_alter_table("case_email", schema=None) as batch_op:
        batch_op.create_index("ix_case_email_case_id", ["case_id"], unique=False)
    with op.batch_alter_table("sla_policy", schema=None) as batch_op:
        batch_op.drop_column("team_hours")
    with op.batch_alter_table("support_case", schema=None) as batch_op:
        batch_op.drop_index("ix_support_case_sla")
        batch_op.drop_constraint("sla_risk", type_="check")
        batch_op.drop_constraint("sla_state", type_="check")
        for col in ("sla_as_of", "sla_risk", "sla_breached_at", "sla_due_at", "sla_state", "contractual_dispute"):
            batch_op.drop_column(col)
