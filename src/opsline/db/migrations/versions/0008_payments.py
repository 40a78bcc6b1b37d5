"""Payments: statements, lines, matching rules, allocations, suspense, refunds (issue 10)

Revision ID: 0008_payments
Revises: 0007_search_web
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from opsline.db.base import UTCDateTime

revision = "0008_payments"
down_revision = "0007_search_web"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('payment_csv_mapping',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=60), nullable=False),
    sa.Column('bank', sa.String(length=80), nullable=False),
    sa.Column('encoding', sa.String(length=30), nullable=False),
    sa.Column('delimiter', sa.String(length=1), nullable=False),
    sa.Column('date_format', sa.String(length=30), nullable=False),
    sa.Column('decimal_comma', sa.Boolean(), nullable=False),
    sa.Column('header_rows', sa.Integer(), nullable=False),
    sa.Column('footer_rows', sa.Integer(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('bank_account', sa.String(length=40), nullable=False),
    sa.Column('columns', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('created_at', UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint('header_rows >= 0 AND footer_rows >= 0', name=op.f('ck_payment_csv_mapping_rows')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payment_csv_mapping')),
    sa.UniqueConstraint('name', name=op.f('uq_payment_csv_mapping_name'))
    )
    op.create_table('payment_matching_rule',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('code', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('kind', sa.String(length=30), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('confidence', sa.Integer(), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('params', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.CheckConstraint("kind IN ('invoice_ref','account_ref','account_ref_check_digit','payer_account','amount_date','payer_name')", name=op.f('ck_payment_matching_rule_kind')),
    sa.CheckConstraint('confidence BETWEEN 0 AND 100', name=op.f('ck_payment_matching_rule_confidence')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payment_matching_rule')),
    sa.UniqueConstraint('code', name=op.f('uq_payment_matching_rule_code'))
    )
    op.create_table('payment_setting',
    sa.Column('key', sa.String(length=60), nullable=False),
    sa.Column('value', sa.String(length=200), nullable=False),
    sa.Column('value_type', sa.String(length=10), nullable=False),
    sa.Column('description', sa.String(length=300), nullable=False),
    sa.CheckConstraint("value_type IN ('str','int','decimal','bool')", name=op.f('ck_payment_setting_value_type')),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_payment_setting'))
    )
    op.create_table('payment_unpaid_reason',
    sa.Column('code', sa.String(length=10), nullable=False),
    sa.Column('description', sa.String(length=200), nullable=False),
    sa.Column('charge_fee', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('code', name=op.f('pk_payment_unpaid_reason'))
    )
    op.create_table('statement_file',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('filename', sa.String(length=200), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('format', sa.String(length=20), nullable=False),
    sa.Column('bank', sa.String(length=80), nullable=False),
    sa.Column('bank_account', sa.String(length=40), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('mapping_name', sa.String(length=60), nullable=True),
    sa.Column('statement_date', sa.Date(), nullable=True),
    sa.Column('opening_minor', sa.BigInteger(), nullable=True),
    sa.Column('closing_minor', sa.BigInteger(), nullable=True),
    sa.Column('lines_count', sa.Integer(), nullable=False),
    sa.Column('new_lines_count', sa.Integer(), nullable=False),
    sa.Column('matched_count', sa.Integer(), nullable=False),
    sa.Column('proposed_count', sa.Integer(), nullable=False),
    sa.Column('suspense_count', sa.Integer(), nullable=False),
    sa.Column('imported_at', UTCDateTime(timezone=True), nullable=False),
    sa.Column('imported_by', sa.String(length=120), nullable=False),
    sa.CheckConstraint("format IN ('csv','mt940','camt053','debit_result')", name=op.f('ck_statement_file_format')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_statement_file')),
    sa.UniqueConstraint('sha256', name=op.f('uq_statement_file_sha256'))
    )
    op.create_table('statement_line',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('statement_file_id', sa.BigInteger(), nullable=False),
    sa.Column('line_no', sa.Integer(), nullable=False),
    sa.Column('bank_account', sa.String(length=40), nullable=False),
    sa.Column('bank_reference', sa.String(length=80), nullable=False),
    sa.Column('value_date', sa.Date(), nullable=False),
    sa.Column('amount_minor', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('payer_name', sa.String(length=200), nullable=False),
    sa.Column('payer_account', sa.String(length=40), nullable=False),
    sa.Column('reference', sa.String(length=300), nullable=False),
    sa.ForeignKeyConstraint(['statement_file_id'], ['statement_file.id'], name=op.f('fk_statement_line_statement_file_id_statement_file')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_statement_line')),
    sa.UniqueConstraint('bank_account', 'bank_reference', 'value_date', 'amount_minor', name='uq_statement_line_bank_txn')
    )
    with op.batch_alter_table('statement_line', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_statement_line_statement_file_id'), ['statement_file_id'], unique=False)

    op.create_table('payment',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('account_id', sa.BigInteger(), nullable=True),
    sa.Column('statement_line_id', sa.BigInteger(), nullable=True),
    sa.Column('external_id', sa.String(length=120), nullable=True),
    sa.Column('source', sa.String(length=20), nullable=False),
    sa.Column('method', sa.String(length=20), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('amount_minor', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('received_on', sa.Date(), nullable=False),
    sa.Column('payer_name', sa.String(length=200), nullable=False),
    sa.Column('payer_account', sa.String(length=40), nullable=False),
    sa.Column('reference', sa.String(length=300), nullable=False),
    sa.Column('named_invoice_id', sa.BigInteger(), nullable=True),
    sa.Column('created_at', UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=120), nullable=False),
    sa.CheckConstraint("method IN ('eft','debit_order','cash','card')", name=op.f('ck_payment_method')),
    sa.CheckConstraint("source IN ('statement','debit_order','api','staff')", name=op.f('ck_payment_source')),
    sa.CheckConstraint("state IN ('received', 'proposed', 'allocated', 'suspense', 'refunded', 'returned')", name=op.f('ck_payment_state')),
    sa.CheckConstraint('amount_minor > 0', name=op.f('ck_payment_amount_positive')),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], name=op.f('fk_payment_account_id_account')),
    sa.ForeignKeyConstraint(['statement_line_id'], ['statement_line.id'], name=op.f('fk_payment_statement_line_id_statement_line')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payment')),
    sa.UniqueConstraint('external_id', name=op.f('uq_payment_external_id')),
    sa.UniqueConstraint('statement_line_id', name=op.f('uq_payment_statement_line_id'))
    )
    with op.batch_alter_table('payment', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_payment_account_id'), ['account_id'], unique=False)
        batch_op.create_index('ix_payment_payer_account', ['payer_account'], unique=False)
        batch_op.create_index('ix_payment_state', ['state', 'received_on'], unique=False)

    op.create_table('payment_known_payer',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('payer_account', sa.String(length=40), nullable=False),
    sa.Column('account_id', sa.BigInteger(), nullable=False),
    sa.Column('first_seen_on', sa.Date(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], name=op.f('fk_payment_known_payer_account_id_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payment_known_payer')),
    sa.UniqueConstraint('payer_account', 'account_id', name=op.f('uq_payment_known_payer_payer_account_account_id'))
    )
    with op.batch_alter_table('payment_known_payer', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_payment_known_payer_account_id'), ['account_id'], unique=False)

    op.create_table('debit_order_result',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('statement_file_id', sa.BigInteger(), nullable=False),
    sa.Column('line_no', sa.Integer(), nullable=False),
    sa.Column('collection_ref', sa.String(length=80), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('account_id', sa.BigInteger(), nullable=False),
    sa.Column('invoice_id', sa.BigInteger(), nullable=True),
    sa.Column('amount_minor', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('action_date', sa.Date(), nullable=False),
    sa.Column('reason_code', sa.String(length=10), nullable=True),
    sa.Column('payment_id', sa.BigInteger(), nullable=True),
    sa.Column('fee_charge_id', sa.BigInteger(), nullable=True),
    sa.CheckConstraint("status IN ('paid','unpaid')", name=op.f('ck_debit_order_result_status')),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], name=op.f('fk_debit_order_result_account_id_account')),
    sa.ForeignKeyConstraint(['payment_id'], ['payment.id'], name=op.f('fk_debit_order_result_payment_id_payment')),
    sa.ForeignKeyConstraint(['statement_file_id'], ['statement_file.id'], name=op.f('fk_debit_order_result_statement_file_id_statement_file')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_debit_order_result')),
    sa.UniqueConstraint('collection_ref', 'status', name=op.f('uq_debit_order_result_collection_ref_status'))
    )
    with op.batch_alter_table('debit_order_result', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_debit_order_result_statement_file_id'), ['statement_file_id'], unique=False)

    op.create_table('payment_allocation',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('payment_id', sa.BigInteger(), nullable=False),
    sa.Column('account_id', sa.BigInteger(), nullable=False),
    sa.Column('invoice_id', sa.BigInteger(), nullable=True),
    sa.Column('amount_minor', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('rule_code', sa.String(length=40), nullable=False),
    sa.Column('score', sa.Integer(), nullable=False),
    sa.Column('evidence', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('created_at', UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=120), nullable=False),
    sa.Column('decided_at', UTCDateTime(timezone=True), nullable=True),
    sa.Column('decided_by', sa.String(length=120), nullable=True),
    sa.Column('reversed_at', UTCDateTime(timezone=True), nullable=True),
    sa.Column('reversal_reason', sa.Text(), nullable=True),
    sa.CheckConstraint("state IN ('proposed', 'allocated', 'rejected', 'reversed')", name=op.f('ck_payment_allocation_state')),
    sa.CheckConstraint('amount_minor > 0', name=op.f('ck_payment_allocation_amount_positive')),
    sa.CheckConstraint('score BETWEEN 0 AND 100', name=op.f('ck_payment_allocation_score')),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], name=op.f('fk_payment_allocation_account_id_account')),
    sa.ForeignKeyConstraint(['invoice_id'], ['invoice.id'], name=op.f('fk_payment_allocation_invoice_id_invoice')),
    sa.ForeignKeyConstraint(['payment_id'], ['payment.id'], name=op.f('fk_payment_allocation_payment_id_payment')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payment_allocation'))
    )
    with op.batch_alter_table('payment_allocation', schema=None) as batch_op:
        batch_op.create_index('ix_payment_allocation_account', ['account_id', 'state'], unique=False)
        batch_op.create_index('ix_payment_allocation_invoice', ['invoice_id', 'state'], unique=False)
        batch_op.create_index(batch_op.f('ix_payment_allocation_payment_id'), ['payment_id'], unique=False)
        batch_op.create_index('ix_payment_allocation_state', ['state', 'created_at'], unique=False)

    op.create_table('suspense_item',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('payment_id', sa.BigInteger(), nullable=False),
    sa.Column('amount_minor', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('owner', sa.String(length=120), nullable=True),
    sa.Column('opened_at', UTCDateTime(timezone=True), nullable=False),
    sa.Column('opened_reason', sa.String(length=300), nullable=False),
    sa.Column('closed_at', UTCDateTime(timezone=True), nullable=True),
    sa.Column('closed_by', sa.String(length=120), nullable=True),
    sa.Column('outcome', sa.String(length=20), nullable=True),
    sa.Column('close_reason', sa.Text(), nullable=True),
    sa.CheckConstraint("outcome IS NULL OR outcome IN ('allocated','refunded')", name=op.f('ck_suspense_item_outcome')),
    sa.ForeignKeyConstraint(['payment_id'], ['payment.id'], name=op.f('fk_suspense_item_payment_id_payment')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_suspense_item'))
    )
    with op.batch_alter_table('suspense_item', schema=None) as batch_op:
        batch_op.create_index('ix_suspense_item_open', ['closed_at', 'opened_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_suspense_item_payment_id'), ['payment_id'], unique=False)

    op.create_table('payment_refund',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('account_id', sa.BigInteger(), nullable=True),
    sa.Column('payment_id', sa.BigInteger(), nullable=True),
    sa.Column('suspense_item_id', sa.BigInteger(), nullable=True),
    sa.Column('amount_minor', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('payee_name', sa.String(length=200), nullable=False),
    sa.Column('payee_account', sa.String(length=40), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('requested_at', UTCDateTime(timezone=True), nullable=False),
    sa.Column('requested_by', sa.String(length=120), nullable=False),
    sa.Column('decided_at', UTCDateTime(timezone=True), nullable=True),
    sa.Column('decided_by', sa.String(length=120), nullable=True),
    sa.Column('idempotency_key', sa.String(length=200), nullable=True),
    sa.CheckConstraint("state IN ('requested', 'approved', 'rejected')", name=op.f('ck_payment_refund_state')),
    sa.CheckConstraint('account_id IS NOT NULL OR payment_id IS NOT NULL', name=op.f('ck_payment_refund_target')),
    sa.CheckConstraint('amount_minor > 0', name=op.f('ck_payment_refund_amount_positive')),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], name=op.f('fk_payment_refund_account_id_account')),
    sa.ForeignKeyConstraint(['payment_id'], ['payment.id'], name=op.f('fk_payment_refund_payment_id_payment')),
    sa.ForeignKeyConstraint(['suspense_item_id'], ['suspense_item.id'], name=op.f('fk_payment_refund_suspense_item_id_suspense_item')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payment_refund')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_payment_refund_idempotency_key'))
    )
    with op.batch_alter_table('payment_refund', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_payment_refund_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_payment_refund_payment_id'), ['payment_id'], unique=False)


def downgrade() -> None:

    with op.batch_alter_table('payment_refund', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_payment_refund_payment_id'))
        batch_op.drop_index(batch_op.f('ix_payment_refund_account_id'))

    op.drop_table('payment_refund')
    with op.batch_alter_table('suspense_item', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_suspense_item_payment_id'))
        batch_op.drop_index('ix_suspense_item_open')

    op.drop_table('suspense_item')
    with op.batch_alter_table('payment_allocation', schema=None) as batch_op:
        batch_op.drop_index('ix_payment_allocation_state')
        batch_op.drop_index(batch_op.f('ix_payment_allocation_payment_id'))
        batch_op.drop_index('ix_payment_allocation_invoice')
        batch_op.drop_index('ix_payment_allocation_account')

    op.drop_table('payment_allocation')
    with op.batch_alter_table('debit_order_result', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_debit_order_result_statement_file_id'))

    op.drop_table('debit_order_result')
    with op.batch_alter_table('payment_known_payer', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_payment_known_payer_account_id'))

    op.drop_table('payment_known_payer')
    with op.batch_alter_table('payment', schema=None) as batch_op:
        batch_op.drop_index('ix_payment_state')
        batch_op.drop_index('ix_payment_payer_account')
        batch_op.drop_index(batch_op.f('ix_payment_account_id'))

    op.drop_table('payment')
    with op.batch_alter_table('statement_line', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_statement_line_statement_file_id'))

    op.drop_table('statement_line')
    op.drop_table('statement_file')
    op.drop_table('payment_unpaid_reason')
    op.drop_table('payment_setting')
    op.drop_table('payment_matching_rule')
    op.drop_table('payment_csv_mapping')
