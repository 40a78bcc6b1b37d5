"""Cancellations speed (issue 12): running totals of the journey steps for the SLA report

Steps counted per UTC due date, code, state and done-late flag in cancellation_step_total, kept by triggers on
cancellation_step (statement-level with transition tables on PostgreSQL, row triggers on SQLite) in the writer's own
transaction; existing steps are counted here. The statements are frozen copies of opsline.cancellations.totals.

Revision ID: 0022_cancellations_totals
Revises: 0021_cancellation_prevention
"""
from alembic import op
import sqlalchemy as sa

revision = '0022_cancellations_totals'
down_revision = '0021_cancellation_prevention'
branch_labels = None
depends_on = None

PG_DDL = ['CREATE OR REPLACE FUNCTION cancellation_step_total_ins() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO cancellation_step_total AS t '
 "(due_date, code, state, late, n) SELECT due_date, code, state, late, SUM(d) FROM (SELECT CAST((due_at AT TIME ZONE 'UTC') AS DATE) AS due_date, "
 "code, state, COALESCE(state = 'done' AND done_at > due_at, false) AS late, 1 AS d FROM new_rows WHERE due_at IS NOT NULL) k GROUP BY due_date, "
 'code, state, late HAVING SUM(d) <> 0 ORDER BY due_date, code, state, late ON CONFLICT (due_date, code, state, late) DO UPDATE SET n = t.n + '
 'EXCLUDED.n; RETURN NULL; END $$',
 'CREATE OR REPLACE FUNCTION cancellation_step_total_del() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO cancellation_step_total AS t '
 "(due_date, code, state, late, n) SELECT due_date, code, state, late, SUM(d) FROM (SELECT CAST((due_at AT TIME ZONE 'UTC') AS DATE) AS due_date, "
 "code, state, COALESCE(state = 'done' AND done_at > due_at, false) AS late, -1 AS d FROM old_rows WHERE due_at IS NOT NULL) k GROUP BY due_date, "
 'code, state, late HAVING SUM(d) <> 0 ORDER BY due_date, code, state, late ON CONFLICT (due_date, code, state, late) DO UPDATE SET n = t.n + '
 'EXCLUDED.n; RETURN NULL; END $$',
 'CREATE OR REPLACE FUNCTION cancellation_step_total_upd() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO cancellation_step_total AS t '
 "(due_date, code, state, late, n) SELECT due_date, code, state, late, SUM(d) FROM (SELECT CAST((due_at AT TIME ZONE 'UTC') AS DATE) AS due_date, "
 "code, state, COALESCE(state = 'done' AND done_at > due_at, false) AS late, -1 AS d FROM old_rows WHERE due_at IS NOT NULL UNION ALL SELECT "
 "CAST((due_at AT TIME ZONE 'UTC') AS DATE) AS due_date, code, state, COALESCE(state = 'done' AND done_at > due_at, false) AS late, 1 AS d FROM "
 'new_rows WHERE due_at IS NOT NULL) k GROUP BY due_date, code, state, late HAVING SUM(d) <> 0 ORDER BY due_date, code, state, late ON CONFLICT '
 '(due_date, code, state, late) DO UPDATE SET n = t.n + EXCLUDED.n; RETURN NULL; END $$',
 'CREATE TRIGGER cancellation_step_total_ins AFTER INSERT ON cancellation_step REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION '
 'cancellation_step_total_ins()',
 'CREATE TRIGGER cancellation_step_total_upd AFTER UPDATE ON cancellation_step REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH '
 'STATEMENT EXECUTE FUNCTION cancellation_step_total_upd()',
 'CREATE TRIGGER cancellation_step_total_del AFTER DELETE ON cancellation_step REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION '
 'cancellation_step_total_del()']

PG_DROP = ['DROP TRIGGER IF EXISTS cancellation_step_total_ins ON cancellation_step',
 'DROP TRIGGER IF EXISTS cancellation_step_total_upd ON cancellation_step',
 'DROP TRIGGER IF EXISTS cancellation_step_total_del ON cancellation_step',
 'DROP FUNCTION IF EXISTS cancellation_step_total_ins()',
 'DROP FUNCTION IF EXISTS cancellation_step_total_upd()',
 'DROP FUNCTION IF EXISTS cancellation_step_total_del()']

