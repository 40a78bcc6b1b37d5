"""Customer operations: create and edit accounts, sites, contacts and memos; search; 360 view; duplicates."""

from __future__ import annotations

from opsline.config import DEFAULT_CURRENCY

import re
from collections import defaultdict
from datetime import datetime
from typing import Any

from rapidfuzz import fuzz
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from opsline.api.tmf import sort_clauses
from opsline.core import domain_events, events, lifecycle
from opsline.core.batching import pages
from opsline.core.errors import Conflict, InvalidInput, NotFound, StaleVersion
from opsline.core.events import Actor
from opsline.core.ids import account_number as make_account_number
from opsline.customers import search
from opsline.customers.models import ACCOUNT, Account, AccountStatus, Contact, Memo, Party, Segment, Site, ValueTier
from opsline.customers.schemas import AccountIn, AccountUpdate, ContactIn, MemoIn, SiteIn
from opsline.db import sequences
from opsline.db.base import metadata
from opsline.db.session import lock_for_write


class UnableToCreateAccount(InvalidInput):
    pass


class AccountNotFound(NotFound):
    pass


_AUDITED_FIELDS = (
    "name", "status", "segment_code", "value_tier_code", "email", "phone", "billing_line1", "billing_line2",
    "billing_suburb", "billing_city", "billing_province", "billing_postal_code", "payment_terms_days", "bill_cycle_day",
)


ACCOUNT_CREATED = "customers.account_created"  # {"id"}: a new account (TMF629 CustomerCreateEvent)
ACCOUNT_CHANGED = "customers.account_changed"  # {"id", "attributes": [changed field names]}: an edit (not a status change)

def _snapshot(acc: Account) -> dict[str, Any]:
    return {f: getattr(acc, f) for f in _AUDITED_FIELDS}


def get_account(session: Session, *, account_id: int) -> Account:
    """Raises AccountNotFound."""
    acc = session.get(Account, account_id)
    if acc is None:
        raise AccountNotFound(f"account {account_id} not found")
    return acc


def get_account_by_number(session: Session, *, account_number: str) -> Account:
    acc = session.execute(select(Account).where(Account.account_number == account_number)).scalar_one_or_none()
    if acc is None:
        raise AccountNotFound(f"account number {account_number} not found")
    return acc


def resolve_account_id(session: Session, *, key: str, field: str = "account") -> int:
    """The id of the account a person typed: its account number, else its id. Raises InvalidInput naming `field`."""
    key = (key or "").strip()
    acc_id = session.execute(select(Account.id).where(Account.account_number == key)).scalar() if key else None
    if acc_id is None and key.isdigit() and 0 < int(key) < 2**62 and session.get(Account, int(key)) is not None:
        acc_id = int(key)
    if acc_id is None:
        raise InvalidInput(f"no account '{key}' (give the account number)", field=field)
    return int(acc_id)


def _check_reference(session: Session, *, segment_code: str | None, value_tier_code: str | None) -> None:
    if segment_code is not None and session.get(Segment, segment_code) is None:
        raise InvalidInput(f"unknown segment '{segment_code}'", field="segment_code")
    if value_tier_code is not None and session.get(ValueTier, value_tier_code) is None:
        raise InvalidInput(f"unknown value tier '{value_tier_code}'", field="value_tier_code")


def next_account_number(session: Session) -> str:
    """The next account number from the database sequence (never count(*)+1: two clerks at once get two numbers).
    Numbers someone typed in by hand are skipped."""
    for _ in range(1000):
        candidate = make_account_number(sequences.next_value(session, sequences.ACCOUNT_NUMBER))
        if not session.execute(select(Account.id).where(Account.account_number == candidate)).first():
            return candidate
    raise Conflict("no free account number in the next 1000 values of the sequence; advance account_number_seq", field="account_number")


