"""Debtors: IFRS 9 bad-debt provision, month-end ageing snapshots and forward-looking adjustments (issue 11 item 6)

Revision ID: 0014_debtors_provision
Revises: 0013_debtors_agencies
"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401
import opsline.db.base  # noqa: F401
from sqlalchemy import Text  # noqa: F401  (autogenerate renders JSONB(astext_type=Text()))
from sqlalchemy.dialects import postgresql  # noqa: F401

revision = '0014_debtors_provision'
down_revision = '0013_debtors_agencies'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('provision_adjustment',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('valid_from', sa.Date(), nullable=False),
    sa.Column('segment_code', sa.String(length=30), nullable=False),
    sa.Column('pct', sa.Numeric(precision=9, scale=4), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('created_at', opsline.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=120), nullable=False),
    sa.CheckConstraint('pct > -100 AND pct <= 1000', name=op.f('ck_provision_adjustment_pct_range')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_provision_adjustment'))
    )
    with op.batch_alter_table('provision_adjustment', schema=None) as batch_op:
        batch_op.create_index('ix_provision_adjustment_month', ['valid_from', 'segment_code'], unique=False)
    op.create_table('provision_history_import',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('filename', sa.String(length=200), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('lines', sa.Integer(), nullable=False),
    sa.Column('months', sa.Integer(), nullable=False),
    sa.Column('first_month', sa.Date(), nullable=False),
    sa.Column('last_month', sa.Date(), nullable=False),
    sa.Column('imported_at', opsline.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('imported_by', sa.String(length=120), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_provision_history_import'))
    )
    op.create_table('provision_run',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('month_end', sa.Date(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('is_current', sa.Boolean(), nullable=False),
    sa.Column('lookback_months', sa.Integer(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('created_at', opsline.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=120), nullable=False),
    sa.Column('inputs', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.Column('results', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_provision_run')),
    sa.UniqueConstraint('month_end', 'seq', name='uq_provision_run_month_seq')
    )
    with op.batch_alter_table('provision_run', schema=None) as batch_op:
        batch_op.create_index('uq_provision_run_current', ['month_end'], unique=True, postgresql_where=sa.text('is_current'), sqlite_where=sa.text('is_current = 1'))
    op.create_table('provision_snapshot',
    sa.Column('month_end', sa.Date(), nullable=False),
    sa.Column('computed_at', opsline.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('accounts', sa.Integer(), nullable=False),
    sa.Column('balance_minor', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('month_end', name=op.f('pk_provision_snapshot'))
    )
    op.create_table('provision_ageing',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('month_end', sa.Date(), nullable=False),
    sa.Column('source', sa.String(length=10), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('segment_code', sa.String(length=30), nullable=False),
    sa.Column('value_tier_code', sa.String(length=30), nullable=False),
    sa.Column('bucket', sa.String(length=12), nullable=False),
    sa.Column('balance_minor', sa.BigInteger(), nullable=False),
    sa.Column('rolled_minor', sa.BigInteger(), nullable=True),
    sa.Column('stayed_minor', sa.BigInteger(), nullable=True),
    sa.Column('accounts', sa.Integer(), nullable=True),
    sa.Column('import_id', sa.BigInteger(), nullable=True),
    sa.Column('computed_at', opsline.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("bucket IN ('current','d30','d60','d90','d120','d120_plus','written_off')", name=op.f('ck_provision_ageing_bucket')),
    sa.CheckConstraint("source IN ('ledger','import')", name=op.f('ck_provision_ageing_source')),
    sa.CheckConstraint('balance_minor >= 0 AND (rolled_minor IS NULL OR rolled_minor >= 0) AND (stayed_minor IS NULL OR stayed_minor >= 0)', name=op.f('ck_provision_ageing_non_negative')),
    sa.ForeignKeyConstraint(['import_id'], ['provision_history_import.id'], name=op.f('fk_provision_ageing_import_id_provision_history_import')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_provision_ageing')),
    sa.UniqueConstraint('month_end', 'source', 'currency', 'segment_code', 'value_tier_code', 'bucket', name='uq_provision_ageing_cell')
    )
    op.create_table('provision_line',
    sa.Column('run_id', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('segment_code', sa.String(length=30), nullable=False),
    sa.Column('bucket', sa.String(length=12), nullable=False),
    sa.Column('balance_minor', sa.BigInteger(), nullable=False),
    sa.Column('accounts', sa.Integer(), nullable=True),
    sa.Column('loss_rate', sa.Numeric(precision=12, scale=8), nullable=False),
    sa.Column('adjustment_pct', sa.Numeric(precision=9, scale=4), nullable=False),
    sa.Column('provision_minor', sa.BigInteger(), nullable=False),
    sa.Column('previous_minor', sa.BigInteger(), nullable=False),
    sa.CheckConstraint("bucket IN ('current','d30','d60','d90','d120','d120_plus')", name=op.f('ck_provision_line_bucket')),
    sa.ForeignKeyConstraint(['run_id'], ['provision_run.id'], name=op.f('fk_provision_line_run_id_provision_run')),
    sa.PrimaryKeyConstraint('run_id', 'currency', 'segment_code', 'bucket', name=op.f('pk_provision_line'))
    )
    op.create_table('provision_account_snapshot',
    sa.Column('month_end', sa.Date(), nullable=False),
    sa.Column('account_id', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('segment_code', sa.String(length=30), nullable=False),
    sa.Column('value_tier_code', sa.String(length=30), nullable=False),
    sa.Column('current', sa.BigInteger(), nullable=False),
    sa.Column('d30', sa.BigInteger(), nullable=False),
    sa.Column('d60', sa.BigInteger(), nullable=False),
    sa.Column('d90', sa.BigInteger(), nullable=False),
    sa.Column('d120', sa.BigInteger(), nullable=False),
    sa.Column('d120_plus', sa.BigInteger(), nullable=False),
    sa.Column('written_off_minor', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], name=op.f('fk_provision_account_snapshot_account_id_account')),
    sa.PrimaryKeyConstraint('month_end', 'account_id', 'currency', name=op.f('pk_provision_account_snapshot'))
    )
    with op.batch_alter_table('provision_account_snapshot', schema=None) as batch_op:
        batch_op.create_index('ix_provision_account_snapshot_segment', ['month_end', 'currency', 'segment_code'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('provision_account_snapshot', schema=None) as batch_op:
        batch_op.drop_index('ix_provision_account_snapshot_segment')
    op.drop_table('provision_account_snapshot')
    op.drop_table('provision_line')
    op.drop_table('provision_ageing')
    op.drop_table('provision_snapshot')
    with op.batch_alter_table('provision_run', schema=None) as batch_op:
        batch_op.drop_index('uq_provision_run_current', postgresql_where=sa.text('is_current'), sqlite_where=sa.text('is_current = 1'))
    op.drop_table('provision_run')
    op.drop_table('provision_history_import')
    with op.batch_alter_table('provision_adjustment', schema=None) as batch_op:
        batch_op.drop_index('ix_provision_adjustment_month')
    op.drop_table('provision_adjustment')
