"""Customer self-service portal (issue 16)

Revision ID: 0024_portal
Revises: 0023_tmf_hub
"""
from alembic import op
import sqlalchemy as sa
import opsline.db.base

revision = '0024_portal'
down_revision = '0023_tmf_hub'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('portal_sign_in_attempt',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('email', sa.String(length=200), nullable=False),
    sa.Column('ip', sa.String(length=64), nullable=False),
    sa.Column('attempted_at', opsline.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('succeeded', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_portal_sign_in_attempt'))
    )
    with op.batch_alter_table('portal_sign_in_attempt', schema=None) as batch_op:
        batch_op.create_index('ix_portal_sign_in_attempt_email_ip', ['email', 'ip', 'attempted_at'], unique=False)
        batch_op.create_index('ix_portal_sign_in_attempt_ip', ['ip', 'attempted_at'], unique=False)

    op.create_table('portal_user',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('email', sa.String(length=200), nullable=False),
    sa.Column('full_name', sa.String(length=200), nullable=False),
    sa.Column('phone', sa.String(length=30), nullable=True),
    sa.Column('password_hash', sa.String(length=200), nullable=True),
    sa.Column('email_verified_at', opsline.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('sms_code', sa.Boolean(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', opsline.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=120), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_portal_user')),
    sa.UniqueConstraint('email', name=op.f('uq_portal_user_email'))
    )
    op.create_table('portal_membership',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('user_id', sa.BigInteger(), nullable=False),
    sa.Column('party_id', sa.BigInteger(), nullable=False),
    sa.Column('role', sa.String(length=20), nullable=False),
    sa.Column('created_at', opsline.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=120), nullable=False),
    sa.CheckConstraint("role IN ('holder','admin','viewer','orderer','billing')", name=op.f('ck_portal_membership_role')),
    sa.ForeignKeyConstraint(['party_id'], ['party.id'], name=op.f('fk_portal_membership_party_id_party')),
    sa.ForeignKeyConstraint(['user_id'], ['portal_user.id'], name=op.f('fk_portal_membership_user_id_portal_user')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_portal_membership')),
    sa.UniqueConstraint('user_id', 'party_id', name='uq_portal_membership_user_party')
    )
    with op.batch_alter_table('portal_membership', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_portal_membership_party_id'), ['party_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_portal_membership_user_id'), ['user_id'], unique=False)

    op.create_table('portal_session',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.BigInteger(), nullable=False),
    sa.Column('csrf_token', sa.String(length=64), nullable=False),
    sa.Column('created_at', opsline.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', opsline.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', opsline.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('ip', sa.String(length=64), nullable=True),
    sa.Column('user_agent', sa.String(length=300), nullable=True),
    sa.Column('code_hash', sa.String(length=64), nullable=True),
    sa.Column('code_expires_at', opsline.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('code_attempts', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['portal_user.id'], name=op.f('fk_portal_session_user_id_portal_user')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_portal_session')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_portal_session_token_hash'))
    )
    with op.batch_alter_table('portal_session', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_portal_session_user_id'), ['user_id'], unique=False)

    op.create_table('portal_token',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('user_id', sa.BigInteger(), nullable=False),
    sa.Column('purpose', sa.String(length=10), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', opsline.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', opsline.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('used_at', opsline.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.CheckConstraint("purpose IN ('verify','reset','invite')", name=op.f('ck_portal_token_purpose')),
    sa.ForeignKeyConstraint(['user_id'], ['portal_user.id'], name=op.f('fk_portal_token_user_id_portal_user')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_portal_token')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_portal_token_token_hash'))
    )
    with op.batch_alter_table('portal_token', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_portal_token_user_id'), ['user_id'], unique=False)


def downgrade() -> None:

    with op.batch_alter_table('portal_token', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_portal_token_user_id'))

    op.drop_table('portal_token')
    with op.batch_alter_table('portal_session', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_portal_session_user_id'))

    op.drop_table('portal_session')
    with op.batch_alter_table('portal_membership', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_portal_membership_user_id'))
        batch_op.drop_index(batch_op.f('ix_portal_membership_party_id'))

    op.drop_table('portal_membership')
    op.drop_table('portal_user')
    with op.batch_alter_table('portal_sign_in_attempt', schema=None) as batch_op:
        batch_op.drop_index('ix_portal_sign_in_attempt_ip')
        batch_op.drop_index('ix_portal_sign_in_attempt_email_ip')

    op.drop_table('portal_sign_in_attempt')