def create_account(session: Session, *, data: AccountIn, now: datetime, actor: Actor, default_currency: str = DEFAULT_CURRENCY) -> Account:
    """Create a party and its account, with sites and contacts. Raises InvalidInput, Conflict (number taken)."""
    _check_reference(session, segment_code=data.segment_code, value_tier_code=data.value_tier_code)
    number = data.account_number or next_account_number(session)
    if session.execute(select(Account.id).where(Account.account_number == number)).first():
        raise Conflict(f"account number {number} already exists", field="account_number")
    party = Party(kind=data.party_kind, name=data.name, given_name=data.given_name, family_name=data.family_name, registration_number=data.registration_number, created_at=now)
    session.add(party)
    session.flush()
    acc = Account(
        account_number=number, party_id=party.id, name=data.name, kind=data.kind, status=AccountStatus.ACTIVE.value,
        segment_code=data.segment_code, value_tier_code=data.value_tier_code, currency=(data.currency or default_currency).upper(),
        email=data.email, phone=data.phone, billing_line1=data.billing_line1, billing_line2=data.billing_line2,
        billing_suburb=data.billing_suburb, billing_city=data.billing_city, billing_province=data.billing_province,
        billing_postal_code=data.billing_postal_code, billing_country=data.billing_country, payment_terms_days=data.payment_terms_days,
        bill_cycle_day=data.bill_cycle_day, vat_registered=bool(data.vat_number), vat_number=data.vat_number, created_at=now, updated_at=now,
    )
    session.add(acc)
    session.flush()
    for s in data.sites:
        _new_site(session, account_id=acc.id, data=s, now=now)
    for c in data.contacts:
        session.add(Contact(account_id=acc.id, **c.model_dump()))
    events.record(session, now=now, actor=actor, entity_type="account", entity_id=acc.id, account_id=acc.id, action="created", after=_snapshot(acc))
    domain_events.publish(session, ACCOUNT_CREATED, {"id": acc.id}, now=now, actor=actor)
    return acc


def update_account(session: Session, *, account_id: int, data: AccountUpdate, now: datetime, actor: Actor) -> Account:
    """Edit an account. Raises AccountNotFound, InvalidInput, StaleVersion when someone else saved first."""
    acc = get_account(session, account_id=account_id)
    if acc.version != data.version:
        raise StaleVersion(f"account {acc.account_number} was changed by someone else (version {acc.version}, you had {data.version}); reload and try again")
    changes = data.model_dump(exclude_unset=True, exclude={"version", "reason"})
    _check_reference(session, segment_code=changes.get("segment_code"), value_tier_code=changes.get("value_tier_code"))
    before = _snapshot(acc)
    number = acc.account_number  # read now: after a failed flush the row can no longer be loaded
    for k, v in changes.items():
        setattr(acc, k, v)
    acc.updated_at = now
    try:
        session.flush()
    except StaleDataError as exc:
        raise StaleVersion(f"account {number} was changed by someone else; reload and try again") from exc
    b, a = events.diff(before, _snapshot(acc))
    if a:
        events.record(session, now=now, actor=actor, entity_type="account", entity_id=acc.id, account_id=acc.id, action="updated", reason=data.reason, before=b, after=a)
        domain_events.publish(session, ACCOUNT_CHANGED, {"id": acc.id, "attributes": sorted(a)}, now=now, actor=actor)
    return acc


def transition_account(session: Session, *, account_id: int, action: str, now: datetime, actor: Actor, reason: str | None) -> list[str]:
    """Apply a lifecycle action (activate, suspend, reconnect, close) through the account lifecycle: audit event and
    the `account.<status>` domain event (inventory suspends/resumes products, collections and partners react).
    Returns the next allowed actions. Raises AccountNotFound, TransitionNotAllowed, ReasonRequired (no reason)."""
    lock_for_write(session)
    acc = get_account(session, account_id=account_id)
    nxt = lifecycle.transition(session, ACCOUNT, acc, action, now=now, actor=actor, reason=reason, account_id=acc.id,
                               label=f"account {acc.account_number}")
    acc.updated_at = now
    session.flush()
    return nxt


