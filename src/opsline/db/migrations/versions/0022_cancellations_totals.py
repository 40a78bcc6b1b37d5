"""Cancellations speed (issue 12): running totals of the journey steps and journeys, and two indexes of open journeys

cancellation_step_total (steps per UTC due date, code, state, done late: the SLA report) and cancellation_journey_total
(journeys per notice month, kind, reason, retention outcome, FNO flags, open, current step, at risk: the volume report,
the board's counts, the home cards), kept by triggers on cancellation_step and cancellation_journey (statement-level
with transition tables on PostgreSQL, row triggers on SQLite) in the writer's own transaction; the rows already there
are counted here. Open journeys by next due time (the overdue / due-today counts as index-only range scans) and by
creation (the oldest). The statements are frozen copies of opsline.cancellations.totals.

Revision ID: 0022_cancellations_totals
Revises: 0021_cancellation_prevention
"""
from alembic import op
import sqlalchemy as sa

revision = '0022_cancellations_totals'
down_revision = '0021_cancellation_prevention'
branch_labels = None
depends_on = None

OPEN = "state IN ('requested', 'retention', 'confirmed', 'deactivation_sent', 'deactivation_confirmed', 'equipment_collection', 'final_billing')"

PG_DDL = ['CREATE OR REPLACE FUNCTION cancellation_step_total_ins() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO cancellation_step_total AS t '
 "(due_date, code, state, late, n) SELECT due_date, code, state, late, SUM(d) FROM (SELECT CAST((due_at AT TIME ZONE 'UTC') AS DATE) AS due_date, "
 "code AS code, state AS state, COALESCE(state = 'done' AND done_at > due_at, false) AS late, 1 AS d FROM new_rows WHERE due_at IS NOT NULL) k GROUP "
 'BY due_date, code, state, late HAVING SUM(d) <> 0 ORDER BY due_date, code, state, late ON CONFLICT (due_date, code, state, late) DO UPDATE SET n = '
 't.n + EXCLUDED.n; RETURN NULL; END $$',
 'CREATE OR REPLACE FUNCTION cancellation_step_total_del() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO cancellation_step_total AS t '
 "(due_date, code, state, late, n) SELECT due_date, code, state, late, SUM(d) FROM (SELECT CAST((due_at AT TIME ZONE 'UTC') AS DATE) AS due_date, "
 "code AS code, state AS state, COALESCE(state = 'done' AND done_at > due_at, false) AS late, -1 AS d FROM old_rows WHERE due_at IS NOT NULL) k "
 'GROUP BY due_date, code, state, late HAVING SUM(d) <> 0 ORDER BY due_date, code, state, late ON CONFLICT (due_date, code, state, late) DO UPDATE '
 'SET n = t.n + EXCLUDED.n; RETURN NULL; END $$',
 'CREATE OR REPLACE FUNCTION cancellation_step_total_upd() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO cancellation_step_total AS t '
 "(due_date, code, state, late, n) SELECT due_date, code, state, late, SUM(d) FROM (SELECT CAST((due_at AT TIME ZONE 'UTC') AS DATE) AS due_date, "
 "code AS code, state AS state, COALESCE(state = 'done' AND done_at > due_at, false) AS late, -1 AS d FROM old_rows WHERE due_at IS NOT NULL UNION "
 "ALL SELECT CAST((due_at AT TIME ZONE 'UTC') AS DATE) AS due_date, code AS code, state AS state, COALESCE(state = 'done' AND done_at > due_at, "
 'false) AS late, 1 AS d FROM new_rows WHERE due_at IS NOT NULL) k GROUP BY due_date, code, state, late HAVING SUM(d) <> 0 ORDER BY due_date, code, '
 'state, late ON CONFLICT (due_date, code, state, late) DO UPDATE SET n = t.n + EXCLUDED.n; RETURN NULL; END $$',
 'CREATE TRIGGER cancellation_step_total_ins AFTER INSERT ON cancellation_step REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION '
 'cancellation_step_total_ins()',
 'CREATE TRIGGER cancellation_step_total_del AFTER DELETE ON cancellation_step REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION '
 'cancellation_step_total_del()',
 'CREATE TRIGGER cancellation_step_total_upd AFTER UPDATE ON cancellation_step REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH '
 'STATEMENT EXECUTE FUNCTION cancellation_step_total_upd()',
 'CREATE OR REPLACE FUNCTION cancellation_journey_total_ins() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO cancellation_journey_total AS '
 't (month, kind, reason_code, retention_outcome, partner_code, fno_confirmed, fno_late, fno_waiting, open, current_step, at_risk, n) SELECT month, '
 'kind, reason_code, retention_outcome, partner_code, fno_confirmed, fno_late, fno_waiting, open, current_step, at_risk, SUM(d) FROM (SELECT '
 "CAST(date_trunc('month', notice_date) AS DATE) AS month, kind AS kind, reason_code AS reason_code, COALESCE(retention_outcome, '') AS "
 "retention_outcome, COALESCE(partner_code, '') AS partner_code, fno_confirmed_date IS NOT NULL AS fno_confirmed, COALESCE(fno_confirmed_date > "
 "fno_due_date, false) AS fno_late, (fno_confirmed_date IS NULL AND service_order_id IS NOT NULL AND state = 'deactivation_sent') AS fno_waiting, "
 "(state IN ('requested', 'retention', 'confirmed', 'deactivation_sent', 'deactivation_confirmed', 'equipment_collection', 'final_billing')) AS "
 "open, COALESCE(CASE WHEN state IN ('requested', 'retention', 'confirmed', 'deactivation_sent', 'deactivation_confirmed', 'equipment_collection', "
 "'final_billing') THEN current_step END, '') AS current_step, COALESCE(state IN ('requested', 'retention', 'confirmed', 'deactivation_sent', "
 "'deactivation_confirmed', 'equipment_collection', 'final_billing') AND at_risk, false) AS at_risk, 1 AS d FROM new_rows WHERE true) k GROUP BY "
 'month, kind, reason_code, retention_outcome, partner_code, fno_confirmed, fno_late, fno_waiting, open, current_step, at_risk HAVING SUM(d) <> 0 '
 'ORDER BY month, kind, reason_code, retention_outcome, partner_code, fno_confirmed, fno_late, fno_waiting, open, current_step, at_risk ON CONFLICT '
 '(month, kind, reason_code, retention_outcome, partner_code, fno_confirmed, fno_late, fno_waiting, open, current_step, at_risk) DO UPDATE SET n = '
 't.n + EXCLUDED.n; RETURN NULL; END $$',
 'CREATE OR REPLACE FUNCTION cancellation_journey_total_del() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO cancellation_journey_total AS '
 't (month, kind, reason_code, retention_outcome, partner_code, fno_confirmed, fno_late, fno_waiting, open, current_step, at_risk, n) SELECT month, '
 'kind, reason_code, retention_outcome, partner_code, fno_confirmed, fno_late, fno_waiting, open, current_step, at_risk, SUM(d) FROM (SELECT '
 "CAST(date_trunc('month', notice_date) AS DATE) AS month, kind AS kind, reason_code AS reason_code, COALESCE(retention_outcome, '') AS "
 "retention_outcome, COALESCE(partner_code, '') AS partner_code, fno_confirmed_date IS NOT NULL AS fno_confirmed, COALESCE(fno_confirmed_date > "
 "fno_due_date, false) AS fno_late, (fno_confirmed_date IS NULL AND service_order_id IS NOT NULL AND state = 'deactivation_sent') AS fno_waiting, "
 "(state IN ('requested', 'retention', 'confirmed', 'deactivation_sent', 'deactivation_confirmed', 'equipment_collection', 'final_billing')) AS "
 "open, COALESCE(CASE WHEN state IN ('requested', 'retention', 'confirmed', 'deactivation_sent', 'deactivation_confirmed', 'equipment_collection', "
 "'final_billing') THEN current_step END, '') AS current_step, COALESCE(state IN ('requested', 'retention', 'confirmed', 'deactivation_sent', "
 "'deactivation_confirmed', 'equipment_collection', 'final_billing') AND at_risk, false) AS at_risk, -1 AS d FROM old_rows WHERE true) k GROUP BY "
 'month, kind, reason_code, retention_outcome, partner_code, fno_confirmed, fno_late, fno_waiting, open, current_step, at_risk HAVING SUM(d) <> 0 '
 'ORDER BY month, kind, reason_code, retention_outcome, partner_code, fno_confirmed, fno_late, fno_waiting, open, current_step, at_risk ON CONFLICT '
 '(month, kind, reason_code, retention_outcome, partner_code, fno_confirmed, fno_late, fno_waiting, open, current_step, at_risk) DO UPDATE SET n = '
 't.n + EXCLUDED.n; RETURN NULL; END $$',
 'CREATE OR REPLACE FUNCTION cancellation_journey_total_upd() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO cancellation_journey_total AS '
 't (month, kind, reason_code, retention_outcome, partner_code, fno_confirmed, fno_late, fno_waiting, open, current_step, at_risk, n) SELECT month, '
 'kind, reason_code, retention_outcome, partner_code, fno_confirmed, fno_late, fno_waiting, open, current_step, at_risk, SUM(d) FROM (SELECT '
 "CAST(date_trunc('month', notice_date) AS DATE) AS month, kind AS kind, reason_code AS reason_code, COALESCE(retention_outcome, '') AS "
 "retention_outcome, COALESCE(partner_code, '') AS partner_code, fno_confirmed_date IS NOT NULL AS fno_confirmed, COALESCE(fno_confirmed_date > "
 "fno_due_date, false) AS fno_late, (fno_confirmed_date IS NULL AND service_order_id IS NOT NULL AND state = 'deactivation_sent') AS fno_waiting, "
 "(state IN ('requested', 'retention', 'confirmed', 'deactivation_sent', 'deactivation_confirmed', 'equipment_collection', 'final_billing')) AS "
 "open, COALESCE(CASE WHEN state IN ('requested', 'retention', 'confirmed', 'deactivation_sent', 'deactivation_confirmed', 'equipment_collection', "
 "'final_billing') THEN current_step END, '') AS current_step, COALESCE(state IN ('requested', 'retention', 'confirmed', 'deactivation_sent', "
 "'deactivation_confirmed', 'equipment_collection', 'final_billing') AND at_risk, false) AS at_risk, -1 AS d FROM old_rows WHERE true UNION ALL "
 "SELECT CAST(date_trunc('month', notice_date) AS DATE) AS month, kind AS kind, reason_code AS reason_code, COALESCE(retention_outcome, '') AS "
 "retention_outcome, COALESCE(partner_code, '') AS partner_code, fno_confirmed_date IS NOT NULL AS fno_confirmed, COALESCE(fno_confirmed_date > "
 "fno_due_date, false) AS fno_late, (fno_confirmed_date IS NULL AND service_order_id IS NOT NULL AND state = 'deactivation_sent') AS fno_waiting, "
 "(state IN ('requested', 'retention', 'confirmed', 'deactivation_sent', 'deactivation_confirmed', 'equipment_collection', 'final_billing')) AS "
 "open, COALESCE(CASE WHEN state IN ('requested', 'retention', 'confirmed', 'deactivation_sent', 'deactivation_confirmed', 'equipment_collection', "
 "'final_billing') THEN current_step END, '') AS current_step, COALESCE(state IN ('requested', 'retention', 'confirmed', 'deactivation_sent', "
 "'deactivation_confirmed', 'equipment_collection', 'final_billing') AND at_risk, false) AS at_risk, 1 AS d FROM new_rows WHERE true) k GROUP BY "
 'month, kind, reason_code, retention_outcome, partner_code, fno_confirmed, fno_late, fno_waiting, open, current_step, at_risk HAVING SUM(d) <> 0 '
 'ORDER BY month, kind, reason_code, retention_outcome, partner_code, fno_confirmed, fno_late, fno_waiting, open, current_step, at_risk ON CONFLICT '
 '(month, kind, reason_code, retention_outcome, partner_code, fno_confirmed, fno_late, fno_waiting, open, current_step, at_risk) DO UPDATE SET n = '
 't.n + EXCLUDED.n; RETURN NULL; END $$',
 'CREATE TRIGGER cancellation_journey_total_ins AFTER INSERT ON cancellation_journey REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE '
 'FUNCTION cancellation_journey_total_ins()',
 'CREATE TRIGGER cancellation_journey_total_del AFTER DELETE ON cancellation_journey REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE '
 'FUNCTION cancellation_journey_total_del()',
 'CREATE TRIGGER cancellation_journey_total_upd AFTER UPDATE ON cancellation_journey REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR '
 'EACH STATEMENT EXECUTE FUNCTION cancellation_journey_total_upd()']

