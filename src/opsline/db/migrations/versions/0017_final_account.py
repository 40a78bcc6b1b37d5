"""Billing: final accounts (early-termination and unreturned-equipment charges, final invoice or credit) (issue 12 item 6)

Revision ID: 0017_final_account
Revises: 0016_logistics
"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401
import opsline.db.base  # noqa: F401
from sqlalchemy import Text  # noqa: F401  (autogenerate renders JSONB(astext_type=Text()))
from sqlalchemy.dialects import postgresql  # noqa: F401

revision = '0017_final_account'
down_revision = '0016_logistics'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('final_account',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('account_id', sa.BigInteger(), nullable=False),
    sa.Column('idempotency_key', sa.String(length=200), nullable=False),
    sa.Column('end_date', sa.Date(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('subtotal_minor', sa.BigInteger(), nullable=False),
    sa.Column('tax_minor', sa.BigInteger(), nullable=False),
    sa.Column('total_minor', sa.BigInteger(), nullable=False),
    sa.Column('invoice_id', sa.BigInteger(), nullable=True),
    sa.Column('credit_note_id', sa.BigInteger(), nullable=True),
    sa.Column('refund_id', sa.BigInteger(), nullable=True),
    sa.Column('refund_note', sa.Text(), nullable=True),
    sa.Column('etf_waiver_reason', sa.Text(), nullable=True),
    sa.Column('created_at', opsline.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=120), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], name=op.f('fk_final_account_account_id_account')),
    sa.ForeignKeyConstraint(['credit_note_id'], ['credit_note.id'], name=op.f('fk_final_account_credit_note_id_credit_note')),
    sa.ForeignKeyConstraint(['invoice_id'], ['invoice.id'], name=op.f('fk_final_account_invoice_id_invoice')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_final_account')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_final_account_idempotency_key'))
    )
    with op.batch_alter_table('final_account', schema=None) as batch_op:
        batch_op.create_index('ix_final_account_account', ['account_id', 'id'], unique=False)

    op.create_table('final_account_product',
    sa.Column('product_id', sa.BigInteger(), nullable=False),
    sa.Column('final_account_id', sa.BigInteger(), nullable=False),
    sa.Column('account_id', sa.BigInteger(), nullable=False),
    sa.Column('end_date', sa.Date(), nullable=False),
    sa.ForeignKeyConstraint(['final_account_id'], ['final_account.id'], name=op.f('fk_final_account_product_final_account_id_final_account')),
    sa.ForeignKeyConstraint(['product_id'], ['product.id'], name=op.f('fk_final_account_product_product_id_product')),
    sa.PrimaryKeyConstraint('product_id', name=op.f('pk_final_account_product'))
    )
    with op.batch_alter_table('final_account_product', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_final_account_product_final_account_id'), ['final_account_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('final_account_product', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_final_account_product_final_account_id'))
    op.drop_table('final_account_product')
    with op.batch_alter_table('final_account', schema=None) as batch_op:
        batch_op.drop_index('ix_final_account_account')
    op.drop_table('final_account')