def _new_site(session: Session, *, account_id: int, data: SiteIn, now: datetime) -> Site:
    site = Site(account_id=account_id, created_at=now, **data.model_dump())
    session.add(site)
    session.flush()
    return site


def add_site(session: Session, *, account_id: int, data: SiteIn, now: datetime, actor: Actor) -> Site:
    acc = get_account(session, account_id=account_id)
    site = _new_site(session, account_id=acc.id, data=data, now=now)
    events.record(session, now=now, actor=actor, entity_type="site", entity_id=site.id, account_id=acc.id, action="created", after=data.model_dump())
    return site


def add_contact(session: Session, *, account_id: int, data: ContactIn, now: datetime, actor: Actor) -> Contact:
    acc = get_account(session, account_id=account_id)
    c = Contact(account_id=acc.id, **data.model_dump())
    session.add(c)
    session.flush()
    events.record(session, now=now, actor=actor, entity_type="contact", entity_id=c.id, account_id=acc.id, action="created", after=data.model_dump())
    return c


def add_memo(session: Session, *, account_id: int, data: MemoIn, now: datetime, actor: Actor) -> Memo:
    """Add a memo (never edited afterwards). Raises AccountNotFound."""
    acc = get_account(session, account_id=account_id)
    memo = Memo(account_id=acc.id, created_at=now, author=actor.name, category=data.category, body=data.body)
    session.add(memo)
    session.flush()
    events.record(session, now=now, actor=actor, entity_type="memo", entity_id=memo.id, account_id=acc.id, action="added", after={"category": data.category, "body": data.body[:500]})
    return memo


def add_memos(session: Session, *, memos: list[tuple[int, str]], category: str, now: datetime, actor: Actor) -> list[int]:
    """Add many memos (account id, body) of one category in two statements, each with the audit event `add_memo`
    writes (a batch's memos: dunning actions carried out, bulk decisions). Returns the memo ids in order.
    Raises InvalidInput (unknown category; an account id that does not exist). Nothing is written when it raises."""
    from sqlalchemy import insert

    from pydantic import ValidationError

    try:
        MemoIn(category=category, body="x")  # the category check add_memo's schema makes
    except ValidationError:
        raise InvalidInput(f"'{category}' is not a memo category", field="category") from None
    if not memos:
        return []
    wanted = sorted({int(a) for a, _ in memos})
    found: set[int] = set()
    for part in pages(wanted, 1000):
        found.update(int(i) for i in session.execute(select(Account.id).where(Account.id.in_(part))).scalars())
    missing = [a for a in wanted if a not in found]
    if missing:
        raise InvalidInput(f"no account {missing[0]}" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""), field="account_id")
    rows = [{"account_id": int(a), "created_at": now, "author": actor.name, "category": category, "body": body} for a, body in memos]
    ids = [int(i) for i in session.execute(insert(Memo).returning(Memo.id, sort_by_parameter_order=True), rows).scalars()]
    session.execute(insert(events.AuditEvent), [
        {"occurred_at": now, "actor": actor.name, "entity_type": "memo", "entity_id": str(i), "account_id": r["account_id"], "action": "added",
         "reason": None, "before": None, "after": {"category": category, "body": r["body"][:500]}} for i, r in zip(ids, rows)])
    return ids


def get_site(session: Session, *, site_id: int, account_id: int | None = None) -> Site:
    site = session.get(Site, site_id)
    if site is None or (account_id is not None and site.account_id != account_id):
        raise NotFound(f"site {site_id} not found" + (f" on account {account_id}" if account_id else ""), field="site_id")
    return site


# --- queries -----------------------------------------------------------------------------------

