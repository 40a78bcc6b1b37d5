"""Security and data protection: POPIA requests and what the application database role may do (issue 13)

Revision ID: 0018_security
Revises: 0017_final_account
"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401
import opsline.db.base  # noqa: F401
from sqlalchemy import Text  # noqa: F401  (autogenerate renders JSONB(astext_type=Text()))
from sqlalchemy.dialects import postgresql  # noqa: F401

revision = '0018_security'
down_revision = '0017_final_account'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # POPIA erasure requests (customers/privacy.py). The application database role is set up by `opsline db-roles`
    # (db/roles.py), not here: role names and passwords belong to the installation, not to the schema.
    op.create_table('privacy_request',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('party_id', sa.BigInteger(), nullable=False),
    sa.Column('account_id', sa.BigInteger(), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('requested_by', sa.String(length=120), nullable=False),
    sa.Column('requested_at', opsline.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('decided_by', sa.String(length=120), nullable=True),
    sa.Column('decided_at', opsline.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('erased', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=True),
    sa.CheckConstraint("state IN ('requested', 'erased', 'rejected', 'withdrawn')", name=op.f('ck_privacy_request_state')),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], name=op.f('fk_privacy_request_account_id_account')),
    sa.ForeignKeyConstraint(['party_id'], ['party.id'], name=op.f('fk_privacy_request_party_id_party')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_privacy_request'))
    )
    with op.batch_alter_table('privacy_request', schema=None) as batch_op:
        batch_op.create_index('ix_privacy_request_party', ['party_id', 'state'], unique=False)
    _memo_trigger(redactable='body')


MEMO_MESSAGE = "memos are never edited or deleted"
MEMO_COLUMNS = ('id', 'account_id', 'created_at', 'author', 'category', 'body')


def _memo_trigger(*, redactable: str | None) -> None:
    """Memos stay append-only; a POPIA erasure may only replace a body with a redaction marker (db.base.append_only_sql)."""
    dialect = op.get_bind().dialect.name
    if dialect == 'sqlite':
        op.execute("DROP TRIGGER IF EXISTS memo_no_update")
    for stmt in opsline.db.base.append_only_sql('memo', dialect, MEMO_MESSAGE, redactable=redactable, columns=MEMO_COLUMNS):
        if dialect == 'postgresql' and stmt.startswith('CREATE TRIGGER'):
            continue  # the trigger stays; only its function changes
        if dialect == 'sqlite' and 'memo_no_delete' in stmt:
            continue
        op.execute(stmt)


def downgrade() -> None:
    _memo_trigger(redactable=None)
    with op.batch_alter_table('privacy_request', schema=None) as batch_op:
        batch_op.drop_index('ix_privacy_request_party')
    op.drop_table('privacy_request')
