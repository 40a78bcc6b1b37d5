"""Logistics: courier collections of equipment, attempts and warehouse receipts (issue 12 item 5)

Revision ID: 0016_logistics
Revises: 0015_cancellations
"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401
import opsline.db.base  # noqa: F401
from sqlalchemy import Text  # noqa: F401  (autogenerate renders JSONB(astext_type=Text()))
from sqlalchemy.dialects import postgresql  # noqa: F401

revision = '0016_logistics'
down_revision = '0015_cancellations'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('courier_slot',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('courier_code', sa.String(length=30), nullable=False),
    sa.Column('weekday', sa.Integer(), nullable=False),
    sa.Column('start_time', sa.Time(), nullable=False),
    sa.Column('end_time', sa.Time(), nullable=False),
    sa.Column('capacity', sa.Integer(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.CheckConstraint('capacity >= 0', name=op.f('ck_courier_slot_capacity')),
    sa.CheckConstraint('end_time > start_time', name=op.f('ck_courier_slot_window')),
    sa.CheckConstraint('weekday BETWEEN 0 AND 6', name=op.f('ck_courier_slot_weekday')),
    sa.ForeignKeyConstraint(['courier_code'], ['partner.code'], name=op.f('fk_courier_slot_courier_code_partner')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_courier_slot')),
    sa.UniqueConstraint('courier_code', 'weekday', 'start_time', name=op.f('uq_courier_slot_courier_code_weekday_start_time'))
    )

    op.create_table('equipment_fee_rule',
    sa.Column('model', sa.String(length=80), nullable=False),
    sa.Column('fee_minor', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('tax_rate_code', sa.String(length=20), nullable=False),
    sa.Column('grace_days', sa.Integer(), nullable=False),
    sa.Column('warning_days', sa.Integer(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.CheckConstraint('fee_minor >= 0', name=op.f('ck_equipment_fee_rule_fee')),
    sa.CheckConstraint('grace_days >= 0 AND warning_days >= 0', name=op.f('ck_equipment_fee_rule_days')),
    sa.PrimaryKeyConstraint('model', name=op.f('pk_equipment_fee_rule'))
    )

    op.create_table('ont_return_rule',
    sa.Column('partner_code', sa.String(length=30), nullable=False),
    sa.Column('collect_ont', sa.Boolean(), nullable=False),
    sa.Column('note', sa.String(length=200), nullable=True),
    sa.ForeignKeyConstraint(['partner_code'], ['partner.code'], name=op.f('fk_ont_return_rule_partner_code_partner')),
    sa.PrimaryKeyConstraint('partner_code', name=op.f('pk_ont_return_rule'))
    )

    op.create_table('collection',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('number', sa.String(length=20), nullable=False),
    sa.Column('account_id', sa.BigInteger(), nullable=False),
    sa.Column('courier_code', sa.String(length=30), nullable=False),
    sa.Column('slot_id', sa.BigInteger(), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('purpose', sa.String(length=10), nullable=False),
    sa.Column('slot_start', opsline.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('slot_end', opsline.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('address', sa.String(length=300), nullable=False),
    sa.Column('contact_name', sa.String(length=120), nullable=False),
    sa.Column('contact_phone', sa.String(length=30), nullable=False),
    sa.Column('reference', sa.String(length=60), nullable=True),
    sa.Column('idempotency_key', sa.String(length=200), nullable=False),
    sa.Column('courier_ref', sa.String(length=80), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('delivered_at', opsline.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('state_reason', sa.Text(), nullable=True),
    sa.Column('created_at', opsline.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=120), nullable=False),
    sa.Column('updated_at', opsline.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("purpose IN ('return','swap')", name=op.f('ck_collection_purpose')),
    sa.CheckConstraint("state IN ('booked', 'confirmed', 'rejected', 'failed', 'collected', 'received', 'cancelled')", name=op.f('ck_collection_state')),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], name=op.f('fk_collection_account_id_account')),
    sa.ForeignKeyConstraint(['courier_code'], ['partner.code'], name=op.f('fk_collection_courier_code_partner')),
    sa.ForeignKeyConstraint(['slot_id'], ['courier_slot.id'], name=op.f('fk_collection_slot_id_courier_slot')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_collection')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_collection_idempotency_key')),
    sa.UniqueConstraint('number', name=op.f('uq_collection_number'))
    )
    with op.batch_alter_table('collection', schema=None) as batch_op:
        batch_op.create_index('ix_collection_account', ['account_id', 'id'], unique=False)
        batch_op.create_index('ix_collection_reference', ['reference'], unique=False)
        batch_op.create_index('ix_collection_slot', ['courier_code', 'slot_start', 'state'], unique=False)
        batch_op.create_index('ix_collection_state', ['state', 'slot_start'], unique=False)

    op.create_table('collection_item',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('collection_id', sa.BigInteger(), nullable=False),
    sa.Column('equipment_id', sa.BigInteger(), nullable=False),
    sa.Column('account_id', sa.BigInteger(), nullable=False),
    sa.Column('received_at', opsline.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('condition', sa.String(length=20), nullable=True),
    sa.CheckConstraint("condition IS NULL OR condition IN ('good','faulty','damaged','destroyed')", name=op.f('ck_collection_item_condition')),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], name=op.f('fk_collection_item_account_id_account')),
    sa.ForeignKeyConstraint(['collection_id'], ['collection.id'], name=op.f('fk_collection_item_collection_id_collection')),
    sa.ForeignKeyConstraint(['equipment_id'], ['equipment.id'], name=op.f('fk_collection_item_equipment_id_equipment')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_collection_item')),
    sa.UniqueConstraint('collection_id', 'equipment_id', name=op.f('uq_collection_item_collection_id_equipment_id'))
    )
    with op.batch_alter_table('collection_item', schema=None) as batch_op:
        batch_op.create_index('ix_collection_item_equipment', ['equipment_id'], unique=False)

    op.create_table('collection_attempt',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('collection_id', sa.BigInteger(), nullable=False),
    sa.Column('account_id', sa.BigInteger(), nullable=False),
    sa.Column('attempt_no', sa.Integer(), nullable=False),
    sa.Column('slot_start', opsline.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('outcome', sa.String(length=20), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('source', sa.String(length=10), nullable=False),
    sa.Column('recorded_at', opsline.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('recorded_by', sa.String(length=120), nullable=False),
    sa.CheckConstraint("outcome IN ('collected','not_home','refused','wrong_address')", name=op.f('ck_collection_attempt_outcome')),
    sa.CheckConstraint("source IN ('staff','courier')", name=op.f('ck_collection_attempt_source')),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], name=op.f('fk_collection_attempt_account_id_account')),
    sa.ForeignKeyConstraint(['collection_id'], ['collection.id'], name=op.f('fk_collection_attempt_collection_id_collection')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_collection_attempt')),
    sa.UniqueConstraint('collection_id', 'attempt_no', name=op.f('uq_collection_attempt_collection_id_attempt_no'))
    )
    with op.batch_alter_table('collection_attempt', schema=None) as batch_op:
        batch_op.create_index('ix_collection_attempt_recorded', ['recorded_at'], unique=False)

    op.create_table('unreturned_fee',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('equipment_id', sa.BigInteger(), nullable=False),
    sa.Column('account_id', sa.BigInteger(), nullable=False),
    sa.Column('model', sa.String(length=80), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('since_date', sa.Date(), nullable=False),
    sa.Column('due_date', sa.Date(), nullable=False),
    sa.Column('amount_minor', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('tax_rate_code', sa.String(length=20), nullable=False),
    sa.Column('charge_id', sa.BigInteger(), nullable=True),
    sa.Column('credit_charge_id', sa.BigInteger(), nullable=True),
    sa.Column('warned_at', opsline.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('charged_at', opsline.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('credited_at', opsline.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.CheckConstraint("state IN ('warned', 'charged', 'credited', 'cancelled')", name=op.f('ck_unreturned_fee_state')),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], name=op.f('fk_unreturned_fee_account_id_account')),
    sa.ForeignKeyConstraint(['equipment_id'], ['equipment.id'], name=op.f('fk_unreturned_fee_equipment_id_equipment')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_unreturned_fee')),
    sa.UniqueConstraint('equipment_id', name=op.f('uq_unreturned_fee_equipment_id'))
    )
    with op.batch_alter_table('unreturned_fee', schema=None) as batch_op:
        batch_op.create_index('ix_unreturned_fee_account', ['account_id'], unique=False)
        batch_op.create_index('ix_unreturned_fee_state', ['state', 'due_date'], unique=False)

    op.create_table('equipment_swap',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('account_id', sa.BigInteger(), nullable=False),
    sa.Column('product_id', sa.BigInteger(), nullable=True),
    sa.Column('old_equipment_id', sa.BigInteger(), nullable=False),
    sa.Column('new_equipment_id', sa.BigInteger(), nullable=False),
    sa.Column('collection_id', sa.BigInteger(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('created_at', opsline.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=120), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], name=op.f('fk_equipment_swap_account_id_account')),
    sa.ForeignKeyConstraint(['collection_id'], ['collection.id'], name=op.f('fk_equipment_swap_collection_id_collection')),
    sa.ForeignKeyConstraint(['new_equipment_id'], ['equipment.id'], name=op.f('fk_equipment_swap_new_equipment_id_equipment')),
    sa.ForeignKeyConstraint(['old_equipment_id'], ['equipment.id'], name=op.f('fk_equipment_swap_old_equipment_id_equipment')),
    sa.ForeignKeyConstraint(['product_id'], ['product.id'], name=op.f('fk_equipment_swap_product_id_product')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_equipment_swap')),
    sa.UniqueConstraint('old_equipment_id', name=op.f('uq_equipment_swap_old_equipment_id'))
    )
    with op.batch_alter_table('equipment_swap', schema=None) as batch_op:
        batch_op.create_index('ix_equipment_swap_account', ['account_id'], unique=False)

    op.create_table('cleanup_run',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('ran_at', opsline.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('ran_by', sa.String(length=120), nullable=False),
    sa.Column('counts', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cleanup_run'))
    )
    with op.batch_alter_table('cleanup_run', schema=None) as batch_op:
        batch_op.create_index('ix_cleanup_run_at', ['ran_at'], unique=False)

    op.create_table('fno_claim',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('number', sa.String(length=24), nullable=False),
    sa.Column('partner_code', sa.String(length=30), nullable=False),
    sa.Column('service_order_id', sa.BigInteger(), nullable=False),
    sa.Column('account_id', sa.BigInteger(), nullable=False),
    sa.Column('product_id', sa.BigInteger(), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('effective_date', sa.Date(), nullable=False),
    sa.Column('confirmed_date', sa.Date(), nullable=False),
    sa.Column('days', sa.Integer(), nullable=False),
    sa.Column('amount_minor', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('credited_minor', sa.BigInteger(), nullable=True),
    sa.Column('state_reason', sa.Text(), nullable=True),
    sa.Column('created_at', opsline.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=120), nullable=False),
    sa.Column('updated_at', opsline.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("state IN ('proposed', 'sent', 'accepted', 'rejected', 'credited', 'withdrawn')", name=op.f('ck_fno_claim_state')),
    sa.CheckConstraint('days > 0 AND amount_minor >= 0', name=op.f('ck_fno_claim_amount')),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], name=op.f('fk_fno_claim_account_id_account')),
    sa.ForeignKeyConstraint(['partner_code'], ['partner.code'], name=op.f('fk_fno_claim_partner_code_partner')),
    sa.ForeignKeyConstraint(['product_id'], ['product.id'], name=op.f('fk_fno_claim_product_id_product')),
    sa.ForeignKeyConstraint(['service_order_id'], ['partner_service_order.id'], name=op.f('fk_fno_claim_service_order_id_partner_service_order')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_fno_claim')),
    sa.UniqueConstraint('number', name=op.f('uq_fno_claim_number')),
    sa.UniqueConstraint('service_order_id', name=op.f('uq_fno_claim_service_order_id'))
    )
    with op.batch_alter_table('fno_claim', schema=None) as batch_op:
        batch_op.create_index('ix_fno_claim_partner_state', ['partner_code', 'state'], unique=False)

    with op.batch_alter_table('partner_service_order', schema=None) as batch_op:
        batch_op.create_index('ix_partner_service_order_action', ['action', 'confirmed_date'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('partner_service_order', schema=None) as batch_op:
        batch_op.drop_index('ix_partner_service_order_action')
    op.drop_table('fno_claim')
    op.drop_table('cleanup_run')
    op.drop_table('equipment_swap')
    op.drop_table('unreturned_fee')
    op.drop_table('collection_attempt')
    op.drop_table('collection_item')
    op.drop_table('collection')
    op.drop_table('ont_return_rule')
    op.drop_table('equipment_fee_rule')
    op.drop_table('courier_slot')