def account_dict(a: Account) -> dict[str, Any]:
    return {
        "id": a.id, "account_number": a.account_number, "name": a.name, "kind": a.kind, "status": a.status,
        "segment_code": a.segment_code, "value_tier_code": a.value_tier_code, "currency": a.currency, "email": a.email,
        "phone": a.phone, "billing_line1": a.billing_line1, "billing_line2": a.billing_line2, "billing_suburb": a.billing_suburb,
        "billing_city": a.billing_city, "billing_province": a.billing_province, "billing_postal_code": a.billing_postal_code,
        "billing_country": a.billing_country, "payment_terms_days": a.payment_terms_days, "bill_cycle_day": a.bill_cycle_day,
        "vat_number": a.vat_number, "party_id": a.party_id, "created_at": a.created_at, "updated_at": a.updated_at, "version": a.version,
        "allowed_actions": ACCOUNT.allowed_actions(a.status),
    }


def site_dict(s: Site) -> dict[str, Any]:
    return {
        "id": s.id, "account_id": s.account_id, "label": s.label, "line1": s.line1, "line2": s.line2, "suburb": s.suburb,
        "city": s.city, "province": s.province, "postal_code": s.postal_code, "country": s.country, "latitude": s.latitude,
        "longitude": s.longitude, "fno_coverage": list(s.fno_coverage or []),
        "address": ", ".join(p for p in (s.line1, s.line2, s.suburb, s.city, s.postal_code) if p),
    }


def _search_query(session: Session, *, q: str | None, status: str | None, kind: str | None, segment: str | None,
                  value_tier: str | None, exact: bool, party_id: int | None = None, account_id: int | None = None) -> Any:
    query = select(Account)
    if party_id is not None:
        query = query.where(Account.party_id == party_id)
    if account_id is not None:
        query = query.where(Account.id == account_id)
    if q:
        if exact:
            ex = search.exact_terms(q)
            query = query.where(search.exact_condition(ex, Account, Contact) if ex else search.text_condition(session.get_bind().dialect.name, q, Account))
        else:
            query = query.where(search.text_condition(session.get_bind().dialect.name, q, Account))
    for col, val in ((Account.status, status), (Account.kind, kind), (Account.segment_code, segment), (Account.value_tier_code, value_tier)):
        if val:
            query = query.where(col == val)
    return query


