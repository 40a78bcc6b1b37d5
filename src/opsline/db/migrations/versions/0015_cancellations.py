"""Cancellations: the cancellation journey, its checklist steps and policies (issue 12)

Revision ID: 0015_cancellations
Revises: 0014_debtors_provision
"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401
import opsline.db.base  # noqa: F401
from sqlalchemy import Text  # noqa: F401  (autogenerate renders JSONB(astext_type=Text()))
from sqlalchemy.dialects import postgresql  # noqa: F401

revision = '0015_cancellations'
down_revision = '0014_debtors_provision'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('cancellation_policy',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('code', sa.String(length=40), nullable=False),
    sa.Column('reason_code', sa.String(length=30), nullable=True),
    sa.Column('segment_code', sa.String(length=30), nullable=True),
    sa.Column('skip_retention', sa.Boolean(), nullable=False),
    sa.Column('withdraw_days_before', sa.Integer(), nullable=False),
    sa.Column('at_risk_hours', sa.Integer(), nullable=False),
    sa.Column('escalation_email', sa.String(length=200), nullable=True),
    sa.Column('holiday_country', sa.String(length=2), nullable=False),
    sa.Column('final_account_business_days', sa.Integer(), nullable=False),
    sa.Column('equipment_grace_days', sa.Integer(), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.CheckConstraint('withdraw_days_before >= 0 AND at_risk_hours >= 0 AND final_account_business_days >= 0 AND equipment_grace_days >= 0', name=op.f('ck_cancellation_policy_non_negative')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cancellation_policy')),
    sa.UniqueConstraint('code', name=op.f('uq_cancellation_policy_code')),
    sa.UniqueConstraint('reason_code', 'segment_code', name=op.f('uq_cancellation_policy_reason_code_segment_code'))
    )

    op.create_table('cancellation_journey',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('reference', sa.String(length=20), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('account_id', sa.BigInteger(), nullable=False),
    sa.Column('product_id', sa.BigInteger(), nullable=False),
    sa.Column('partner_code', sa.String(length=30), nullable=True),
    sa.Column('state', sa.String(length=30), nullable=False),
    sa.Column('reason_code', sa.String(length=30), nullable=False),
    sa.Column('requester', sa.String(length=20), nullable=False),
    sa.Column('requester_name', sa.String(length=120), nullable=True),
    sa.Column('documents', sa.Text(), nullable=True),
    sa.Column('channel', sa.String(length=20), nullable=False),
    sa.Column('case_id', sa.BigInteger(), nullable=True),
    sa.Column('notes', sa.Text(), nullable=True),
    sa.Column('notice_date', sa.Date(), nullable=False),
    sa.Column('requested_date', sa.Date(), nullable=True),
    sa.Column('effective_date', sa.Date(), nullable=True),
    sa.Column('juristic', sa.Boolean(), nullable=False),
    sa.Column('cpa_applies', sa.Boolean(), nullable=False),
    sa.Column('date_explanation', sa.Text(), nullable=True),
    sa.Column('etf_minor', sa.BigInteger(), nullable=True),
    sa.Column('etf_currency', sa.String(length=3), nullable=True),
    sa.Column('etf_waiver_reason', sa.Text(), nullable=True),
    sa.Column('retention_outcome', sa.String(length=20), nullable=True),
    sa.Column('retention_offer', sa.Text(), nullable=True),
    sa.Column('retention_order_id', sa.BigInteger(), nullable=True),
    sa.Column('new_site_id', sa.BigInteger(), nullable=True),
    sa.Column('new_offering_id', sa.BigInteger(), nullable=True),
    sa.Column('order_id', sa.BigInteger(), nullable=True),
    sa.Column('order_item_id', sa.BigInteger(), nullable=True),
    sa.Column('service_order_id', sa.BigInteger(), nullable=True),
    sa.Column('fno_due_date', sa.Date(), nullable=True),
    sa.Column('fno_confirmed_date', sa.Date(), nullable=True),
    sa.Column('at_risk', sa.Boolean(), nullable=False),
    sa.Column('next_due_at', opsline.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('current_step', sa.String(length=30), nullable=True),
    sa.Column('state_reason', sa.Text(), nullable=True),
    sa.Column('created_by', sa.String(length=80), nullable=False),
    sa.Column('created_at', opsline.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', opsline.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('closed_at', opsline.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.CheckConstraint("kind IN ('cancellation','relocation')", name=op.f('ck_cancellation_journey_kind')),
    sa.CheckConstraint("reason_code IN ('moving','price','service_quality','competitor','financial','deceased','emigrating','non_payment','other')", name=op.f('ck_cancellation_journey_reason_code')),
    sa.CheckConstraint("requester IN ('account_holder','deceased_estate','api')", name=op.f('ck_cancellation_journey_requester')),
    sa.CheckConstraint("retention_outcome IS NULL OR retention_outcome IN ('skipped','declined','accepted')", name=op.f('ck_cancellation_journey_retention_outcome')),
    sa.CheckConstraint("state IN ('requested', 'retention', 'confirmed', 'deactivation_sent', 'deactivation_confirmed', 'equipment_collection', 'final_billing', 'closed', 'retained', 'withdrawn')", name=op.f('ck_cancellation_journey_state')),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], name=op.f('fk_cancellation_journey_account_id_account')),
    sa.ForeignKeyConstraint(['product_id'], ['product.id'], name=op.f('fk_cancellation_journey_product_id_product')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cancellation_journey')),
    sa.UniqueConstraint('reference', name=op.f('uq_cancellation_journey_reference'))
    )
    with op.batch_alter_table('cancellation_journey', schema=None) as batch_op:
        batch_op.create_index('ix_cancellation_journey_account', ['account_id', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_cancellation_journey_order_item_id'), ['order_item_id'], unique=False)
        batch_op.create_index('ix_cancellation_journey_partner_state', ['partner_code', 'state'], unique=False)
        batch_op.create_index('ix_cancellation_journey_product', ['product_id', 'state'], unique=False)
        batch_op.create_index(batch_op.f('ix_cancellation_journey_service_order_id'), ['service_order_id'], unique=False)
        batch_op.create_index('ix_cancellation_journey_state_due', ['state', 'next_due_at'], unique=False)
        batch_op.create_index('ix_cancellation_journey_step_due', ['current_step', 'next_due_at'], unique=False)
        batch_op.create_index('ix_cancellation_journey_open_due', ['next_due_at', 'id'], unique=False, postgresql_where=sa.text("state IN ('requested', 'retention', 'confirmed', 'deactivation_sent', 'deactivation_confirmed', 'equipment_collection', 'final_billing')"), sqlite_where=sa.text("state IN ('requested', 'retention', 'confirmed', 'deactivation_sent', 'deactivation_confirmed', 'equipment_collection', 'final_billing')"))

    op.create_table('cancellation_step',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('journey_id', sa.BigInteger(), nullable=False),
    sa.Column('account_id', sa.BigInteger(), nullable=False),
    sa.Column('code', sa.String(length=30), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('owner', sa.String(length=80), nullable=False),
    sa.Column('state', sa.String(length=10), nullable=False),
    sa.Column('due_at', opsline.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('at_risk', sa.Boolean(), nullable=False),
    sa.Column('escalated_at', opsline.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('done_at', opsline.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('done_by', sa.String(length=80), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.CheckConstraint("code IN ('retention','notice','customer_notified','fno_deactivation','equipment','final_account')", name=op.f('ck_cancellation_step_code')),
    sa.CheckConstraint("state IN ('open', 'done', 'skipped')", name=op.f('ck_cancellation_step_state')),
    sa.ForeignKeyConstraint(['journey_id'], ['cancellation_journey.id'], name=op.f('fk_cancellation_step_journey_id_cancellation_journey')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cancellation_step')),
    sa.UniqueConstraint('journey_id', 'code', name=op.f('uq_cancellation_step_journey_id_code'))
    )
    with op.batch_alter_table('cancellation_step', schema=None) as batch_op:
        batch_op.create_index('ix_cancellation_step_open_due', ['state', 'due_at'], unique=False)
        batch_op.create_index('ix_cancellation_step_due', ['due_at'], unique=False)

    op.create_table('cancel_product_order',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('product_order_id', sa.BigInteger(), nullable=False),
    sa.Column('account_id', sa.BigInteger(), nullable=False),
    sa.Column('journey_id', sa.BigInteger(), nullable=True),
    sa.Column('state', sa.String(length=30), nullable=False),
    sa.Column('cancellation_reason', sa.Text(), nullable=True),
    sa.Column('requested_cancellation_date', opsline.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('effective_cancellation_date', opsline.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_by', sa.String(length=80), nullable=False),
    sa.Column('created_at', opsline.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', opsline.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("state IN ('acknowledged', 'inProgress', 'done', 'terminatedWithError')", name=op.f('ck_cancel_product_order_state')),
    sa.ForeignKeyConstraint(['product_order_id'], ['product_order.id'], name=op.f('fk_cancel_product_order_product_order_id_product_order')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cancel_product_order'))
    )
    with op.batch_alter_table('cancel_product_order', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_cancel_product_order_product_order_id'), ['product_order_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('cancel_product_order', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_cancel_product_order_product_order_id'))

    op.drop_table('cancel_product_order')
    with op.batch_alter_table('cancellation_step', schema=None) as batch_op:
        batch_op.drop_index('ix_cancellation_step_due')
        batch_op.drop_index('ix_cancellation_step_open_due')

    op.drop_table('cancellation_step')
    with op.batch_alter_table('cancellation_journey', schema=None) as batch_op:
        batch_op.drop_index('ix_cancellation_journey_open_due', postgresql_where=sa.text("state IN ('requested', 'retention', 'confirmed', 'deactivation_sent', 'deactivation_confirmed', 'equipment_collection', 'final_billing')"), sqlite_where=sa.text("state IN ('requested', 'retention', 'confirmed', 'deactivation_sent', 'deactivation_confirmed', 'equipment_collection', 'final_billing')"))
        batch_op.drop_index('ix_cancellation_journey_step_due')
        batch_op.drop_index('ix_cancellation_journey_state_due')
        batch_op.drop_index(batch_op.f('ix_cancellation_journey_service_order_id'))
        batch_op.drop_index('ix_cancellation_journey_product')
        batch_op.drop_index('ix_cancellation_journey_partner_state')
        batch_op.drop_index(batch_op.f('ix_cancellation_journey_order_item_id'))
        batch_op.drop_index('ix_cancellation_journey_account')

    op.drop_table('cancellation_journey')
    op.drop_table('cancellation_policy')

