"""Search indexes (FTS5 / trigram), exact lookups and page indexes (issue 9)

Account search: an FTS5 virtual table on SQLite and a full-text (tsvector, GIN) + pg_trgm table on PostgreSQL, both kept
in sync by triggers and backfilled here; indexes for the exact paths (contact email and phone); the account-number
sequence (a SEQUENCE on PostgreSQL, a counter row on SQLite) that replaces count(*)+1.

Revision ID: 0007_search_web
Revises: 0006_notifications
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_search_web"
down_revision = "0006_notifications"
branch_labels = None
depends_on = None

# Frozen copies of opsline.customers.search's DDL as of this revision (a landed migration never changes).
SQLITE_ACCOUNT_DDL = ["CREATE VIRTUAL TABLE IF NOT EXISTS account_search USING fts5(name, address, tokenize = 'unicode61 remove_diacritics "
 "2', prefix = '2 3 4')",
 'CREATE TRIGGER IF NOT EXISTS account_search_ai AFTER INSERT ON account BEGIN INSERT INTO account_search (rowid, '
 "name, address) VALUES (NEW.id, NEW.name, coalesce(NEW.billing_line1, '') || ' ' || coalesce(NEW.billing_suburb, '') "
 "|| ' ' || coalesce(NEW.billing_city, '') || ' ' || coalesce(NEW.email, '')); END",
 'CREATE TRIGGER IF NOT EXISTS account_search_au AFTER UPDATE OF name, billing_line1, billing_suburb, billing_city, '
 "email ON account BEGIN UPDATE account_search SET name = NEW.name, address = coalesce(NEW.billing_line1, '') || ' ' "
 "|| coalesce(NEW.billing_suburb, '') || ' ' || coalesce(NEW.billing_city, '') || ' ' || coalesce(NEW.email, '') || ' "
 "' || coalesce((SELECT group_concat(coalesce(s.line1, '') || ' ' || coalesce(s.suburb, ''), ' ') FROM site s WHERE "
 "s.account_id = NEW.id), '') WHERE rowid = NEW.id; END",
 'CREATE TRIGGER IF NOT EXISTS account_search_ad AFTER DELETE ON account BEGIN DELETE FROM account_search WHERE rowid '
 '= OLD.id; END']
SQLITE_SITE_DDL = ['CREATE TRIGGER IF NOT EXISTS site_search_ai AFTER INSERT ON site BEGIN UPDATE account_search SET address = (SELECT '
 "coalesce(a.billing_line1, '') || ' ' || coalesce(a.billing_suburb, '') || ' ' || coalesce(a.billing_city, '') || ' ' "
 "|| coalesce(a.email, '') || ' ' || coalesce((SELECT group_concat(coalesce(s.line1, '') || ' ' || coalesce(s.suburb, "
 "''), ' ') FROM site s WHERE s.account_id = a.id), '') FROM account a WHERE a.id = NEW.account_id) WHERE rowid = "
 'NEW.account_id; END',
 'CREATE TRIGGER IF NOT EXISTS site_search_au AFTER UPDATE OF line1, suburb, account_id ON site BEGIN UPDATE '
 "account_search SET address = (SELECT coalesce(a.billing_line1, '') || ' ' || coalesce(a.billing_suburb, '') || ' ' "
 "|| coalesce(a.billing_city, '') || ' ' || coalesce(a.email, '') || ' ' || coalesce((SELECT "
 "group_concat(coalesce(s.line1, '') || ' ' || coalesce(s.suburb, ''), ' ') FROM site s WHERE s.account_id = a.id), "
 "'') FROM account a WHERE a.id = NEW.account_id) WHERE rowid = NEW.account_id; UPDATE account_search SET address = "
 "(SELECT coalesce(a.billing_line1, '') || ' ' || coalesce(a.billing_suburb, '') || ' ' || coalesce(a.billing_city, "
 "'') || ' ' || coalesce(a.email, '') || ' ' || coalesce((SELECT group_concat(coalesce(s.line1, '') || ' ' || "
 "coalesce(s.suburb, ''), ' ') FROM site s WHERE s.account_id = a.id), '') FROM account a WHERE a.id = OLD.account_id) "
 'WHERE rowid = OLD.account_id; END',
 'CREATE TRIGGER IF NOT EXISTS site_search_ad AFTER DELETE ON site BEGIN UPDATE account_search SET address = (SELECT '
 "coalesce(a.billing_line1, '') || ' ' || coalesce(a.billing_suburb, '') || ' ' || coalesce(a.billing_city, '') || ' ' "
 "|| coalesce(a.email, '') || ' ' || coalesce((SELECT group_concat(coalesce(s.line1, '') || ' ' || coalesce(s.suburb, "
 "''), ' ') FROM site s WHERE s.account_id = a.id), '') FROM account a WHERE a.id = OLD.account_id) WHERE rowid = "
 'OLD.account_id; END']
SQLITE_BACKFILL = "INSERT INTO account_search (rowid, name, address) SELECT a.id, a.name, coalesce(a.billing_line1, '') || ' ' || coalesce(a.billing_suburb, '') || ' ' || coalesce(a.billing_city, '') || ' ' || coalesce(a.email, '') || ' ' || coalesce((SELECT group_concat(coalesce(s.line1, '') || ' ' || coalesce(s.suburb, ''), ' ') FROM site s WHERE s.account_id = a.id), '') FROM account a"
PG_ACCOUNT_DDL = ['CREATE EXTENSION IF NOT EXISTS pg_trgm',
 'CREATE OR REPLACE FUNCTION opsline_fold(t text) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT '
 "translate(lower(t), 'àáâãäåāçćčèéêëēėęìíîïīñńòóôõöøōùúûüūýÿžšß@.', 'aaaaaaaccceeeeeeeiiiiinnooooooouuuuuyyzss  ') $$",
 'CREATE TABLE IF NOT EXISTS account_search (account_id BIGINT PRIMARY KEY REFERENCES account (id) ON DELETE CASCADE, '
 "document TEXT NOT NULL, tsv TSVECTOR GENERATED ALWAYS AS (to_tsvector('simple', document)) STORED)",
 'CREATE INDEX IF NOT EXISTS ix_account_search_tsv ON account_search USING gin (tsv) WITH (fastupdate = off)',
 'CREATE INDEX IF NOT EXISTS ix_account_search_trgm ON account_search USING gin (document gin_trgm_ops)',
 'CREATE OR REPLACE FUNCTION account_search_from_accounts() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO '
 "account_search (account_id, document) SELECT a.id, opsline_fold(concat_ws(' ', a.name, a.billing_line1, "
 "a.billing_suburb, a.billing_city, a.email, (SELECT string_agg(concat_ws(' ', s.line1, s.suburb), ' ') FROM site s "
 'WHERE s.account_id = a.id))) FROM account a WHERE a.id IN (SELECT id FROM changed_rows) ON CONFLICT (account_id) DO '
 'UPDATE SET document = excluded.document; RETURN NULL; END $$',
 'CREATE OR REPLACE FUNCTION account_search_from_sites() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO '
 "account_search (account_id, document) SELECT a.id, opsline_fold(concat_ws(' ', a.name, a.billing_line1, "
 "a.billing_suburb, a.billing_city, a.email, (SELECT string_agg(concat_ws(' ', s.line1, s.suburb), ' ') FROM site s "
 'WHERE s.account_id = a.id))) FROM account a WHERE a.id IN (SELECT account_id FROM changed_rows) ON CONFLICT '
 '(account_id) DO UPDATE SET document = excluded.document; RETURN NULL; END $$',
 'CREATE TRIGGER account_search_ins AFTER INSERT ON account REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT '
 'EXECUTE FUNCTION account_search_from_accounts()',
 'CREATE TRIGGER account_search_upd AFTER UPDATE ON account REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT '
 'EXECUTE FUNCTION account_search_from_accounts()']
PG_SITE_DDL = ['CREATE TRIGGER site_search_ins AFTER INSERT ON site REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT EXECUTE '
 'FUNCTION account_search_from_sites()',
 'CREATE TRIGGER site_search_upd AFTER UPDATE ON site REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT EXECUTE '
 'FUNCTION account_search_from_sites()',
 'CREATE TRIGGER site_search_del AFTER DELETE ON site REFERENCING OLD TABLE AS changed_rows FOR EACH STATEMENT EXECUTE '
 'FUNCTION account_search_from_sites()']
PG_BACKFILL = "INSERT INTO account_search (account_id, document) SELECT a.id, opsline_fold(concat_ws(' ', a.name, a.billing_line1, a.billing_suburb, a.billing_city, a.email, (SELECT string_agg(concat_ws(' ', s.line1, s.suburb), ' ') FROM site s WHERE s.account_id = a.id))) FROM account a WHERE a.id IN (SELECT id FROM account) ON CONFLICT (account_id) DO UPDATE SET document = excluded.document"


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.create_table(
        "number_sequence",
        sa.Column("name", sa.String(length=60), nullable=False),
        sa.Column("last_value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_number_sequence")),
    )
    op.create_index(op.f("ix_contact_email"), "contact", ["email"], unique=False)
    op.create_index(op.f("ix_contact_phone"), "contact", ["phone"], unique=False)
    if dialect == "postgresql":
        op.execute("CREATE SEQUENCE IF NOT EXISTS account_number_seq START WITH 1")
        op.execute("SELECT setval('account_number_seq', GREATEST(1, (SELECT COALESCE(MAX(id), 0) FROM account)), true)")
        for stmt in PG_ACCOUNT_DDL + PG_SITE_DDL:
            op.execute(stmt)
        op.execute(PG_BACKFILL)
        op.execute("ANALYZE account_search")
    else:
        op.execute("INSERT INTO number_sequence (name, last_value) SELECT 'account_number_seq', COALESCE(MAX(id), 0) FROM account")
        for stmt in SQLITE_ACCOUNT_DDL + SQLITE_SITE_DDL:
            op.execute(stmt)
        op.execute(SQLITE_BACKFILL)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        for trig, table in (("site_search_ins", "site"), ("site_search_upd", "site"), ("site_search_del", "site"),
                            ("account_search_ins", "account"), ("account_search_upd", "account")):
            op.execute(f"DROP TRIGGER IF EXISTS {trig} ON {table}")
        op.execute("DROP FUNCTION IF EXISTS account_search_from_sites()")
        op.execute("DROP FUNCTION IF EXISTS account_search_from_accounts()")
        op.execute("DROP TABLE IF EXISTS account_search")
        op.execute("DROP FUNCTION IF EXISTS opsline_fold(text)")
        op.execute("DROP SEQUENCE IF EXISTS account_number_seq")
    else:
        for trig in ("site_search_ai", "site_search_au", "site_search_ad", "account_search_ai", "account_search_au", "account_search_ad"):
            op.execute(f"DROP TRIGGER IF EXISTS {trig}")
        op.execute("DROP TABLE IF EXISTS account_search")
    op.drop_index(op.f("ix_contact_phone"), table_name="contact")
    op.drop_index(op.f("ix_contact_email"), table_name="contact")
    op.drop_table("number_sequence")
