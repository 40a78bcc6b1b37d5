"""Debtors: hand-over of debt to collection agencies, recalls and recovery files (issue 11 item 5)

Revision ID: 0013_debtors_agencies
Revises: 0012_debtors_writeoffs
"""
from alembic import op
import sqlalchemy as sa
import opsline.db.base
from sqlalchemy import Text  # noqa: F401  (autogenerate renders JSONB(astext_type=Text()))
from sqlalchemy.dialects import postgresql  # noqa: F401

revision = '0013_debtors_agencies'
down_revision = '0012_debtors_writeoffs'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('agency_batch',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('partner_code', sa.String(length=30), nullable=False),
    sa.Column('accounts', sa.Integer(), nullable=False),
    sa.Column('amount_minor', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('criteria', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.Column('placed_on', sa.Date(), nullable=False),
    sa.Column('created_at', opsline.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=120), nullable=False),
    sa.Column('idempotency_key', sa.String(length=80), nullable=True),
    sa.ForeignKeyConstraint(['partner_code'], ['partner.code'], name=op.f('fk_agency_batch_partner_code_partner')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agency_batch')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_agency_batch_idempotency_key'))
    )

    with op.batch_alter_table('agency_batch', schema=None) as batch_op:
        batch_op.create_index('ix_agency_batch_partner', ['partner_code', 'placed_on'], unique=False)

    op.create_table('agency_commission_rate',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('partner_code', sa.String(length=30), nullable=False),
    sa.Column('min_age_days', sa.Integer(), nullable=False),
    sa.Column('percent', sa.Numeric(precision=5, scale=2), nullable=False),
    sa.CheckConstraint('min_age_days >= 0 AND percent >= 0 AND percent <= 100', name=op.f('ck_agency_commission_rate_band')),
    sa.ForeignKeyConstraint(['partner_code'], ['partner.code'], name=op.f('fk_agency_commission_rate_partner_code_partner')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agency_commission_rate')),
    sa.UniqueConstraint('partner_code', 'min_age_days', name='uq_agency_commission_rate_band')
    )

    op.create_table('agency_terms',
    sa.Column('partner_code', sa.String(length=30), nullable=False),
    sa.Column('export_format', sa.String(length=4), nullable=False),
    sa.Column('export_delimiter', sa.String(length=1), nullable=False),
    sa.Column('export_date_format', sa.String(length=20), nullable=False),
    sa.Column('export_columns', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.Column('commission_basis', sa.String(length=10), nullable=False),
    sa.Column('recovery_format', sa.String(length=4), nullable=False),
    sa.Column('recovery_delimiter', sa.String(length=1), nullable=False),
    sa.Column('recovery_date_format', sa.String(length=20), nullable=False),
    sa.Column('recovery_columns', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.Column('updated_at', opsline.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_by', sa.String(length=120), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.CheckConstraint("commission_basis IN ('flat','by_age')", name=op.f('ck_agency_terms_commission_basis')),
    sa.CheckConstraint("export_format IN ('csv','xlsx')", name=op.f('ck_agency_terms_export_format')),
    sa.CheckConstraint("recovery_format IN ('csv','xlsx')", name=op.f('ck_agency_terms_recovery_format')),
    sa.ForeignKeyConstraint(['partner_code'], ['partner.code'], name=op.f('fk_agency_terms_partner_code_partner')),
    sa.PrimaryKeyConstraint('partner_code', name=op.f('pk_agency_terms'))
    )

    op.create_table('agency_placement',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('batch_id', sa.BigInteger(), nullable=False),
    sa.Column('account_id', sa.BigInteger(), nullable=False),
    sa.Column('partner_code', sa.String(length=30), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('amount_minor', sa.BigInteger(), nullable=False),
    sa.Column('written_off_minor', sa.BigInteger(), nullable=False),
    sa.Column('on_book_minor', sa.BigInteger(), nullable=False),
    sa.Column('recovered_minor', sa.BigInteger(), nullable=False),
    sa.Column('bad_debt_recovered_minor', sa.BigInteger(), nullable=False),
    sa.Column('commission_minor', sa.BigInteger(), nullable=False),
    sa.Column('commission_percent', sa.Numeric(precision=5, scale=2), nullable=False),
    sa.Column('age_days', sa.Integer(), nullable=False),
    sa.Column('oldest_due', sa.Date(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('placed_on', sa.Date(), nullable=False),
    sa.Column('placed_at', opsline.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('closed_at', opsline.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('closed_by', sa.String(length=120), nullable=True),
    sa.Column('close_reason', sa.Text(), nullable=True),
    sa.CheckConstraint("state IN ('placed', 'recalled', 'closed_paid', 'closed_returned')", name=op.f('ck_agency_placement_state')),
    sa.CheckConstraint('amount_minor > 0 AND written_off_minor >= 0 AND on_book_minor >= 0 AND written_off_minor + on_book_minor = amount_minor', name=op.f('ck_agency_placement_amounts')),
    sa.CheckConstraint('recovered_minor >= 0 AND recovered_minor <= amount_minor', name=op.f('ck_agency_placement_recovered')),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], name=op.f('fk_agency_placement_account_id_account')),
    sa.ForeignKeyConstraint(['batch_id'], ['agency_batch.id'], name=op.f('fk_agency_placement_batch_id_agency_batch')),
    sa.ForeignKeyConstraint(['partner_code'], ['partner.code'], name=op.f('fk_agency_placement_partner_code_partner')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agency_placement'))
    )

    with op.batch_alter_table('agency_placement', schema=None) as batch_op:
        batch_op.create_index('ix_agency_placement_account', ['account_id', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_agency_placement_batch_id'), ['batch_id'], unique=False)
        batch_op.create_index('ix_agency_placement_partner', ['partner_code', 'state', 'placed_on'], unique=False)
        batch_op.create_index('uq_agency_placement_open_account', ['account_id'], unique=True, postgresql_where=sa.text("state = 'placed'"), sqlite_where=sa.text("state = 'placed'"))

    op.create_table('agency_recovery_file',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('partner_code', sa.String(length=30), nullable=False),
    sa.Column('filename', sa.String(length=200), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('lines', sa.Integer(), nullable=False),
    sa.Column('new_lines', sa.Integer(), nullable=False),
    sa.Column('amount_minor', sa.BigInteger(), nullable=False),
    sa.Column('commission_minor', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('imported_at', opsline.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('imported_by', sa.String(length=120), nullable=False),
    sa.ForeignKeyConstraint(['partner_code'], ['partner.code'], name=op.f('fk_agency_recovery_file_partner_code_partner')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agency_recovery_file')),
    sa.UniqueConstraint('partner_code', 'sha256', name='uq_agency_recovery_file_hash')
    )

    op.create_table('agency_recovery',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('file_id', sa.BigInteger(), nullable=False),
    sa.Column('placement_id', sa.BigInteger(), nullable=False),
    sa.Column('account_id', sa.BigInteger(), nullable=False),
    sa.Column('partner_code', sa.String(length=30), nullable=False),
    sa.Column('line_no', sa.Integer(), nullable=False),
    sa.Column('agency_ref', sa.String(length=80), nullable=False),
    sa.Column('paid_on', sa.Date(), nullable=False),
    sa.Column('amount_minor', sa.BigInteger(), nullable=False),
    sa.Column('on_book_minor', sa.BigInteger(), nullable=False),
    sa.Column('bad_debt_minor', sa.BigInteger(), nullable=False),
    sa.Column('commission_minor', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('posted_at', opsline.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint('amount_minor > 0 AND on_book_minor >= 0 AND bad_debt_minor >= 0 AND on_book_minor + bad_debt_minor = amount_minor AND commission_minor >= 0', name=op.f('ck_agency_recovery_amounts')),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], name=op.f('fk_agency_recovery_account_id_account')),
    sa.ForeignKeyConstraint(['file_id'], ['agency_recovery_file.id'], name=op.f('fk_agency_recovery_file_id_agency_recovery_file')),
    sa.ForeignKeyConstraint(['partner_code'], ['partner.code'], name=op.f('fk_agency_recovery_partner_code_partner')),
    sa.ForeignKeyConstraint(['placement_id'], ['agency_placement.id'], name=op.f('fk_agency_recovery_placement_id_agency_placement')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agency_recovery')),
    sa.UniqueConstraint('partner_code', 'agency_ref', name='uq_agency_recovery_ref')
    )

    with op.batch_alter_table('agency_recovery', schema=None) as batch_op:
        batch_op.create_index('ix_agency_recovery_account', ['account_id', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_agency_recovery_file_id'), ['file_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_agency_recovery_placement_id'), ['placement_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('agency_recovery', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_agency_recovery_placement_id'))
        batch_op.drop_index(batch_op.f('ix_agency_recovery_file_id'))
        batch_op.drop_index('ix_agency_recovery_account')

    op.drop_table('agency_recovery')

    op.drop_table('agency_recovery_file')

    with op.batch_alter_table('agency_placement', schema=None) as batch_op:
        batch_op.drop_index('uq_agency_placement_open_account', postgresql_where=sa.text("state = 'placed'"), sqlite_where=sa.text("state = 'placed'"))
        batch_op.drop_index('ix_agency_placement_partner')
        batch_op.drop_index(batch_op.f('ix_agency_placement_batch_id'))
        batch_op.drop_index('ix_agency_placement_account')

    op.drop_table('agency_placement')

    op.drop_table('agency_terms')

    op.drop_table('agency_commission_rate')

    with op.batch_alter_table('agency_batch', schema=None) as batch_op:
        batch_op.drop_index('ix_agency_batch_partner')

    op.drop_table('agency_batch')

