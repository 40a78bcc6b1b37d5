"""Account search: an exact path for account numbers, emails and phones (normalised, B-tree indexes), and a word-prefix
full-text index over name and addresses: SQLite FTS5 (`account_search` virtual table) or PostgreSQL full text
(`account_search.tsv`, GIN) with pg_trgm for the typo-tolerant fallback. Both are kept in sync by database triggers,
so every writer (services, bulk loads, other areas' SQL) keeps the index right. The address column also carries
the email address, so a partial address ('thabo@example') finds its words."""

from __future__ import annotations

import re
import unicodedata
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

from sqlalchemy import ColumnElement, Connection, DDL, and_, event, literal, or_, select, text
from sqlalchemy.schema import Table

from opsline.customers.schemas import normalise_email, normalise_phone

SEARCH_TABLE = "account_search"
_ADDR = ("coalesce({p}.billing_line1, '') || ' ' || coalesce({p}.billing_suburb, '') || ' ' || coalesce({p}.billing_city, '') || ' ' || "
         "coalesce({p}.email, '')")
_SITES = "coalesce((SELECT group_concat(coalesce(s.line1, '') || ' ' || coalesce(s.suburb, ''), ' ') FROM site s WHERE s.account_id = {id}), '')"


def _sqlite_address(prefix: str, id_expr: str) -> str:
    return f"{_ADDR.format(p=prefix)} || ' ' || {_SITES.format(id=id_expr)}"


# --- DDL (also copied, frozen, into migration 0007) ------------------------------------------------------------------
SQLITE_ACCOUNT_DDL = [
    "CREATE VIRTUAL TABLE IF NOT EXISTS account_search USING fts5(name, address, "
    "tokenize = 'unicode61 remove_diacritics 2', prefix = '2 3 4')",
    "CREATE TRIGGER IF NOT EXISTS account_search_ai AFTER INSERT ON account BEGIN "
    f"INSERT INTO account_search (rowid, name, address) VALUES (NEW.id, NEW.name, {_ADDR.format(p='NEW')}); END",
    "CREATE TRIGGER IF NOT EXISTS account_search_au AFTER UPDATE OF name, billing_line1, billing_suburb, billing_city, email ON account BEGIN "
    f"UPDATE account_search SET name = NEW.name, address = {_sqlite_address('NEW', 'NEW.id')} WHERE rowid = NEW.id; END",
    "CREATE TRIGGER IF NOT EXISTS account_search_ad AFTER DELETE ON account BEGIN DELETE FROM account_search WHERE rowid = OLD.id; END",
]
_SQLITE_SITE_REFRESH = ("UPDATE account_search SET address = (SELECT {addr} FROM account a WHERE a.id = {acc}) WHERE rowid = {acc}")
SQLITE_SITE_DDL = [
    f"CREATE TRIGGER IF NOT EXISTS site_search_ai AFTER INSERT ON site BEGIN "
    f"{_SQLITE_SITE_REFRESH.format(addr=_sqlite_address('a', 'a.id'), acc='NEW.account_id')}; END",
    f"CREATE TRIGGER IF NOT EXISTS site_search_au AFTER UPDATE OF line1, suburb, account_id ON site BEGIN "
    f"{_SQLITE_SITE_REFRESH.format(addr=_sqlite_address('a', 'a.id'), acc='NEW.account_id')}; "
    f"{_SQLITE_SITE_REFRESH.format(addr=_sqlite_address('a', 'a.id'), acc='OLD.account_id')}; END",
    f"CREATE TRIGGER IF NOT EXISTS site_search_ad AFTER DELETE ON site BEGIN "
    f"{_SQLITE_SITE_REFRESH.format(addr=_sqlite_address('a', 'a.id'), acc='OLD.account_id')}; END",
]
SQLITE_BACKFILL = f"INSERT INTO account_search (rowid, name, address) SELECT a.id, a.name, {_sqlite_address('a', 'a.id')} FROM account a"

_PG_DOC = ("opsline_fold(concat_ws(' ', a.name, a.billing_line1, a.billing_suburb, a.billing_city, a.email, "
           "(SELECT string_agg(concat_ws(' ', s.line1, s.suburb), ' ') FROM site s WHERE s.account_id = a.id)))")
_PG_UPSERT = ("INSERT INTO account_search (account_id, document) SELECT a.id, " + _PG_DOC + " FROM account a WHERE a.id IN ({ids}) "
              "ON CONFLICT (account_id) DO UPDATE SET document = excluded.document")