PG_DROP = ['DROP TRIGGER IF EXISTS cancellation_step_total_ins ON cancellation_step',
 'DROP TRIGGER IF EXISTS cancellation_step_total_upd ON cancellation_step',
 'DROP TRIGGER IF EXISTS cancellation_step_total_del ON cancellation_step',
 'DROP FUNCTION IF EXISTS cancellation_step_total_ins()',
 'DROP FUNCTION IF EXISTS cancellation_step_total_upd()',
 'DROP FUNCTION IF EXISTS cancellation_step_total_del()',
 'DROP TRIGGER IF EXISTS cancellation_journey_total_ins ON cancellation_journey',
 'DROP TRIGGER IF EXISTS cancellation_journey_total_upd ON cancellation_journey',
 'DROP TRIGGER IF EXISTS cancellation_journey_total_del ON cancellation_journey',
 'DROP FUNCTION IF EXISTS cancellation_journey_total_ins()',
 'DROP FUNCTION IF EXISTS cancellation_journey_total_upd()',
 'DROP FUNCTION IF EXISTS cancellation_journey_total_del()']

SQLITE_DDL = ['CREATE TRIGGER IF NOT EXISTS cancellation_step_total_ins AFTER INSERT ON cancellation_step WHEN NEW.due_at IS NOT NULL BEGIN INSERT INTO '
 "cancellation_step_total (due_date, code, state, late, n) SELECT date(NEW.due_at), NEW.code, NEW.state, COALESCE(NEW.state = 'done' AND NEW.done_at "
 '> NEW.due_at, 0), 1 WHERE true ON CONFLICT (due_date, code, state, late) DO UPDATE SET n = n + excluded.n; END',
 'CREATE TRIGGER IF NOT EXISTS cancellation_step_total_del AFTER DELETE ON cancellation_step WHEN OLD.due_at IS NOT NULL BEGIN INSERT INTO '
 "cancellation_step_total (due_date, code, state, late, n) SELECT date(OLD.due_at), OLD.code, OLD.state, COALESCE(OLD.state = 'done' AND OLD.done_at "
 '> OLD.due_at, 0), -1 WHERE true ON CONFLICT (due_date, code, state, late) DO UPDATE SET n = n + excluded.n; END',
 'CREATE TRIGGER IF NOT EXISTS cancellation_step_total_upd_old AFTER UPDATE OF code, state, due_at, done_at ON cancellation_step WHEN OLD.due_at IS '
 "NOT NULL AND (date(OLD.due_at) IS NOT date(NEW.due_at) OR OLD.code IS NOT NEW.code OR OLD.state IS NOT NEW.state OR COALESCE(OLD.state = 'done' "
 "AND OLD.done_at > OLD.due_at, 0) IS NOT COALESCE(NEW.state = 'done' AND NEW.done_at > NEW.due_at, 0)) BEGIN INSERT INTO cancellation_step_total "
 "(due_date, code, state, late, n) SELECT date(OLD.due_at), OLD.code, OLD.state, COALESCE(OLD.state = 'done' AND OLD.done_at > OLD.due_at, 0), -1 "
 'WHERE true ON CONFLICT (due_date, code, state, late) DO UPDATE SET n = n + excluded.n; END',
 'CREATE TRIGGER IF NOT EXISTS cancellation_step_total_upd_new AFTER UPDATE OF code, state, due_at, done_at ON cancellation_step WHEN NEW.due_at IS '
 "NOT NULL AND (date(OLD.due_at) IS NOT date(NEW.due_at) OR OLD.code IS NOT NEW.code OR OLD.state IS NOT NEW.state OR COALESCE(OLD.state = 'done' "
 "AND OLD.done_at > OLD.due_at, 0) IS NOT COALESCE(NEW.state = 'done' AND NEW.done_at > NEW.due_at, 0)) BEGIN INSERT INTO cancellation_step_total "
 "(due_date, code, state, late, n) SELECT date(NEW.due_at), NEW.code, NEW.state, COALESCE(NEW.state = 'done' AND NEW.done_at > NEW.due_at, 0), 1 "
 'WHERE true ON CONFLICT (due_date, code, state, late) DO UPDATE SET n = n + excluded.n; END',
 'CREATE TRIGGER IF NOT EXISTS cancellation_journey_total_ins AFTER INSERT ON cancellation_journey WHEN true BEGIN INSERT INTO '
 'cancellation_journey_total (month, kind, reason_code, retention_outcome, partner_code, fno_confirmed, fno_late, fno_waiting, open, current_step, '
 "at_risk, n) SELECT date(NEW.notice_date, 'start of month'), NEW.kind, NEW.reason_code, COALESCE(NEW.retention_outcome, ''), "
 "COALESCE(NEW.partner_code, ''), NEW.fno_confirmed_date IS NOT NULL, COALESCE(NEW.fno_confirmed_date > NEW.fno_due_date, 0), "
 "(NEW.fno_confirmed_date IS NULL AND NEW.service_order_id IS NOT NULL AND NEW.state = 'deactivation_sent'), (NEW.state IN ('requested', "
 "'retention', 'confirmed', 'deactivation_sent', 'deactivation_confirmed', 'equipment_collection', 'final_billing')), COALESCE(CASE WHEN NEW.state "
 "IN ('requested', 'retention', 'confirmed', 'deactivation_sent', 'deactivation_confirmed', 'equipment_collection', 'final_billing') THEN "
 "NEW.current_step END, ''), COALESCE(NEW.state IN ('requested', 'retention', 'confirmed', 'deactivation_sent', 'deactivation_confirmed', "
 "'equipment_collection', 'final_billing') AND NEW.at_risk, 0), 1 WHERE true ON CONFLICT (month, kind, reason_code, retention_outcome, partner_code, "
 'fno_confirmed, fno_late, fno_waiting, open, current_step, at_risk) DO UPDATE SET n = n + excluded.n; END',
 'CREATE TRIGGER IF NOT EXISTS cancellation_journey_total_del AFTER DELETE ON cancellation_journey WHEN true BEGIN INSERT INTO '
 'cancellation_journey_total (month, kind, reason_code, retention_outcome, partner_code, fno_confirmed, fno_late, fno_waiting, open, current_step, '
 "at_risk, n) SELECT date(OLD.notice_date, 'start of month'), OLD.kind, OLD.reason_code, COALESCE(OLD.retention_outcome, ''), "
 "COALESCE(OLD.partner_code, ''), OLD.fno_confirmed_date IS NOT NULL, COALESCE(OLD.fno_confirmed_date > OLD.fno_due_date, 0), "
 "(OLD.fno_confirmed_date IS NULL AND OLD.service_order_id IS NOT NULL AND OLD.state = 'deactivation_sent'), (OLD.state IN ('requested', "
 "'retention', 'confirmed', 'deactivation_sent', 'deactivation_confirmed', 'equipment_collection', 'final_billing')), COALESCE(CASE WHEN OLD.state "
 "IN ('requested', 'retention', 'confirmed', 'deactivation_sent', 'deactivation_confirmed', 'equipment_collection', 'final_billing') THEN "
 "OLD.current_step END, ''), COALESCE(OLD.state IN ('requested', 'retention', 'confirmed', 'deactivation_sent', 'deactivation_confirmed', "
 "'equipment_collection', 'final_billing') AND OLD.at_risk, 0), -1 WHERE true ON CONFLICT (month, kind, reason_code, retention_outcome, "
 'partner_code, fno_confirmed, fno_late, fno_waiting, open, current_step, at_risk) DO UPDATE SET n = n + excluded.n; END',
 'CREATE TRIGGER IF NOT EXISTS cancellation_journey_total_upd_old AFTER UPDATE OF notice_date, kind, reason_code, retention_outcome, partner_code, '
 'fno_confirmed_date, fno_due_date, service_order_id, state, current_step, at_risk ON cancellation_journey WHEN true AND (date(OLD.notice_date, '
 "'start of month') IS NOT date(NEW.notice_date, 'start of month') OR OLD.kind IS NOT NEW.kind OR OLD.reason_code IS NOT NEW.reason_code OR "
 "COALESCE(OLD.retention_outcome, '') IS NOT COALESCE(NEW.retention_outcome, '') OR COALESCE(OLD.partner_code, '') IS NOT COALESCE(NEW.partner_code, "
 "'') OR OLD.fno_confirmed_date IS NOT NULL IS NOT NEW.fno_confirmed_date IS NOT NULL OR COALESCE(OLD.fno_confirmed_date > OLD.fno_due_date, 0) IS "
 'NOT COALESCE(NEW.fno_confirmed_date > NEW.fno_due_date, 0) OR (OLD.fno_confirmed_date IS NULL AND OLD.service_order_id IS NOT NULL AND OLD.state = '
 "'deactivation_sent') IS NOT (NEW.fno_confirmed_date IS NULL AND NEW.service_order_id IS NOT NULL AND NEW.state = 'deactivation_sent') OR "
 "(OLD.state IN ('requested', 'retention', 'confirmed', 'deactivation_sent', 'deactivation_confirmed', 'equipment_collection', 'final_billing')) IS "
 "NOT (NEW.state IN ('requested', 'retention', 'confirmed', 'deactivation_sent', 'deactivation_confirmed', 'equipment_collection', 'final_billing')) "
 "OR COALESCE(CASE WHEN OLD.state IN ('requested', 'retention', 'confirmed', 'deactivation_sent', 'deactivation_confirmed', 'equipment_collection', "
 "'final_billing') THEN OLD.current_step END, '') IS NOT COALESCE(CASE WHEN NEW.state IN ('requested', 'retention', 'confirmed', "
 "'deactivation_sent', 'deactivation_confirmed', 'equipment_collection', 'final_billing') THEN NEW.current_step END, '') OR COALESCE(OLD.state IN "
 "('requested', 'retention', 'confirmed', 'deactivation_sent', 'deactivation_confirmed', 'equipment_collection', 'final_billing') AND OLD.at_risk, "
 "0) IS NOT COALESCE(NEW.state IN ('requested', 'retention', 'confirmed', 'deactivation_sent', 'deactivation_confirmed', 'equipment_collection', "
 "'final_billing') AND NEW.at_risk, 0)) BEGIN INSERT INTO cancellation_journey_total (month, kind, reason_code, retention_outcome, partner_code, "
 "fno_confirmed, fno_late, fno_waiting, open, current_step, at_risk, n) SELECT date(OLD.notice_date, 'start of month'), OLD.kind, OLD.reason_code, "
 "COALESCE(OLD.retention_outcome, ''), COALESCE(OLD.partner_code, ''), OLD.fno_confirmed_date IS NOT NULL, COALESCE(OLD.fno_confirmed_date > "
 "OLD.fno_due_date, 0), (OLD.fno_confirmed_date IS NULL AND OLD.service_order_id IS NOT NULL AND OLD.state = 'deactivation_sent'), (OLD.state IN "
 "('requested', 'retention', 'confirmed', 'deactivation_sent', 'deactivation_confirmed', 'equipment_collection', 'final_billing')), COALESCE(CASE "
 "WHEN OLD.state IN ('requested', 'retention', 'confirmed', 'deactivation_sent', 'deactivation_confirmed', 'equipment_collection', 'final_billing') "
 "THEN OLD.current_step END, ''), COALESCE(OLD.state IN ('requested', 'retention', 'confirmed', 'deactivation_sent', 'deactivation_confirmed', "
 "'equipment_collection', 'final_billing') AND OLD.at_risk, 0), -1 WHERE true ON CONFLICT (month, kind, reason_code, retention_outcome, "
 'partner_code, fno_confirmed, fno_late, fno_waiting, open, current_step, at_risk) DO UPDATE SET n = n + excluded.n; END',
 'CREATE TRIGGER IF NOT EXISTS cancellation_journey_total_upd_new AFTER UPDATE OF notice_date, kind, reason_code, retention_outcome, partner_code, '
 'fno_confirmed_date, fno_due_date, service_order_id, state, current_step, at_risk ON cancellation_journey WHEN true AND (date(OLD.notice_date, '
 "'start of month') IS NOT date(NEW.notice_date, 'start of month') OR OLD.kind IS NOT NEW.kind OR OLD.reason_code IS NOT NEW.reason_code OR "
 "COALESCE(OLD.retention_outcome, '') IS NOT COALESCE(NEW.retention_outcome, '') OR COALESCE(OLD.partner_code, '') IS NOT COALESCE(NEW.partner_code, "
 "'') OR OLD.fno_confirmed_date IS NOT NULL IS NOT NEW.fno_confirmed_date IS NOT NULL OR COALESCE(OLD.fno_confirmed_date > OLD.fno_due_date, 0) IS "
 'NOT COALESCE(NEW.fno_confirmed_date > NEW.fno_due_date, 0) OR (OLD.fno_confirmed_date IS NULL AND OLD.service_order_id IS NOT NULL AND OLD.state = '
 "'deactivation_sent') IS NOT (NEW.fno_confirmed_date IS NULL AND NEW.service_order_id IS NOT NULL AND NEW.state = 'deactivation_sent') OR "
 "(OLD.state IN ('requested', 'retention', 'confirmed', 'deactivation_sent', 'deactivation_confirmed', 'equipment_collection', 'final_billing')) IS "
 "NOT (NEW.state IN ('requested', 'retention', 'confirmed', 'deactivation_sent', 'deactivation_confirmed', 'equipment_collection', 'final_billing')) "
 "OR COALESCE(CASE WHEN OLD.state IN ('requested', 'retention', 'confirmed', 'deactivation_sent', 'deactivation_confirmed', 'equipment_collection', "
 "'final_billing') THEN OLD.current_step END, '') IS NOT COALESCE(CASE WHEN NEW.state IN ('requested', 'retention', 'confirmed', "
 "'deactivation_sent', 'deactivation_confirmed', 'equipment_collection', 'final_billing') THEN NEW.current_step END, '') OR COALESCE(OLD.state IN "
 "('requested', 'retention', 'confirmed', 'deactivation_sent', 'deactivation_confirmed', 'equipment_collection', 'final_billing') AND OLD.at_risk, "
 "0) IS NOT COALESCE(NEW.state IN ('requested', 'retention', 'confirmed', 'deactivation_sent', 'deactivation_confirmed', 'equipment_collection', "
 "'final_billing') AND NEW.at_risk, 0)) BEGIN INSERT INTO cancellation_journey_total (month, kind, reason_code, retention_outcome, partner_code, "
 "fno_confirmed, fno_late, fno_waiting, open, current_step, at_risk, n) SELECT date(NEW.notice_date, 'start of month'), NEW.kind, NEW.reason_code, "
 "COALESCE(NEW.retention_outcome, ''), COALESCE(NEW.partner_code, ''), NEW.fno_confirmed_date IS NOT NULL, COALESCE(NEW.fno_confirmed_date > "
 "NEW.fno_due_date, 0), (NEW.fno_confirmed_date IS NULL AND NEW.service_order_id IS NOT NULL AND NEW.state = 'deactivation_sent'), (NEW.state IN "
 "('requested', 'retention', 'confirmed', 'deactivation_sent', 'deactivation_confirmed', 'equipment_collection', 'final_billing')), COALESCE(CASE "
 "WHEN NEW.state IN ('requested', 'retention', 'confirmed', 'deactivation_sent', 'deactivation_confirmed', 'equipment_collection', 'final_billing') "
 "THEN NEW.current_step END, ''), COALESCE(NEW.state IN ('requested', 'retention', 'confirmed', 'deactivation_sent', 'deactivation_confirmed', "
 "'equipment_collection', 'final_billing') AND NEW.at_risk, 0), 1 WHERE true ON CONFLICT (month, kind, reason_code, retention_outcome, partner_code, "
 'fno_confirmed, fno_late, fno_waiting, open, current_step, at_risk) DO UPDATE SET n = n + excluded.n; END']

