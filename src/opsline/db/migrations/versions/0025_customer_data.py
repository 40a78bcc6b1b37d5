"""Customer data quality, merges, risk flags (issue 17)

Revision ID: 0025_customer_data
Revises: 0024_portal
"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401
import opsline.db.base  # noqa: F401

revision = '0025_customer_data'
down_revision = '0024_portal'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # account merges with every moved row recorded (customers/merge.py), operator settings, risk flags, order risk holds
    # and credit checks (customers/risk.py, orders/service/risk_hold.py)
    op.create_table('customer_setting',
    sa.Column('key', sa.String(length=60), nullable=False),
    sa.Column('value', sa.String(length=200), nullable=False),
    sa.Column('description', sa.String(length=300), nullable=True),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_customer_setting'))
    )
    op.create_table('account_merge',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('survivor_account_id', sa.BigInteger(), nullable=False),
    sa.Column('merged_account_id', sa.BigInteger(), nullable=False),
    sa.Column('state', sa.String(length=10), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('merged_by', sa.String(length=120), nullable=False),
    sa.Column('merged_at', opsline.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('undo_until', opsline.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('merged_status_before', sa.String(length=20), nullable=False),
    sa.Column('survivor_party_id', sa.BigInteger(), nullable=True),
    sa.Column('merged_party_id', sa.BigInteger(), nullable=True),
    sa.Column('fields', opsline.db.base.JSONType, nullable=False),
    sa.Column('counts', opsline.db.base.JSONType, nullable=False),
    sa.Column('kept', opsline.db.base.JSONType, nullable=False),
    sa.Column('undone_by', sa.String(length=120), nullable=True),
    sa.Column('undone_at', opsline.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('undo_reason', sa.Text(), nullable=True),
    sa.CheckConstraint("state IN ('done', 'undone')", name=op.f('ck_account_merge_state')),
    sa.ForeignKeyConstraint(['merged_account_id'], ['account.id'], name=op.f('fk_account_merge_merged_account_id_account')),
    sa.ForeignKeyConstraint(['merged_party_id'], ['party.id'], name=op.f('fk_account_merge_merged_party_id_party')),
    sa.ForeignKeyConstraint(['survivor_party_id'], ['party.id'], name=op.f('fk_account_merge_survivor_party_id_party')),
    sa.ForeignKeyConstraint(['survivor_account_id'], ['account.id'], name=op.f('fk_account_merge_survivor_account_id_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_account_merge'))
    )
    op.create_index(op.f('ix_account_merge_merged_account_id'), 'account_merge', ['merged_account_id'], unique=False)
    op.create_index(op.f('ix_account_merge_survivor_account_id'), 'account_merge', ['survivor_account_id'], unique=False)
    op.create_table('risk_flag',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('account_id', sa.BigInteger(), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('state', sa.String(length=10), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('set_by', sa.String(length=120), nullable=False),
    sa.Column('set_at', opsline.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', opsline.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('cleared_by', sa.String(length=120), nullable=True),
    sa.Column('cleared_at', opsline.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('clear_reason', sa.Text(), nullable=True),
    sa.CheckConstraint("kind IN ('fraud','credit','other')", name=op.f('ck_risk_flag_kind')),
    sa.CheckConstraint("state IN ('active', 'cleared')", name=op.f('ck_risk_flag_state')),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], name=op.f('fk_risk_flag_account_id_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_risk_flag'))
    )
    op.create_index('ix_risk_flag_account', 'risk_flag', ['account_id', 'state'], unique=False)
    op.create_table('account_merge_row',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('merge_id', sa.BigInteger(), nullable=False),
    sa.Column('table_name', sa.String(length=63), nullable=False),
    sa.Column('column_name', sa.String(length=63), nullable=False),
    sa.Column('row_id', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['merge_id'], ['account_merge.id'], name=op.f('fk_account_merge_row_merge_id_account_merge')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_account_merge_row'))
    )
    op.create_index('ix_account_merge_row_merge', 'account_merge_row', ['merge_id', 'table_name', 'column_name', 'row_id'], unique=False)
    op.create_table('order_credit_check',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('order_id', sa.BigInteger(), nullable=False),
    sa.Column('account_id', sa.BigInteger(), nullable=False),
    sa.Column('bureau', sa.String(length=40), nullable=False),
    sa.Column('outcome', sa.String(length=10), nullable=False),
    sa.Column('score', sa.Integer(), nullable=False),
    sa.Column('reasons', opsline.db.base.JSONType, nullable=False),
    sa.Column('order_value_minor', sa.BigInteger(), nullable=False),
    sa.Column('limit_minor', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('checked_at', opsline.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("outcome IN ('pass','refer','decline')", name=op.f('ck_order_credit_check_outcome')),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], name=op.f('fk_order_credit_check_account_id_account')),
    sa.ForeignKeyConstraint(['order_id'], ['product_order.id'], name=op.f('fk_order_credit_check_order_id_product_order')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_order_credit_check')),
    sa.UniqueConstraint('order_id', name=op.f('uq_order_credit_check_order_id'))
    )
    op.create_index(op.f('ix_order_credit_check_account_id'), 'order_credit_check', ['account_id'], unique=False)
    op.create_table('order_risk_hold',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('order_id', sa.BigInteger(), nullable=False),
    sa.Column('account_id', sa.BigInteger(), nullable=False),
    sa.Column('state', sa.String(length=10), nullable=False),
    sa.Column('reasons', opsline.db.base.JSONType, nullable=False),
    sa.Column('flag_ids', opsline.db.base.JSONType, nullable=False),
    sa.Column('order_in', opsline.db.base.JSONType, nullable=False),
    sa.Column('placed_by', sa.String(length=120), nullable=False),
    sa.Column('created_at', opsline.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('decided_by', sa.String(length=120), nullable=True),
    sa.Column('decided_at', opsline.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('decision_reason', sa.Text(), nullable=True),
    sa.CheckConstraint("state IN ('pending', 'released', 'rejected')", name=op.f('ck_order_risk_hold_state')),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], name=op.f('fk_order_risk_hold_account_id_account')),
    sa.ForeignKeyConstraint(['order_id'], ['product_order.id'], name=op.f('fk_order_risk_hold_order_id_product_order')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_order_risk_hold')),
    sa.UniqueConstraint('order_id', name=op.f('uq_order_risk_hold_order_id'))
    )
    op.create_index(op.f('ix_order_risk_hold_account_id'), 'order_risk_hold', ['account_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_order_risk_hold_account_id'), table_name='order_risk_hold')
    op.drop_table('order_risk_hold')
    op.drop_index(op.f('ix_order_credit_check_account_id'), table_name='order_credit_check')
    op.drop_table('order_credit_check')
    op.drop_index('ix_account_merge_row_merge', table_name='account_merge_row')
    op.drop_table('account_merge_row')
    op.drop_index('ix_risk_flag_account', table_name='risk_flag')
    op.drop_table('risk_flag')
    op.drop_index(op.f('ix_account_merge_survivor_account_id'), table_name='account_merge')
    op.drop_index(op.f('ix_account_merge_merged_account_id'), table_name='account_merge')
    op.drop_table('account_merge')
    op.drop_table('customer_setting')
