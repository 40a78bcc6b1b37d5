"""Revenue assurance, dashboards, report subscriptions (issue 15)

Revision ID: 0026_revenue_assurance
Revises: 0025_customer_data
"""
from alembic import op
import sqlalchemy as sa
import opsline.db.base

revision = '0026_revenue_assurance'
down_revision = '0025_customer_data'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('report_subscription',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('report_key', sa.String(length=60), nullable=False),
    sa.Column('frequency', sa.String(length=10), nullable=False),
    sa.Column('format', sa.String(length=5), nullable=False),
    sa.Column('recipients', sa.Text(), nullable=False),
    sa.Column('owner', sa.String(length=120), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', opsline.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', opsline.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_sent_at', opsline.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.CheckConstraint("format IN ('xlsx','pdf')", name=op.f('ck_report_subscription_format')),
    sa.CheckConstraint("frequency IN ('daily','weekly','monthly')", name=op.f('ck_report_subscription_frequency')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_report_subscription'))
    )
    op.create_table('partner_invoice',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('partner_code', sa.String(length=30), nullable=False),
    sa.Column('period', sa.Date(), nullable=False),
    sa.Column('file_name', sa.String(length=200), nullable=False),
    sa.Column('file_sha256', sa.String(length=64), nullable=False),
    sa.Column('encoding', sa.String(length=20), nullable=False),
    sa.Column('lines_count', sa.Integer(), nullable=False),
    sa.Column('total_minor', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('findings_count', sa.Integer(), nullable=False),
    sa.Column('leakage_minor', sa.BigInteger(), nullable=False),
    sa.Column('imported_at', opsline.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('imported_by', sa.String(length=120), nullable=False),
    sa.ForeignKeyConstraint(['partner_code'], ['partner.code'], name=op.f('fk_partner_invoice_partner_code_partner')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_partner_invoice')),
    sa.UniqueConstraint('file_sha256', name=op.f('uq_partner_invoice_file_sha256')),
    sa.UniqueConstraint('partner_code', 'period', name='uq_partner_invoice_partner_period')
    )
    op.create_table('report_delivery',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('subscription_id', sa.BigInteger(), nullable=False),
    sa.Column('slot', sa.String(length=20), nullable=False),
    sa.Column('at', opsline.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('messages', sa.Integer(), nullable=False),
    sa.Column('outcome', sa.String(length=20), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['subscription_id'], ['report_subscription.id'], name=op.f('fk_report_delivery_subscription_id_report_subscription')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_report_delivery')),
    sa.UniqueConstraint('subscription_id', 'slot', name='uq_report_delivery_slot')
    )
    op.create_table('assurance_finding',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('invoice_id', sa.BigInteger(), nullable=False),
    sa.Column('partner_code', sa.String(length=30), nullable=False),
    sa.Column('period', sa.Date(), nullable=False),
    sa.Column('kind', sa.String(length=30), nullable=False),
    sa.Column('line_ref', sa.String(length=80), nullable=False),
    sa.Column('invoice_line_id', sa.BigInteger(), nullable=True),
    sa.Column('product_id', sa.BigInteger(), nullable=True),
    sa.Column('account_id', sa.BigInteger(), nullable=True),
    sa.Column('journey_id', sa.BigInteger(), nullable=True),
    sa.Column('billed_minor', sa.BigInteger(), nullable=False),
    sa.Column('expected_minor', sa.BigInteger(), nullable=False),
    sa.Column('amount_minor', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('detail', sa.String(length=300), nullable=False),
    sa.Column('state', sa.String(length=12), nullable=False),
    sa.Column('state_reason', sa.Text(), nullable=True),
    sa.Column('created_at', opsline.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', opsline.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("kind IN ('billed_not_active','price_differs','not_billed_by_partner')", name=op.f('ck_assurance_finding_kind')),
    sa.CheckConstraint("state IN ('open', 'disputed', 'recovered', 'rejected', 'dismissed')", name=op.f('ck_assurance_finding_state')),
    sa.ForeignKeyConstraint(['invoice_id'], ['partner_invoice.id'], name=op.f('fk_assurance_finding_invoice_id_partner_invoice')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_assurance_finding'))
    )
    with op.batch_alter_table('assurance_finding', schema=None) as batch_op:
        batch_op.create_index('ix_assurance_finding_invoice', ['invoice_id', 'kind'], unique=False)
        batch_op.create_index('ix_assurance_finding_partner_period', ['partner_code', 'period'], unique=False)

    op.create_table('partner_invoice_line',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('invoice_id', sa.BigInteger(), nullable=False),
    sa.Column('line_no', sa.Integer(), nullable=False),
    sa.Column('line_ref', sa.String(length=80), nullable=False),
    sa.Column('amount_minor', sa.BigInteger(), nullable=False),
    sa.Column('product_id', sa.BigInteger(), nullable=True),
    sa.ForeignKeyConstraint(['invoice_id'], ['partner_invoice.id'], name=op.f('fk_partner_invoice_line_invoice_id_partner_invoice')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_partner_invoice_line')),
    sa.UniqueConstraint('invoice_id', 'line_ref', name='uq_partner_invoice_line_ref')
    )
    with op.batch_alter_table('partner_invoice_line', schema=None) as batch_op:
        batch_op.create_index('ix_partner_invoice_line_product', ['product_id'], unique=False)
    # reconciliation looks our products up by the FNO's line id
    with op.batch_alter_table('product', schema=None) as batch_op:
        batch_op.create_index('ix_product_partner_line', ['partner_code', 'partner_line_ref'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('product', schema=None) as batch_op:
        batch_op.drop_index('ix_product_partner_line')

    with op.batch_alter_table('partner_invoice_line', schema=None) as batch_op:
        batch_op.drop_index('ix_partner_invoice_line_product')

    op.drop_table('partner_invoice_line')
    with op.batch_alter_table('assurance_finding', schema=None) as batch_op:
        batch_op.drop_index('ix_assurance_finding_partner_period')
        batch_op.drop_index('ix_assurance_finding_invoice')

    op.drop_table('assurance_finding')
    op.drop_table('report_delivery')
    op.drop_table('partner_invoice')
    op.drop_table('report_subscription')
