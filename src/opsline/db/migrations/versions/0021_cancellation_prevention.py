"""Cancellations: breach causes recorded on journey steps and prevention actions per cause (issue 12 item 9)

Revision ID: 0021_cancellation_prevention
Revises: 0020_support
"""
from alembic import op
import sqlalchemy as sa
import opsline.db.base

revision = '0021_cancellation_prevention'
down_revision = '0020_support'
branch_labels = None
depends_on = None


OPEN = "state IN ('requested', 'retention', 'confirmed', 'deactivation_sent', 'deactivation_confirmed', 'equipment_collection', 'final_billing')"
DONE_LATE = "state = 'done' AND done_at > due_at"


def upgrade() -> None:
    # the desk and its reports at 50,000 open journeys: index-only reads for the board, home cards, volumes and SLA
    with op.batch_alter_table('cancellation_journey', schema=None) as batch_op:
        batch_op.create_index('ix_cancellation_journey_open_board', ['current_step', 'partner_code', 'reason_code', 'next_due_at', 'at_risk', 'created_at'],
                              unique=False, postgresql_where=sa.text(OPEN), sqlite_where=sa.text(OPEN))
        batch_op.create_index('ix_cancellation_journey_notice', ['notice_date', 'kind', 'reason_code', 'retention_outcome', 'partner_code', 'state',
                                                                 'fno_confirmed_date', 'fno_due_date', 'service_order_id'], unique=False)
    with op.batch_alter_table('cancellation_step', schema=None) as batch_op:
        batch_op.create_index('ix_cancellation_step_due_cover', ['due_at', 'code', 'state', 'done_at'], unique=False)
        batch_op.create_index('ix_cancellation_step_done_late', ['due_at', 'id', 'code'], unique=False, postgresql_where=sa.text(DONE_LATE),
                              sqlite_where=sa.text(DONE_LATE))
        batch_op.create_index('ix_cancellation_step_open_late', ['due_at', 'id', 'code'], unique=False, postgresql_where=sa.text("state = 'open'"),
                              sqlite_where=sa.text("state = 'open'"))

    op.create_table('cancellation_breach_cause',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('step_id', sa.BigInteger(), nullable=False),
    sa.Column('journey_id', sa.BigInteger(), nullable=False),
    sa.Column('account_id', sa.BigInteger(), nullable=False),
    sa.Column('cause_code', sa.String(length=40), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('set_by', sa.String(length=120), nullable=False),
    sa.Column('set_at', opsline.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['cause_code'], ['breach_cause.code'], name=op.f('fk_cancellation_breach_cause_cause_code_breach_cause')),
    sa.ForeignKeyConstraint(['step_id'], ['cancellation_step.id'], name=op.f('fk_cancellation_breach_cause_step_id_cancellation_step')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cancellation_breach_cause')),
    sa.UniqueConstraint('step_id', name=op.f('uq_cancellation_breach_cause_step_id'))
    )
    with op.batch_alter_table('cancellation_breach_cause', schema=None) as batch_op:
        batch_op.create_index('ix_cancellation_breach_cause_cause', ['cause_code'], unique=False)

    op.create_table('cancellation_prevention_action',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('cause_code', sa.String(length=40), nullable=False),
    sa.Column('step_code', sa.String(length=30), nullable=True),
    sa.Column('title', sa.String(length=300), nullable=False),
    sa.Column('owner', sa.String(length=120), nullable=False),
    sa.Column('due_date', sa.Date(), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('outcome', sa.Text(), nullable=True),
    sa.Column('created_by', sa.String(length=120), nullable=False),
    sa.Column('created_at', opsline.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', opsline.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.CheckConstraint("state IN ('open', 'in_progress', 'done', 'dropped')", name=op.f('ck_cancellation_prevention_action_state')),
    sa.CheckConstraint("step_code IS NULL OR step_code IN ('retention','notice','customer_notified','fno_deactivation','equipment','final_account')",
                       name=op.f('ck_cancellation_prevention_action_step_code')),
    sa.ForeignKeyConstraint(['cause_code'], ['breach_cause.code'], name=op.f('fk_cancellation_prevention_action_cause_code_breach_cause')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cancellation_prevention_action'))
    )
    with op.batch_alter_table('cancellation_prevention_action', schema=None) as batch_op:
        batch_op.create_index('ix_cancellation_prevention_action_state_due', ['state', 'due_date'], unique=False)
        batch_op.create_index('ix_cancellation_prevention_action_cause', ['cause_code', 'state'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('cancellation_step', schema=None) as batch_op:
        batch_op.drop_index('ix_cancellation_step_open_late')
        batch_op.drop_index('ix_cancellation_step_done_late')
        batch_op.drop_index('ix_cancellation_step_due_cover')
    with op.batch_alter_table('cancellation_journey', schema=None) as batch_op:
        batch_op.drop_index('ix_cancellation_journey_notice')
        batch_op.drop_index('ix_cancellation_journey_open_board')
    with op.batch_alter_table('cancellation_prevention_action', schema=None) as batch_op:
        batch_op.drop_index('ix_cancellation_prevention_action_cause')
        batch_op.drop_index('ix_cancellation_prevention_action_state_due')
    op.drop_table('cancellation_prevention_action')
    with op.batch_alter_table('cancellation_breach_cause', schema=None) as batch_op:
        batch_op.drop_index('ix_cancellation_breach_cause_cause')
    op.drop_table('cancellation_breach_cause')