SQLITE_DDL = ['CREATE TRIGGER IF NOT EXISTS cancellation_step_total_ins AFTER INSERT ON cancellation_step WHEN NEW.due_at IS NOT NULL BEGIN INSERT INTO '
 "cancellation_step_total (due_date, code, state, late, n) SELECT date(NEW.due_at), NEW.code, NEW.state, COALESCE(NEW.state = 'done' AND NEW.done_at "
 '> NEW.due_at, 0), 1 WHERE true ON CONFLICT (due_date, code, state, late) DO UPDATE SET n = n + excluded.n; END',
 'CREATE TRIGGER IF NOT EXISTS cancellation_step_total_del AFTER DELETE ON cancellation_step WHEN OLD.due_at IS NOT NULL BEGIN INSERT INTO '
 "cancellation_step_total (due_date, code, state, late, n) SELECT date(OLD.due_at), OLD.code, OLD.state, COALESCE(OLD.state = 'done' AND OLD.done_at "
 '> OLD.due_at, 0), -1 WHERE true ON CONFLICT (due_date, code, state, late) DO UPDATE SET n = n + excluded.n; END',
 'CREATE TRIGGER IF NOT EXISTS cancellation_step_total_upd_old AFTER UPDATE OF code, state, due_at, done_at ON cancellation_step WHEN OLD.due_at IS '
 "NOT NULL AND (OLD.code IS NOT NEW.code OR OLD.state IS NOT NEW.state OR date(OLD.due_at) IS NOT date(NEW.due_at) OR COALESCE(OLD.state = 'done' "
 "AND OLD.done_at > OLD.due_at, 0) IS NOT COALESCE(NEW.state = 'done' AND NEW.done_at > NEW.due_at, 0)) BEGIN INSERT INTO cancellation_step_total "
 "(due_date, code, state, late, n) SELECT date(OLD.due_at), OLD.code, OLD.state, COALESCE(OLD.state = 'done' AND OLD.done_at > OLD.due_at, 0), -1 "
 'WHERE true ON CONFLICT (due_date, code, state, late) DO UPDATE SET n = n + excluded.n; END',
 'CREATE TRIGGER IF NOT EXISTS cancellation_step_total_upd_new AFTER UPDATE OF code, state, due_at, done_at ON cancellation_step WHEN NEW.due_at IS '
 "NOT NULL AND (OLD.code IS NOT NEW.code OR OLD.state IS NOT NEW.state OR date(OLD.due_at) IS NOT date(NEW.due_at) OR COALESCE(OLD.state = 'done' "
 "AND OLD.done_at > OLD.due_at, 0) IS NOT COALESCE(NEW.state = 'done' AND NEW.done_at > NEW.due_at, 0)) BEGIN INSERT INTO cancellation_step_total "
 "(due_date, code, state, late, n) SELECT date(NEW.due_at), NEW.code, NEW.state, COALESCE(NEW.state = 'done' AND NEW.done_at > NEW.due_at, 0), 1 "
 'WHERE true ON CONFLICT (due_date, code, state, late) DO UPDATE SET n = n + excluded.n; END']

SQLITE_DROP = ['DROP TRIGGER IF EXISTS cancellation_step_total_ins',
 'DROP TRIGGER IF EXISTS cancellation_step_total_del',
 'DROP TRIGGER IF EXISTS cancellation_step_total_upd_old',
 'DROP TRIGGER IF EXISTS cancellation_step_total_upd_new']

BACKFILL = {'postgresql': "INSERT INTO cancellation_step_total (due_date, code, state, late, n) SELECT CAST((due_at AT TIME ZONE 'UTC') AS DATE), code, state, "
               "COALESCE(state = 'done' AND done_at > due_at, false), COUNT(*) FROM cancellation_step WHERE due_at IS NOT NULL GROUP BY CAST((due_at "
               "AT TIME ZONE 'UTC') AS DATE), code, state, COALESCE(state = 'done' AND done_at > due_at, false)",
 'sqlite': "INSERT INTO cancellation_step_total (due_date, code, state, late, n) SELECT date(due_at), code, state, COALESCE(state = 'done' AND "
           'done_at > due_at, 0), COUNT(*) FROM cancellation_step WHERE due_at IS NOT NULL GROUP BY date(due_at), code, state, COALESCE(state = '
           "'done' AND done_at > due_at, 0)"}


def upgrade() -> None:
    op.create_table('cancellation_step_total',
    sa.Column('due_date', sa.Date(), nullable=False),
    sa.Column('code', sa.String(length=30), nullable=False),
    sa.Column('state', sa.String(length=10), nullable=False),
    sa.Column('late', sa.Boolean(), nullable=False),
    sa.Column('n', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('due_date', 'code', 'state', 'late', name=op.f('pk_cancellation_step_total'))
    )
    with op.batch_alter_table('cancellation_step_total', schema=None) as batch_op:
        batch_op.create_index('ix_cancellation_step_total_code', ['code', 'state', 'due_date'], unique=False)
    dialect = op.get_bind().dialect.name
    # the triggers first: on PostgreSQL creating them locks out writers of cancellation_step until this transaction
    # ends, so the steps counted next are exactly those the triggers did not see
    for stmt in PG_DDL if dialect == 'postgresql' else SQLITE_DDL:
        op.execute(stmt)
    op.execute(BACKFILL[dialect])


def downgrade() -> None:
    for stmt in PG_DROP if op.get_bind().dialect.name == 'postgresql' else SQLITE_DROP:
        op.execute(stmt)
    with op.batch_alter_table('cancellation_step_total', schema=None) as batch_op:
        batch_op.drop_index('ix_cancellation_step_total_code')
    op.drop_table('cancellation_step_total')
