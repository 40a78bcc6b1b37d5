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
    op.create_table('b2b_setting',
    sa.Column('key', sa.String(length=60), nullable=False),
    sa.Column('value', sa.String(length=300), nullable=False),
    sa.Column('description', sa.String(length=300), nullable=True),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_b2b_setting'))
    )
    op.create_table('b2b_contract',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('account_id', sa.BigInteger(), nullable=False),
    sa.Column('reference', sa.String(length=30), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('state', sa.String(length=10), nullable=False),
    sa.Column('valid_from', sa.Date(), nullable=False),
    sa.Column('valid_to', sa.Date(), nullable=True),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('monthly_value_minor', sa.BigInteger(), nullable=False),
    sa.Column('credit_cap_minor', sa.BigInteger(), nullable=False),
    sa.Column('terms', sa.Text(), nullable=True),
    sa.Column('created_at', opsline.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=120), nullable=False),
    sa.CheckConstraint("state IN ('active', 'ended')", name=op.f('ck_b2b_contract_state')),
    sa.CheckConstraint('credit_cap_minor >= 0', name=op.f('ck_b2b_contract_credit_cap')),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], name=op.f('fk_b2b_contract_account_id_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_b2b_contract')),
    sa.UniqueConstraint('reference', name=op.f('uq_b2b_contract_reference'))
    )
    with op.batch_alter_table('b2b_contract', schema=None) as batch_op:
        batch_op.create_index('ix_b2b_contract_account', ['account_id'], unique=False)

    op.create_table('b2b_improvement_action',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('account_id', sa.BigInteger(), nullable=False),
    sa.Column('title', sa.String(length=300), nullable=False),
    sa.Column('owner', sa.String(length=120), nullable=False),
    sa.Column('due_date', sa.Date(), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('opened_period', sa.Date(), nullable=False),
    sa.Column('closed_period', sa.Date(), nullable=True),
    sa.Column('created_at', opsline.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=120), nullable=False),
    sa.Column('updated_at', opsline.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('open','in_progress','done','cancelled')", name=op.f('ck_b2b_improvement_action_status')),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], name=op.f('fk_b2b_improvement_action_account_id_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_b2b_improvement_action'))
    )
    with op.batch_alter_table('b2b_improvement_action', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_b2b_improvement_action_account_id'), ['account_id'], unique=False)

    op.create_table('b2b_bill_check',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('bill_run_id', sa.BigInteger(), nullable=False),
    sa.Column('invoice_id', sa.BigInteger(), nullable=False),
    sa.Column('account_id', sa.BigInteger(), nullable=False),
    sa.Column('contract_id', sa.BigInteger(), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('expected_minor', sa.BigInteger(), nullable=False),
    sa.Column('actual_minor', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('state', sa.String(length=12), nullable=False),
    sa.Column('signed_by', sa.String(length=120), nullable=True),
    sa.Column('signed_at', opsline.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('created_at', opsline.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("kind IN ('vs_contract','vs_last_month','credit_missing')", name=op.f('ck_b2b_bill_check_kind')),
    sa.CheckConstraint("state IN ('open','signed_off')", name=op.f('ck_b2b_bill_check_state')),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], name=op.f('fk_b2b_bill_check_account_id_account')),
    sa.ForeignKeyConstraint(['bill_run_id'], ['bill_run.id'], name=op.f('fk_b2b_bill_check_bill_run_id_bill_run')),
    sa.ForeignKeyConstraint(['contract_id'], ['b2b_contract.id'], name=op.f('fk_b2b_bill_check_contract_id_b2b_contract')),
    sa.ForeignKeyConstraint(['invoice_id'], ['invoice.id'], name=op.f('fk_b2b_bill_check_invoice_id_invoice')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_b2b_bill_check')),
    sa.UniqueConstraint('bill_run_id', 'invoice_id', 'kind', name='uq_b2b_bill_check_run_invoice_kind')
    )
    with op.batch_alter_table('b2b_bill_check', schema=None) as batch_op:
        batch_op.create_index('ix_b2b_bill_check_run_state', ['bill_run_id', 'state'], unique=False)

    op.create_table('b2b_review',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('account_id', sa.BigInteger(), nullable=False),
    sa.Column('contract_id', sa.BigInteger(), nullable=False),
    sa.Column('period', sa.Date(), nullable=False),
    sa.Column('state', sa.String(length=10), nullable=False),
    sa.Column('generated_at', opsline.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('generated_by', sa.String(length=120), nullable=False),
    sa.Column('released_at', opsline.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('released_by', sa.String(length=120), nullable=True),
    sa.Column('messages_sent', sa.Integer(), nullable=False),
    sa.CheckConstraint("state IN ('draft', 'released')", name=op.f('ck_b2b_review_state')),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], name=op.f('fk_b2b_review_account_id_account')),
    sa.ForeignKeyConstraint(['contract_id'], ['b2b_contract.id'], name=op.f('fk_b2b_review_contract_id_b2b_contract')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_b2b_review')),
    sa.UniqueConstraint('account_id', 'period', name='uq_b2b_review_account_period')
    )
    with op.batch_alter_table('b2b_review', schema=None) as batch_op:
        batch_op.create_index('ix_b2b_review_state_period', ['state', 'period'], unique=False)

    op.create_table('b2b_sla_rule',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('contract_id', sa.BigInteger(), nullable=False),
    sa.Column('account_id', sa.BigInteger(), nullable=False),
    sa.Column('metric', sa.String(length=40), nullable=False),
    sa.Column('unit', sa.String(length=10), nullable=False),
    sa.Column('reference_value', sa.Numeric(precision=12, scale=4), nullable=False),
    sa.Column('operator', sa.String(length=2), nullable=False),
    sa.Column('tolerance', sa.Numeric(precision=12, scale=4), nullable=False),
    sa.Column('consequence', sa.String(length=20), nullable=False),
    sa.Column('credit_percent', sa.Numeric(precision=6, scale=2), nullable=True),
    sa.Column('credit_fixed_minor', sa.BigInteger(), nullable=True),
    sa.Column('description', sa.String(length=300), nullable=True),
    sa.CheckConstraint("consequence IN ('none','credit_percent','credit_fixed')", name=op.f('ck_b2b_sla_rule_consequence')),
    sa.CheckConstraint("metric IN ('availability','mttr','first_response_compliance','resolution_compliance','order_on_time','invoice_accuracy','claims_resolved_on_time')", name=op.f('ck_b2b_sla_rule_metric')),
    sa.CheckConstraint("operator IN ('>=','<=','>','<')", name=op.f('ck_b2b_sla_rule_operator')),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], name=op.f('fk_b2b_sla_rule_account_id_account')),
    sa.ForeignKeyConstraint(['contract_id'], ['b2b_contract.id'], name=op.f('fk_b2b_sla_rule_contract_id_b2b_contract')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_b2b_sla_rule'))
    )
    with op.batch_alter_table('b2b_sla_rule', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_b2b_sla_rule_contract_id'), ['contract_id'], unique=False)

    op.create_table('b2b_change_request',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('contract_id', sa.BigInteger(), nullable=False),
    sa.Column('account_id', sa.BigInteger(), nullable=False),
    sa.Column('reference', sa.String(length=20), nullable=False),
    sa.Column('title', sa.String(length=300), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('scope', sa.String(length=12), nullable=False),
    sa.Column('impact', sa.Text(), nullable=False),
    sa.Column('price_minor', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('state', sa.String(length=12), nullable=False),
    sa.Column('quote_id', sa.BigInteger(), nullable=True),
    sa.Column('order_id', sa.BigInteger(), nullable=True),
    sa.Column('created_at', opsline.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=120), nullable=False),
    sa.Column('decided_by', sa.String(length=120), nullable=True),
    sa.Column('delivered_at', opsline.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.CheckConstraint("scope = 'out_of_scope' OR price_minor = 0", name=op.f('ck_b2b_change_request_in_scope_free')),
    sa.CheckConstraint("scope IN ('in_scope','out_of_scope')", name=op.f('ck_b2b_change_request_scope')),
    sa.CheckConstraint("state IN ('submitted', 'approved', 'quoted', 'in_delivery', 'delivered', 'rejected', 'withdrawn')", name=op.f('ck_b2b_change_request_state')),
    sa.CheckConstraint('price_minor >= 0', name=op.f('ck_b2b_change_request_price_non_negative')),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], name=op.f('fk_b2b_change_request_account_id_account')),
    sa.ForeignKeyConstraint(['contract_id'], ['b2b_contract.id'], name=op.f('fk_b2b_change_request_contract_id_b2b_contract')),
    sa.ForeignKeyConstraint(['order_id'], ['product_order.id'], name=op.f('fk_b2b_change_request_order_id_product_order')),
    sa.ForeignKeyConstraint(['quote_id'], ['quote.id'], name=op.f('fk_b2b_change_request_quote_id_quote')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_b2b_change_request')),
    sa.UniqueConstraint('reference', name=op.f('uq_b2b_change_request_reference'))
    )
    with op.batch_alter_table('b2b_change_request', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_b2b_change_request_contract_id'), ['contract_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_b2b_change_request_order_id'), ['order_id'], unique=False)

    op.create_table('b2b_violation',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('rule_id', sa.BigInteger(), nullable=False),
    sa.Column('contract_id', sa.BigInteger(), nullable=False),
    sa.Column('account_id', sa.BigInteger(), nullable=False),
    sa.Column('period', sa.Date(), nullable=False),
    sa.Column('metric', sa.String(length=40), nullable=False),
    sa.Column('actual_value', sa.Numeric(precision=14, scale=4), nullable=False),
    sa.Column('reference_value', sa.Numeric(precision=12, scale=4), nullable=False),
    sa.Column('sample_size', sa.Integer(), nullable=False),
    sa.Column('cause', sa.String(length=300), nullable=True),
    sa.Column('created_at', opsline.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], name=op.f('fk_b2b_violation_account_id_account')),
    sa.ForeignKeyConstraint(['contract_id'], ['b2b_contract.id'], name=op.f('fk_b2b_violation_contract_id_b2b_contract')),
    sa.ForeignKeyConstraint(['rule_id'], ['b2b_sla_rule.id'], name=op.f('fk_b2b_violation_rule_id_b2b_sla_rule')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_b2b_violation')),
    sa.UniqueConstraint('rule_id', 'period', name='uq_b2b_violation_rule_period')
    )
    with op.batch_alter_table('b2b_violation', schema=None) as batch_op:
        batch_op.create_index('ix_b2b_violation_account_period', ['account_id', 'period'], unique=False)

    op.create_table('b2b_service_credit',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('violation_id', sa.BigInteger(), nullable=False),
    sa.Column('contract_id', sa.BigInteger(), nullable=False),
    sa.Column('account_id', sa.BigInteger(), nullable=False),
    sa.Column('period', sa.Date(), nullable=False),
    sa.Column('amount_minor', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('state', sa.String(length=10), nullable=False),
    sa.Column('proposed_by', sa.String(length=120), nullable=False),
    sa.Column('proposed_at', opsline.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('decided_by', sa.String(length=120), nullable=True),
    sa.Column('decided_at', opsline.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('pending_charge_id', sa.BigInteger(), nullable=True),
    sa.CheckConstraint("state IN ('proposed', 'approved', 'rejected')", name=op.f('ck_b2b_service_credit_state')),
    sa.CheckConstraint('amount_minor > 0', name=op.f('ck_b2b_service_credit_amount_positive')),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], name=op.f('fk_b2b_service_credit_account_id_account')),
    sa.ForeignKeyConstraint(['contract_id'], ['b2b_contract.id'], name=op.f('fk_b2b_service_credit_contract_id_b2b_contract')),
    sa.ForeignKeyConstraint(['violation_id'], ['b2b_violation.id'], name=op.f('fk_b2b_service_credit_violation_id_b2b_violation')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_b2b_service_credit')),
    sa.UniqueConstraint('violation_id', name=op.f('uq_b2b_service_credit_violation_id'))
    )
    with op.batch_alter_table('b2b_service_credit', schema=None) as batch_op:
        batch_op.create_index('ix_b2b_service_credit_state', ['state', 'contract_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('b2b_service_credit', schema=None) as batch_op:
        batch_op.drop_index('ix_b2b_service_credit_state')

    op.drop_table('b2b_service_credit')
    with op.batch_alter_table('b2b_violation', schema=None) as batch_op:
        batch_op.drop_index('ix_b2b_violation_account_period')

    op.drop_table('b2b_violation')
    with op.batch_alter_table('b2b_change_request', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_b2b_change_request_order_id'))
        batch_op.drop_index(batch_op.f('ix_b2b_change_request_contract_id'))

    op.drop_table('b2b_change_request')
    with op.batch_alter_table('b2b_sla_rule', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_b2b_sla_rule_contract_id'))

    op.drop_table('b2b_sla_rule')
    with op.batch_alter_table('b2b_review', schema=None) as batch_op:
        batch_op.drop_index('ix_b2b_review_state_period')

    op.drop_table('b2b_review')
    with op.batch_alter_table('b2b_bill_check', schema=None) as batch_op:
        batch_op.drop_index('ix_b2b_bill_check_run_state')

    op.drop_table('b2b_bill_check')
    with op.batch_alter_table('b2b_improvement_action', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_b2b_improvement_action_account_id'))

    op.drop_table('b2b_improvement_action')
    with op.batch_alter_table('b2b_contract', schema=None) as batch_op:
        batch_op.drop_index('ix_b2b_contract_account')

    op.drop_table('b2b_contract')
    op.drop_table('b2b_setting')