PG_ACCOUNT_DDL = [
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    # Folding accents in SQL (immutable, so usable in the stored tsvector); Python folds query terms the same way.
    # '@' and '.' become spaces so an email is words ('thabo example co za'), not one email token.
    "CREATE OR REPLACE FUNCTION opsline_fold(t text) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS "
    "$$ SELECT translate(lower(t), 'àáâãäåāçćčèéêëēėęìíîïīñńòóôõöøōùúûüūýÿžšß@.', 'aaaaaaaccceeeeeeeiiiiinnooooooouuuuuyyzss  ') $$",
    "CREATE TABLE IF NOT EXISTS account_search (account_id BIGINT PRIMARY KEY REFERENCES account (id) ON DELETE CASCADE, "
    "document TEXT NOT NULL, tsv TSVECTOR GENERATED ALWAYS AS (to_tsvector('simple', document)) STORED)",
    # fastupdate off on the word index: a search must not scan a pending list that a bulk load left behind. The
    # trigram index only serves the 'did you mean' fallback, so bulk loads keep its cheaper pending-list inserts.
    "CREATE INDEX IF NOT EXISTS ix_account_search_tsv ON account_search USING gin (tsv) WITH (fastupdate = off)",
    "CREATE INDEX IF NOT EXISTS ix_account_search_trgm ON account_search USING gin (document gin_trgm_ops)",
    # Statement-level triggers with transition tables: a COPY of a million accounts refreshes the index in one
    # set-based statement, not a million row triggers.
    "CREATE OR REPLACE FUNCTION account_search_from_accounts() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    + _PG_UPSERT.format(ids="SELECT id FROM changed_rows") + "; RETURN NULL; END $$",
    "CREATE OR REPLACE FUNCTION account_search_from_sites() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    + _PG_UPSERT.format(ids="SELECT account_id FROM changed_rows") + "; RETURN NULL; END $$",
    "CREATE TRIGGER account_search_ins AFTER INSERT ON account REFERENCING NEW TABLE AS changed_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION account_search_from_accounts()",
    "CREATE TRIGGER account_search_upd AFTER UPDATE ON account REFERENCING NEW TABLE AS changed_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION account_search_from_accounts()",
]
PG_SITE_DDL = [
    "CREATE TRIGGER site_search_ins AFTER INSERT ON site REFERENCING NEW TABLE AS changed_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION account_search_from_sites()",
    "CREATE TRIGGER site_search_upd AFTER UPDATE ON site REFERENCING NEW TABLE AS changed_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION account_search_from_sites()",
    "CREATE TRIGGER site_search_del AFTER DELETE ON site REFERENCING OLD TABLE AS changed_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION account_search_from_sites()",
]
PG_BACKFILL = _PG_UPSERT.format(ids="SELECT id FROM account")


def attach_ddl(account: Table, site: Table) -> None:
    """Create the search index with the tables when the schema is built from the models (tests, fresh installs)."""
    for stmt in SQLITE_ACCOUNT_DDL:
        event.listen(account, "after_create", DDL(stmt).execute_if(dialect="sqlite"))
    for stmt in SQLITE_SITE_DDL:
        event.listen(site, "after_create", DDL(stmt).execute_if(dialect="sqlite"))
    for stmt in PG_ACCOUNT_DDL:
        event.listen(account, "after_create", DDL(stmt).execute_if(dialect="postgresql"))
    for stmt in PG_SITE_DDL:
        event.listen(site, "after_create", DDL(stmt).execute_if(dialect="postgresql"))
    event.listen(account, "before_drop", DDL("DROP TABLE IF EXISTS account_search"))


@contextmanager
def bulk_insert(conn: Connection, *, first_id: int, last_id: int) -> Iterator[None]:
    """Accounts (ids first_id..last_id) and their sites inserted inside the block are indexed once, at its end, in
    one statement, in the same transaction. SQLite's row triggers cost about half a millisecond a row (FTS5 flushes
    at every trigger's statement boundary); PostgreSQL's statement-level triggers are set-based already."""
    if conn.dialect.name != "sqlite":
        yield
        return
    conn.exec_driver_sql("DROP TRIGGER IF EXISTS account_search_ai")
    conn.exec_driver_sql("DROP TRIGGER IF EXISTS site_search_ai")
    yield
    conn.execute(text(SQLITE_BACKFILL + " WHERE a.id BETWEEN :lo AND :hi"), {"lo": first_id, "hi": last_id})
    conn.exec_driver_sql(SQLITE_ACCOUNT_DDL[1])
    conn.exec_driver_sql(SQLITE_SITE_DDL[0])


