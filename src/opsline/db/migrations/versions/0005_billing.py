"""Billing: lifecycle CHECKs, ledger, tax ownership, end-of-service credits, review explanations (issues 8, 9)

Revision ID: 0005_billing
Revises: 0004_cases_sla
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_billing"
down_revision = "0004_cases_sla"
branch_labels = None
depends_on = None

INVOICE_STATES = ("draft", "new", "onHold", "validated", "sent", "partiallyPaid", "paid")
OLD_INVOICE_STATES = ("draft", "new", "onHold", "validated", "sent", "partiallyPaid", "settled")
CLAIM_STATES = ("submitted", "inReview", "upheld", "partiallyUpheld", "rejected", "withdrawn")


def _in(values: tuple[str, ...]) -> str:
    return "state IN (" + ", ".join(f"'{v}'" for v in values) + ")"


def upgrade() -> None:
    # the invoice lifecycle (billing.models.INVOICE): payments settle to 'paid' (TMF678 shows it as 'settled')
    with op.batch_alter_table("invoice") as b:
        b.drop_constraint(op.f("ck_invoice_state"), type_="check")
    op.execute("UPDATE invoice SET state = 'paid' WHERE state = 'settled'")
    with op.batch_alter_table("invoice") as b:
        b.create_check_constraint("state", _in(INVOICE_STATES))
    with op.batch_alter_table("billing_claim") as b:
        b.drop_constraint(op.f("ck_billing_claim_state"), type_="check")
        b.create_check_constraint("state", _in(CLAIM_STATES))
    with op.batch_alter_table("credit_note") as b:
        b.drop_constraint(op.f("ck_credit_note_state"), type_="check")
        b.create_check_constraint("state", _in(("issued",)))
    with op.batch_alter_table("invoice_line") as b:
        b.create_index("ix_invoice_line_product", ["product_id"], unique=False)
    with op.batch_alter_table("bill_run") as b:
        b.add_column(sa.Column("flagged_count", sa.Integer(), nullable=True))
    op.create_index("ix_discount_account", "discount", ["account_id"], unique=False)
    op.create_index("ix_discount_offering", "discount", ["offering_id"], unique=False)
    op.create_table(
        "billing_suspension",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("account_id", sa.BigInteger(), sa.ForeignKey("account.id", name=op.f("fk_billing_suspension_account_id_account")), nullable=False),
        sa.Column("suspended_on", sa.Date(), nullable=False),
        sa.Column("resumed_on", sa.Date(), nullable=True),
        sa.Column("suspended_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resumed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("resumed_on IS NULL OR resumed_on >= suspended_on", name=op.f("ck_billing_suspension_dates")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_billing_suspension")),
    )
    op.create_index("ix_billing_suspension_account", "billing_suspension", ["account_id", "suspended_on"], unique=False)
    op.create_table(
        "relocation_overlap",
        sa.Column("partner_code", sa.String(length=40), nullable=False),
        sa.Column("overlap_days", sa.Integer(), nullable=False),
        sa.Column("description", sa.String(length=200), nullable=False),
        sa.CheckConstraint("overlap_days BETWEEN 0 AND 31", name=op.f("ck_relocation_overlap_overlap_days")),
        sa.PrimaryKeyConstraint("partner_code", name=op.f("pk_relocation_overlap")),
    )


def downgrade() -> None:
    op.drop_table("relocation_overlap")
    op.drop_index("ix_billing_suspension_account", table_name="billing_suspension")
    op.drop_table("billing_suspension")
    op.drop_index("ix_discount_offering", table_name="discount")
    op.drop_index("ix_discount_account", table_name="discount")
    with op.batch_alter_table("bill_run") as b:
        b.drop_column("flagged_count")
    with op.batch_alter_table("invoice_line") as b:
        b.drop_index("ix_invoice_line_product")
    with op.batch_alter_table("invoice") as b:
        b.drop_constraint(op.f("ck_invoice_state"), type_="check")
    op.execute("UPDATE invoice SET state = 'settled' WHERE state = 'paid'")
    with op.batch_alter_table("invoice") as b:
        b.create_check_constraint("state", _in(OLD_INVOICE_STATES))