def search_accounts(
    session: Session, *, q: str | None = None, status: str | None = None, kind: str | None = None, segment: str | None = None,
    value_tier: str | None = None, page: int = 1, page_size: int = 50, offset: int | None = None, with_total: bool = False,
    party_id: int | None = None, account_id: int | None = None, sort: str | None = None, sortable: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Search with filters and paging (ordered by name). An account number, email or phone is looked up exactly
    (normalised: '082 555 1234' finds +27825551234); other text matches word prefixes of the name and addresses
    (billing address and every site). Digits that match no number fall back to the text search. `offset`
    overrides `page` (TMF paging); `with_total` adds the total count. `sort` (TMF630 `-name,id`) orders by the Account
    columns `sortable` maps its attributes to, else by name. Raises UnsortableAttribute for another attribute, nothing for
    odd search input: no match, no rows."""
    order = sort_clauses(sort, {k: getattr(Account, v) for k, v in (sortable or {}).items()}, default=[Account.name], tiebreak=Account.id)
    page = max(1, page)
    page_size = max(1, min(page_size, 1000))
    start = offset if offset is not None else (page - 1) * page_size
    term = (q or "").strip() or None
    query = _search_query(session, q=term, status=status, kind=kind, segment=segment, value_tier=value_tier, exact=True, party_id=party_id, account_id=account_id)
    rows = session.execute(query.order_by(*order).limit(page_size + 1).offset(start)).scalars().all()
    used_exact = bool(term and search.exact_terms(term))
    if used_exact and not rows and start == 0 and search.words(term or ""):
        query = _search_query(session, q=term, status=status, kind=kind, segment=segment, value_tier=value_tier, exact=False, party_id=party_id, account_id=account_id)
        rows = session.execute(query.order_by(*order).limit(page_size + 1).offset(start)).scalars().all()
    has_next = len(rows) > page_size
    out: dict[str, Any] = {"items": [account_dict(a) for a in rows[:page_size]], "page": page, "page_size": page_size, "has_next": has_next,
                           "offset": start, "similar": []}
    if term and not rows and start == 0:  # nothing found: on PostgreSQL, the most similar names (a typo: 'Nkosy')
        out["similar"] = [account_dict(a) for a in accounts_by_ids(session, ids=search.similar_ids(session, term, limit=10))]
    if with_total:  # the count only when the page does not already tell it
        known = not has_next and (rows or start == 0)
        out["total"] = start + len(rows) if known else session.execute(select(func.count()).select_from(query.order_by(None).subquery())).scalar_one()
    return out


def party_kinds(session: Session, *, party_ids: list[int]) -> dict[int, str]:
    """person / organisation per party, in one query (for a page of accounts)."""
    if not party_ids:
        return {}
    return dict(session.execute(select(Party.id, Party.kind).where(Party.id.in_(set(party_ids)))).tuples().all())


# Rows an account owns itself: what remains when it is removed through TMF629 DELETE (kept: the audit trail needs them).
OWN_TABLES = frozenset({"account", "party", "contact", "site", "memo", "audit_event", "contact_profile", "contact_preference", "idempotency_record"})


def removal_blockers(session: Session, *, account_id: int) -> dict[str, int]:
    """Business records that keep an account from being removed (products, orders, invoices, payments, cases ...):
    table -> rows referencing the account, read from the foreign keys of every table (so a new area is covered)."""
    out: dict[str, int] = {}
    for table in metadata.sorted_tables:
        if table.name in OWN_TABLES:
            continue
        for fk in table.foreign_keys:
            if fk.column.table.name == "account" and fk.column.name == "id":
                n = session.execute(select(func.count()).select_from(table).where(fk.parent == account_id)).scalar_one()
                if n:
                    out[table.name] = out.get(table.name, 0) + n
    return out


class AccountNotRemovable(Conflict):
    title = "Customer cannot be removed"
    type_slug = "customer-not-removable"


def remove_account(session: Session, *, account_id: int, now: datetime, actor: Actor, reason: str) -> Account:
    """TMF629 DELETE: an account opened by mistake (no product, order, invoice, payment, case ... refers to it) is
    closed for good; its party, contacts and audit trail stay (the law keeps customer records). Raises AccountNotFound,
    AccountNotRemovable naming what refers to it, TransitionNotAllowed."""
    acc = get_account(session, account_id=account_id)
    blockers = removal_blockers(session, account_id=acc.id)
    if blockers:
        held = ", ".join(f"{n} {table.replace('_', ' ')}" for table, n in sorted(blockers.items()))
        raise AccountNotRemovable(f"customer {acc.id} has {held}; it can only be closed through its lifecycle")
    if acc.status != AccountStatus.CLOSED:
        transition_account(session, account_id=acc.id, action="close", now=now, actor=actor, reason=reason)
    return acc


def accounts_by_ids(session: Session, *, ids: list[int]) -> list[Account]:
    """Accounts in the order of `ids`, in one query (no N+1 in lists)."""
    if not ids:
        return []
    found = {a.id: a for a in session.execute(select(Account).where(Account.id.in_(ids))).scalars()}
    return [found[i] for i in ids if i in found]


def account_360(session: Session, *, account_id: int, memo_limit: int = 50, timeline_limit: int = 50) -> dict[str, Any]:
    """Everything the account page shows from the customers area. Raises AccountNotFound."""
    acc = get_account(session, account_id=account_id)
    sites = session.execute(select(Site).where(Site.account_id == acc.id).order_by(Site.id)).scalars()
    contacts = session.execute(select(Contact).where(Contact.account_id == acc.id).order_by(Contact.id)).scalars()
    memos = session.execute(select(Memo).where(Memo.account_id == acc.id).order_by(Memo.id.desc()).limit(memo_limit)).scalars()
    tier = session.get(ValueTier, acc.value_tier_code)
    segment = session.get(Segment, acc.segment_code)
    return {
        "account": account_dict(acc) | {"value_tier_name": tier.name if tier else acc.value_tier_code, "segment_name": segment.name if segment else acc.segment_code},
        "sites": [site_dict(s) for s in sites],
        "contacts": [{"id": c.id, "name": c.name, "role": c.role, "email": c.email, "phone": c.phone, "is_primary": c.is_primary} for c in contacts],
        "memos": [{"id": m.id, "created_at": m.created_at, "author": m.author, "category": m.category, "body": m.body} for m in memos],
        "timeline": events.account_timeline(session, account_id=acc.id, limit=timeline_limit),
    }


def reference_data(session: Session) -> dict[str, list[dict[str, Any]]]:
    return {
        "segments": [{"code": s.code, "name": s.name} for s in session.execute(select(Segment).order_by(Segment.name)).scalars()],
        "value_tiers": [{"code": t.code, "name": t.name, "rank": t.rank} for t in session.execute(select(ValueTier).order_by(ValueTier.rank)).scalars()],
    }


# --- duplicates ----------------------------------------------------------------------------------

def _norm(s: str | None) -> str:
    return re.sub(r"[^a-z0-9 ]", "", (s or "").lower()).strip()


def find_duplicates(session: Session, *, threshold: float = 88.0, limit: int = 200, account_ids: list[int] | None = None) -> list[dict[str, Any]]:
    """Likely duplicate accounts for clean-up: rapidfuzz over name + address + phone, blocked by postal code and
    initial, phone or email, so the work grows with block sizes, not the square of all accounts."""
    q = select(Account.id, Account.account_number, Account.name, Account.phone, Account.email, Account.billing_line1, Account.billing_postal_code)
    if account_ids:
        q = q.where(Account.id.in_(account_ids))
    rows = session.execute(q).all()
    blocks: dict[str, list[Any]] = defaultdict(list)
    for r in rows:
        if r.billing_postal_code:  # same postal code and same initial: near-identical names, without comparing a street's every pair
            blocks["pc:" + r.billing_postal_code + ":" + _norm(r.name)[:1]].append(r)
        if r.phone:
            blocks["ph:" + r.phone[-9:]].append(r)
        if r.email:
            blocks["em:" + r.email.lower()].append(r)
    seen: set[tuple[int, int]] = set()
    out: list[dict[str, Any]] = []
    for members in blocks.values():
        if len(members) < 2 or len(members) > 500:
            continue
        for i, a in enumerate(members):
            for b in members[i + 1:]:
                key = (min(a.id, b.id), max(a.id, b.id))
                if key in seen:
                    continue
                name = fuzz.token_sort_ratio(_norm(a.name), _norm(b.name))
                addr = fuzz.token_set_ratio(_norm(a.billing_line1), _norm(b.billing_line1)) if a.billing_line1 and b.billing_line1 else 0
                phone = 100.0 if a.phone and a.phone == b.phone else 0.0
                email = 100.0 if a.email and b.email and a.email.lower() == b.email.lower() else 0.0
                score = 0.5 * name + 0.3 * max(addr, email) + 0.2 * phone
                if name >= 80 and (addr >= 85 or phone or email) and score >= threshold * 0.8:
                    seen.add(key)
                    out.append({
                        "score": round(score, 1),
                        "a": {"id": a.id, "account_number": a.account_number, "name": a.name, "phone": a.phone, "address": a.billing_line1},
                        "b": {"id": b.id, "account_number": b.account_number, "name": b.name, "phone": b.phone, "address": b.billing_line1},
                        "why": {"name": round(name, 1), "address": round(addr, 1), "phone_match": bool(phone), "email_match": bool(email)},
                    })
    out.sort(key=lambda d: -d["score"])
    return out[:limit]
