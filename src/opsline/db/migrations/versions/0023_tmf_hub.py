"""TMF688 event hub listeners and deliveries (issue 14)

Revision ID: 0023_tmf_hub
Revises: 0022_cancellations_totals
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
import opsline.db.base

revision = '0023_tmf_hub'
down_revision = '0022_cancellations_totals'
branch_labels = None
depends_on = None

BIGID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table('tmf_hub_listener',
    sa.Column('id', BIGID, autoincrement=True, nullable=False),
    sa.Column('api_name', sa.String(length=60), nullable=False),
    sa.Column('callback', sa.String(length=2000), nullable=False),
    sa.Column('query', sa.String(length=2000), nullable=True),
    sa.Column('secret', sa.String(length=100), nullable=False),
    sa.Column('created_at', opsline.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=120), nullable=False),
    sa.Column('deleted_at', opsline.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('deleted_by', sa.String(length=120), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tmf_hub_listener')),
    )
    with op.batch_alter_table('tmf_hub_listener', schema=None) as batch_op:
        batch_op.create_index('ix_tmf_hub_listener_api', ['api_name', 'deleted_at'], unique=False)

    op.create_table('tmf_hub_delivery',
    sa.Column('id', BIGID, autoincrement=True, nullable=False),
    sa.Column('listener_id', sa.BigInteger(), nullable=False),
    sa.Column('event_id', sa.String(length=40), nullable=False),
    sa.Column('event_type', sa.String(length=80), nullable=False),
    sa.Column('resource_key', sa.String(length=100), nullable=False),
    sa.Column('body', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_status_code', sa.Integer(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('next_attempt_at', opsline.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', opsline.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('delivered_at', opsline.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.CheckConstraint("state IN ('pending','delivered','dead','cancelled')", name=op.f('ck_tmf_hub_delivery_state')),
    sa.ForeignKeyConstraint(['listener_id'], ['tmf_hub_listener.id'], name=op.f('fk_tmf_hub_delivery_listener_id_tmf_hub_listener')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tmf_hub_delivery')),
    sa.UniqueConstraint('listener_id', 'event_id', name='uq_tmf_hub_delivery_listener_event'),
    )
    with op.batch_alter_table('tmf_hub_delivery', schema=None) as batch_op:
        batch_op.create_index('ix_tmf_hub_delivery_order', ['listener_id', 'resource_key', 'id'], unique=False)
        batch_op.create_index('ix_tmf_hub_delivery_state', ['state', 'listener_id'], unique=False)

    op.create_table('tmf_hub_attempt',
    sa.Column('id', BIGID, autoincrement=True, nullable=False),
    sa.Column('delivery_id', sa.BigInteger(), nullable=False),
    sa.Column('at', opsline.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('status_code', sa.Integer(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.ForeignKeyConstraint(['delivery_id'], ['tmf_hub_delivery.id'], name=op.f('fk_tmf_hub_attempt_delivery_id_tmf_hub_delivery')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tmf_hub_attempt')),
    )
    with op.batch_alter_table('tmf_hub_attempt', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tmf_hub_attempt_delivery_id'), ['delivery_id'], unique=False)


def downgrade() -> None:
    op.drop_table('tmf_hub_attempt')
    op.drop_table('tmf_hub_delivery')
    op.drop_table('tmf_hub_listener')
