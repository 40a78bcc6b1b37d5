"""Notifications: templates, messages, preferences, caps, approvals (issue 8)

Revision ID: 0006_notifications
Revises: 0005_billing
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

import opsline.db.base

revision = "0006_notifications"
down_revision = "0005_billing"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('contact_rule',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('code', sa.String(length=40), nullable=False),
    sa.Column('category', sa.String(length=20), nullable=False),
    sa.Column('channel', sa.String(length=10), nullable=True),
    sa.Column('max_contacts', sa.Integer(), nullable=True),
    sa.Column('period_days', sa.Integer(), nullable=True),
    sa.Column('quiet_from', sa.String(length=5), nullable=True),
    sa.Column('quiet_to', sa.String(length=5), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('description', sa.String(length=300), nullable=False),
    sa.CheckConstraint("category IN ('service','billing','collections','marketing')", name=op.f('ck_contact_rule_category')),
    sa.CheckConstraint("channel IS NULL OR channel IN ('email','sms')", name=op.f('ck_contact_rule_channel')),
    sa.CheckConstraint('(max_contacts IS NULL) = (period_days IS NULL)', name=op.f('ck_contact_rule_cap_pair')),
    sa.CheckConstraint('(quiet_from IS NULL) = (quiet_to IS NULL)', name=op.f('ck_contact_rule_quiet_pair')),
    sa.CheckConstraint('max_contacts IS NULL OR max_contacts >= 1', name=op.f('ck_contact_rule_max_contacts')),
    sa.CheckConstraint('period_days IS NULL OR period_days >= 1', name=op.f('ck_contact_rule_period_days')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contact_rule')),
    sa.UniqueConstraint('code', name=op.f('uq_contact_rule_code'))
    )
    op.create_table('message_template',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('event', sa.String(length=100), nullable=False),
    sa.Column('channel', sa.String(length=10), nullable=False),
    sa.Column('language', sa.String(length=10), nullable=False),
    sa.Column('subject', sa.Text(), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('description', sa.String(length=300), nullable=False),
    sa.Column('sample_context', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_at', opsline.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', opsline.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_by', sa.String(length=120), nullable=False),
    sa.CheckConstraint("channel IN ('email','sms')", name=op.f('ck_message_template_channel')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_message_template')),
    sa.UniqueConstraint('event', 'channel', 'language', name=op.f('uq_message_template_event_channel_language'))
    )
    op.create_table('contact_preference',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('account_id', sa.BigInteger(), nullable=False),
    sa.Column('channel', sa.String(length=10), nullable=False),
    sa.Column('category', sa.String(length=20), nullable=False),
    sa.Column('opted_out', sa.Boolean(), nullable=False),
    sa.Column('updated_at', opsline.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_by', sa.String(length=120), nullable=False),
    sa.CheckConstraint("category IN ('service','billing','collections','marketing')", name=op.f('ck_contact_preference_category')),
    sa.CheckConstraint("channel IN ('email','sms')", name=op.f('ck_contact_preference_channel')),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], name=op.f('fk_contact_preference_account_id_account'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contact_preference')),
    sa.UniqueConstraint('account_id', 'channel', 'category', name=op.f('uq_contact_preference_account_id_channel_category'))
    )
    op.create_table('contact_profile',
    sa.Column('account_id', sa.BigInteger(), nullable=False),
    sa.Column('language', sa.String(length=10), nullable=False),
    sa.Column('updated_at', opsline.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_by', sa.String(length=120), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], name=op.f('fk_contact_profile_account_id_account'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('account_id', name=op.f('pk_contact_profile'))
    )
    op.create_table('message',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('account_id', sa.BigInteger(), nullable=True),
    sa.Column('event', sa.String(length=100), nullable=False),
    sa.Column('channel', sa.String(length=10), nullable=False),
    sa.Column('category', sa.String(length=20), nullable=False),
    sa.Column('language', sa.String(length=10), nullable=False),
    sa.Column('to_addr', sa.String(length=200), nullable=True),
    sa.Column('subject', sa.Text(), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('template_id', sa.BigInteger(), nullable=True),
    sa.Column('template_version', sa.Integer(), nullable=True),
    sa.Column('subject_ref', sa.String(length=120), nullable=True),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('needs_approval', sa.Boolean(), nullable=False),
    sa.Column('created_by', sa.String(length=120), nullable=False),
    sa.Column('created_at', opsline.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('run_at', opsline.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('schedule_note', sa.String(length=300), nullable=True),
    sa.Column('decided_by', sa.String(length=120), nullable=True),
    sa.Column('decided_at', opsline.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('sent_at', opsline.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', opsline.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('external_id', sa.String(length=200), nullable=True),
    sa.Column('idempotency_key', sa.String(length=200), nullable=True),
    sa.CheckConstraint("category IN ('service','billing','collections','marketing')", name=op.f('ck_message_category')),
    sa.CheckConstraint("channel IN ('email','sms')", name=op.f('ck_message_channel')),
    sa.CheckConstraint("state IN ('awaiting_approval', 'queued', 'sent', 'failed', 'undeliverable', 'rejected', 'suppressed', 'cancelled')", name=op.f('ck_message_state')),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], name=op.f('fk_message_account_id_account'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['template_id'], ['message_template.id'], name=op.f('fk_message_template_id_message_template')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_message')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_message_idempotency_key'))
    )
    op.create_index('ix_message_account', 'message', ['account_id', 'id'], unique=False)
    op.create_index('ix_message_contacts', 'message', ['account_id', 'category', 'run_at'], unique=False)
    op.create_index('ix_message_state', 'message', ['state', 'created_at'], unique=False)
    op.create_table('message_attachment',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('message_id', sa.BigInteger(), nullable=False),
    sa.Column('filename', sa.String(length=200), nullable=False),
    sa.Column('content_type', sa.String(length=100), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=True),
    sa.Column('ref_table', sa.String(length=60), nullable=True),
    sa.Column('ref_column', sa.String(length=60), nullable=True),
    sa.Column('ref_id', sa.BigInteger(), nullable=True),
    sa.CheckConstraint('data IS NOT NULL OR (ref_table IS NOT NULL AND ref_column IS NOT NULL AND ref_id IS NOT NULL)', name=op.f('ck_message_attachment_data_or_ref')),
    sa.ForeignKeyConstraint(['message_id'], ['message.id'], name=op.f('fk_message_attachment_message_id_message'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_message_attachment'))
    )
    op.create_index(op.f('ix_message_attachment_message_id'), 'message_attachment', ['message_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_message_attachment_message_id"), table_name="message_attachment")
    op.drop_table("message_attachment")
    op.drop_index("ix_message_state", table_name="message")
    op.drop_index("ix_message_contacts", table_name="message")
    op.drop_index("ix_message_account", table_name="message")
    op.drop_table("message")
    op.drop_table("contact_profile")
    op.drop_table("contact_preference")
    op.drop_table("message_template")
    op.drop_table("contact_rule")
