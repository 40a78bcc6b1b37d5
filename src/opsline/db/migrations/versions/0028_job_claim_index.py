"""Job claims walk an index in claim order (priority, run_at, id) over queued jobs only

The claim used to fetch every due job and sort them for each claim, so draining a backlog of N jobs cost N^2 (10 ms a
claim with 3,000 due jobs on PostgreSQL, growing with the backlog); with this partial index each claim stops at the
first due entry.

Revision ID: 0028_job_claim_index
Revises: 0027_partitioning
"""
from alembic import op
import sqlalchemy as sa

revision = '0028_job_claim_index'
down_revision = '0027_partitioning'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_job_queued', 'job', ['priority', 'run_at', 'id'], unique=False,
                    postgresql_where=sa.text("state = 'queued'"), sqlite_where=sa.text("state = 'queued'"))


def downgrade() -> None:
    op.drop_index('ix_job_queued', table_name='job')