SQLITE_DROP = ['DROP TRIGGER IF EXISTS cancellation_step_total_ins',
 'DROP TRIGGER IF EXISTS cancellation_step_total_del',
 'DROP TRIGGER IF EXISTS cancellation_step_total_upd_old',
 'DROP TRIGGER IF EXISTS cancellation_step_total_upd_new',
 'DROP TRIGGER IF EXISTS cancellation_journey_total_ins',
 'DROP TRIGGER IF EXISTS cancellation_journey_total_del',
 'DROP TRIGGER IF EXISTS cancellation_journey_total_upd_old',
 'DROP TRIGGER IF EXISTS cancellation_journey_total_upd_new']

BACKFILL = {'postgresql': ["INSERT INTO cancellation_step_total (due_date, code, state, late, n) SELECT CAST((due_at AT TIME ZONE 'UTC') AS DATE), code, state, "
                "COALESCE(state = 'done' AND done_at > due_at, false), COUNT(*) FROM cancellation_step WHERE due_at IS NOT NULL GROUP BY "
                "CAST((due_at AT TIME ZONE 'UTC') AS DATE), code, state, COALESCE(state = 'done' AND done_at > due_at, false)",
                'INSERT INTO cancellation_journey_total (month, kind, reason_code, retention_outcome, partner_code, fno_confirmed, fno_late, '
                "fno_waiting, open, current_step, at_risk, n) SELECT CAST(date_trunc('month', notice_date) AS DATE), kind, reason_code, "
                "COALESCE(retention_outcome, ''), COALESCE(partner_code, ''), fno_confirmed_date IS NOT NULL, COALESCE(fno_confirmed_date > "
                "fno_due_date, false), (fno_confirmed_date IS NULL AND service_order_id IS NOT NULL AND state = 'deactivation_sent'), (state IN "
                "('requested', 'retention', 'confirmed', 'deactivation_sent', 'deactivation_confirmed', 'equipment_collection', 'final_billing')), "
                "COALESCE(CASE WHEN state IN ('requested', 'retention', 'confirmed', 'deactivation_sent', 'deactivation_confirmed', "
                "'equipment_collection', 'final_billing') THEN current_step END, ''), COALESCE(state IN ('requested', 'retention', 'confirmed', "
                "'deactivation_sent', 'deactivation_confirmed', 'equipment_collection', 'final_billing') AND at_risk, false), COUNT(*) FROM "
                "cancellation_journey WHERE true GROUP BY CAST(date_trunc('month', notice_date) AS DATE), kind, reason_code, "
                "COALESCE(retention_outcome, ''), COALESCE(partner_code, ''), fno_confirmed_date IS NOT NULL, COALESCE(fno_confirmed_date > "
                "fno_due_date, false), (fno_confirmed_date IS NULL AND service_order_id IS NOT NULL AND state = 'deactivation_sent'), (state IN "
                "('requested', 'retention', 'confirmed', 'deactivation_sent', 'deactivation_confirmed', 'equipment_collection', 'final_billing')), "
                "COALESCE(CASE WHEN state IN ('requested', 'retention', 'confirmed', 'deactivation_sent', 'deactivation_confirmed', "
                "'equipment_collection', 'final_billing') THEN current_step END, ''), COALESCE(state IN ('requested', 'retention', 'confirmed', "
                "'deactivation_sent', 'deactivation_confirmed', 'equipment_collection', 'final_billing') AND at_risk, false)"],
 'sqlite': ["INSERT INTO cancellation_step_total (due_date, code, state, late, n) SELECT date(due_at), code, state, COALESCE(state = 'done' AND "
            'done_at > due_at, 0), COUNT(*) FROM cancellation_step WHERE due_at IS NOT NULL GROUP BY date(due_at), code, state, COALESCE(state = '
            "'done' AND done_at > due_at, 0)",
            'INSERT INTO cancellation_journey_total (month, kind, reason_code, retention_outcome, partner_code, fno_confirmed, fno_late, '
            "fno_waiting, open, current_step, at_risk, n) SELECT date(notice_date, 'start of month'), kind, reason_code, COALESCE(retention_outcome, "
            "''), COALESCE(partner_code, ''), fno_confirmed_date IS NOT NULL, COALESCE(fno_confirmed_date > fno_due_date, 0), (fno_confirmed_date IS "
            "NULL AND service_order_id IS NOT NULL AND state = 'deactivation_sent'), (state IN ('requested', 'retention', 'confirmed', "
            "'deactivation_sent', 'deactivation_confirmed', 'equipment_collection', 'final_billing')), COALESCE(CASE WHEN state IN ('requested', "
            "'retention', 'confirmed', 'deactivation_sent', 'deactivation_confirmed', 'equipment_collection', 'final_billing') THEN current_step "
            "END, ''), COALESCE(state IN ('requested', 'retention', 'confirmed', 'deactivation_sent', 'deactivation_confirmed', "
            "'equipment_collection', 'final_billing') AND at_risk, 0), COUNT(*) FROM cancellation_journey WHERE true GROUP BY date(notice_date, "
            "'start of month'), kind, reason_code, COALESCE(retention_outcome, ''), COALESCE(partner_code, ''), fno_confirmed_date IS NOT NULL, "
            'COALESCE(fno_confirmed_date > fno_due_date, 0), (fno_confirmed_date IS NULL AND service_order_id IS NOT NULL AND state = '
            "'deactivation_sent'), (state IN ('requested', 'retention', 'confirmed', 'deactivation_sent', 'deactivation_confirmed', "
            "'equipment_collection', 'final_billing')), COALESCE(CASE WHEN state IN ('requested', 'retention', 'confirmed', 'deactivation_sent', "
            "'deactivation_confirmed', 'equipment_collection', 'final_billing') THEN current_step END, ''), COALESCE(state IN ('requested', "
            "'retention', 'confirmed', 'deactivation_sent', 'deactivation_confirmed', 'equipment_collection', 'final_billing') AND at_risk, 0)"]}


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
    op.create_table('cancellation_journey_total',
    sa.Column('month', sa.Date(), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('reason_code', sa.String(length=30), nullable=False),
    sa.Column('retention_outcome', sa.String(length=20), nullable=False),
    sa.Column('partner_code', sa.String(length=30), nullable=False),
    sa.Column('fno_confirmed', sa.Boolean(), nullable=False),
    sa.Column('fno_late', sa.Boolean(), nullable=False),
    sa.Column('fno_waiting', sa.Boolean(), nullable=False),
    sa.Column('open', sa.Boolean(), nullable=False),
    sa.Column('current_step', sa.String(length=30), nullable=False),
    sa.Column('at_risk', sa.Boolean(), nullable=False),
    sa.Column('n', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('month', 'kind', 'reason_code', 'retention_outcome', 'partner_code', 'fno_confirmed', 'fno_late', 'fno_waiting', 'open',
                            'current_step', 'at_risk', name=op.f('pk_cancellation_journey_total'))
    )
    with op.batch_alter_table('cancellation_journey_total', schema=None) as batch_op:
        batch_op.create_index('ix_cancellation_journey_total_open', ['open', 'current_step', 'partner_code', 'reason_code', 'at_risk'], unique=False)
    with op.batch_alter_table('cancellation_journey', schema=None) as batch_op:
        batch_op.create_index('ix_cancellation_journey_open_next_due', ['next_due_at', 'current_step', 'partner_code', 'reason_code', 'at_risk'],
                              unique=False, postgresql_where=sa.text(OPEN), sqlite_where=sa.text(OPEN))
        batch_op.create_index('ix_cancellation_journey_open_created', ['created_at'], unique=False, postgresql_where=sa.text(OPEN),
                              sqlite_where=sa.text(OPEN))
    dialect = op.get_bind().dialect.name
    # the triggers first: on PostgreSQL creating them locks out writers of both tables until this transaction ends, so
    # the rows counted next are exactly those the triggers did not see
    for stmt in PG_DDL if dialect == 'postgresql' else SQLITE_DDL:
        op.execute(stmt)
    for stmt in BACKFILL[dialect]:
        op.execute(stmt)


def downgrade() -> None:
    for stmt in PG_DROP if op.get_bind().dialect.name == 'postgresql' else SQLITE_DROP:
        op.execute(stmt)
    with op.batch_alter_table('cancellation_journey', schema=None) as batch_op:
        batch_op.drop_index('ix_cancellation_journey_open_created')
        batch_op.drop_index('ix_cancellation_journey_open_next_due')
    with op.batch_alter_table('cancellation_journey_total', schema=None) as batch_op:
        batch_op.drop_index('ix_cancellation_journey_total_open')
    op.drop_table('cancellation_journey_total')
    with op.batch_alter_table('cancellation_step_total', schema=None) as batch_op:
        batch_op.drop_index('ix_cancellation_step_total_code')
    op.drop_table('cancellation_step_total')