def is_search_table(name: str) -> bool:
    """The index tables live outside the models (FTS5 virtual table and its shadow tables; the PostgreSQL table)."""
    return name == SEARCH_TABLE or name.startswith(SEARCH_TABLE + "_")


# --- queries ---------------------------------------------------------------------------------------------------------
_WORD = re.compile(r"\w+", re.UNICODE)


def fold(s: str) -> str:
    """Lower case without accents: 'Thébo' -> 'thebo' (the same folding the indexes apply)."""
    return "".join(c for c in unicodedata.normalize("NFKD", s.lower()) if not unicodedata.combining(c))


def words(q: str) -> list[str]:
    return [w for w in _WORD.findall(fold(q))][:8]


@dataclass(frozen=True)
class Exact:
    account_numbers: tuple[str, ...] = ()
    number_prefix: str | None = None
    emails: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()


def exact_terms(q: str) -> Exact | None:
    """Account numbers, emails and phones are looked up exactly (normalised), not through the text index.
    None when the query is ordinary text."""
    term = q.strip()
    if "@" in term and " " not in term:
        emails = {term.lower()}
        try:
            norm = normalise_email(term)
            if norm:
                emails |= {norm, norm.lower()}
        except ValueError:
            pass
        return Exact(emails=tuple(sorted(emails)))
    compact = re.sub(r"[\s\-()./]", "", term)
    if not re.fullmatch(r"\+?\d{6,20}", compact):  # shorter digit runs (house numbers, postal codes) are text
        return None
    digits = compact.lstrip("+")
    phones: set[str] = set()
    if len(digits) >= 9:
        for candidate in (compact, "+" + digits):
            try:
                p = normalise_phone(candidate)
            except ValueError:
                continue
            if p:
                phones.add(p)
    numbers = (digits,) if 6 <= len(digits) <= 20 and not compact.startswith("+") else ()
    prefix = digits if len(digits) < 10 and not compact.startswith("+") and not phones else None
    return Exact(account_numbers=numbers, number_prefix=prefix, phones=tuple(sorted(phones)))


def exact_condition(exact: Exact, account: Any, contact: Any) -> ColumnElement[bool]:
    conds: list[ColumnElement[bool]] = []
    if exact.account_numbers:
        conds.append(account.account_number.in_(exact.account_numbers))
    if exact.number_prefix:
        conds.append(and_(account.account_number >= exact.number_prefix, account.account_number < exact.number_prefix + "a"))
    if exact.emails:
        conds.append(account.email.in_(exact.emails))
        conds.append(account.id.in_(select(contact.account_id).where(contact.email.in_(exact.emails))))
    if exact.phones:
        conds.append(account.phone.in_(exact.phones))
        conds.append(account.id.in_(select(contact.account_id).where(contact.phone.in_(exact.phones))))
    return or_(*conds) if conds else literal(False)


def text_condition(dialect: str, q: str, account: Any) -> ColumnElement[bool]:
    """Every word of the query must start a word of the account's name or addresses."""
    ws = words(q)
    if not ws:
        return literal(False)
    if dialect == "postgresql":
        query = " & ".join(f"{w}:*" for w in ws)
        return account.id.in_(text("SELECT account_id FROM account_search WHERE tsv @@ to_tsquery('simple', :tsq)")
                              .bindparams(tsq=query).columns(account_id=account.id.type))
    match = " ".join(f'"{w}"*' for w in ws)
    return account.id.in_(text("SELECT rowid FROM account_search WHERE account_search MATCH :fts")
                          .bindparams(fts=match).columns(rowid=account.id.type))


def similar_ids(session: Any, q: str, *, limit: int = 20) -> list[int]:
    """PostgreSQL only: accounts whose name/address is most similar to the query (pg_trgm), for 'did you mean' when
    the exact and word-prefix searches found nothing (a typo: 'Nkosy'). SQLite returns []."""
    if session.get_bind().dialect.name != "postgresql":
        return []
    term = " ".join(words(q))
    if len(term) < 3:
        return []
    # word similarity: the query against the best-matching stretch of the document (name and addresses)
    rows = session.execute(text("SELECT account_id FROM account_search WHERE :t <% document "
                                "ORDER BY word_similarity(:t, document) DESC, account_id LIMIT :n"), {"t": term, "n": limit}).scalars()
    return [int(r) for r in rows]
