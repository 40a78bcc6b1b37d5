"""Customer data quality: checks with counts and worklists (missing email or phone, phone numbers that are not valid
E.164 / South African numbers, sites no network covers, possible duplicates), their fixes, and the "confirm or update
details" step taken on every contact, which writes a memo of what changed."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from datetime import datetime
from typing import Any, Iterator

import phonenumbers
from pydantic import ValidationError
from sqlalchemy import String, cast, func, or_, select
from sqlalchemy.orm import Session

from opsline.areas import HomeCard
from opsline.core import events
from opsline.core.errors import InvalidInput
from opsline.core.events import Actor
from opsline.customers import home as customers_home, service
from opsline.customers.models import Account, AccountStatus, Site
from opsline.customers.schemas import AccountUpdate, MemoIn

QUALITY_DESKS = ("second_line_agent", "service_manager", "billing_analyst")
_OPEN = Account.status != AccountStatus.CLOSED.value


@dataclass(frozen=True)
class Check:
    key: str
    title: str
    hint: str


CHECKS = (
    Check("missing_email", "Accounts without an email address", "no email: invoices and notices cannot be emailed"),
    Check("missing_phone", "Accounts without a phone number", "no phone: no SMS, no call-back"),
    Check("invalid_phone", "Invalid phone numbers", "not a valid number in E.164 form (+27 and nine digits for South Africa)"),
    Check("site_no_coverage", "Sites without network coverage", "no FNO listed for the site: nothing can be ordered there"),
)
CHECK_KEYS = tuple(c.key for c in CHECKS)


class UnknownCheck(InvalidInput):
    pass


@lru_cache(maxsize=200_000)  # pure, and the desk cards ask about every open account's phone on each home page
def phone_problem(phone: str | None) -> tuple[str | None, str | None]:
    """(what is wrong, the E.164 form when it can be fixed by normalising) for a stored phone; (None, None) when fine."""
    if not phone:
        return None, None
    try:
        num = phonenumbers.parse(phone, "ZA")
    except phonenumbers.NumberParseException:
        return "not a phone number", None
    if not phonenumbers.is_valid_number(num):
        return "not a valid number" + (" for South Africa" if num.country_code == 27 else ""), None
    e164 = phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)
    if e164 != phone:
        return "not in E.164 form", e164
    return None, None


def _missing(col: Any) -> Any:
    return or_(col.is_(None), col == "")


def _no_coverage() -> Any:
    text_cov = cast(Site.fno_coverage, String)
    return or_(Site.fno_coverage.is_(None), text_cov.in_(("[]", "null")))


def _invalid_phones(session: Session) -> Iterator[tuple[Any, str, str | None]]:
    rows = session.execute(select(Account.id, Account.account_number, Account.name, Account.phone).where(_OPEN, Account.phone.is_not(None), Account.phone != "")
                           .order_by(Account.id)).yield_per(5000)
    for r in rows:
        what, fix = phone_problem(r.phone)
        if what:
            yield r, what, fix


def counts(session: Session) -> dict[str, int]:
    """How many accounts (sites for coverage) each check finds, open accounts only."""
    row = session.execute(select(func.count(Account.id).filter(_missing(Account.email)), func.count(Account.id).filter(_missing(Account.phone)))
                          .where(_OPEN)).one()
    sites = session.execute(select(func.count(Site.id)).join(Account, Account.id == Site.account_id).where(_OPEN, _no_coverage())).scalar_one()
    return {"missing_email": int(row[0]), "missing_phone": int(row[1]), "invalid_phone": sum(1 for _ in _invalid_phones(session)),
            "site_no_coverage": int(sites)}


def worklist(session: Session, *, check: str, limit: int = 500) -> list[dict[str, Any]]:
    """The accounts (or sites) a check finds, oldest account first, with what is wrong and the fix on offer.
    Raises UnknownCheck."""
    if check not in CHECK_KEYS:
        raise UnknownCheck(f"'{check}' is not a data-quality check ({', '.join(CHECK_KEYS)})", field="check")
    out: list[dict[str, Any]] = []
    if check in ("missing_email", "missing_phone"):
        col = Account.email if check == "missing_email" else Account.phone
        for r in session.execute(select(Account.id, Account.account_number, Account.name, Account.email, Account.phone, Account.status)
                                 .where(_OPEN, _missing(col)).order_by(Account.id).limit(limit)):
            out.append({"account_id": r.id, "account_number": r.account_number, "name": r.name, "email": r.email, "phone": r.phone,
                        "problem": "no email" if check == "missing_email" else "no phone", "fix": None, "site_id": None})
    elif check == "invalid_phone":
        for r, what, fix in _invalid_phones(session):
            out.append({"account_id": r.id, "account_number": r.account_number, "name": r.name, "email": None, "phone": r.phone,
                        "problem": what, "fix": fix, "site_id": None})
            if len(out) >= limit:
                break
    else:
        for r in session.execute(select(Site.id, Site.line1, Site.city, Account.id.label("account_id"), Account.account_number, Account.name)
                                 .join(Account, Account.id == Site.account_id).where(_OPEN, _no_coverage()).order_by(Site.id).limit(limit)):
            out.append({"account_id": r.account_id, "account_number": r.account_number, "name": r.name, "email": None, "phone": None,
                        "problem": f"no network listed for {r.line1}, {r.city}", "fix": None, "site_id": r.id})
    return out


def export_rows(session: Session, *, check: str) -> tuple[list[str], list[list[Any]]]:
    """Header and rows for the worklist export (through core/exports.py). Raises UnknownCheck."""
    rows = worklist(session, check=check, limit=100_000)
    return (["Account", "Name", "Email", "Phone", "Site", "Problem", "Suggested fix"],
            [[r["account_number"], r["name"], r["email"], r["phone"], r["site_id"], r["problem"], r["fix"]] for r in rows])


def normalise_phones(session: Session, *, account_ids: list[int] | None, now: datetime, actor: Actor) -> dict[str, int]:
    """The invalid-phone fix: phones that are valid numbers in another spelling ('082 555 1234') are rewritten in E.164,
    each audited; numbers that are not valid are left for a person. `account_ids` None = every fixable account.
    Returns {"fixed": n, "left": m}."""
    wanted = set(account_ids) if account_ids is not None else None
    fixed = left = 0
    todo = [(r.id, r.phone, fix) for r, _, fix in _invalid_phones(session) if wanted is None or r.id in wanted]
    for acc_id, old, fix in todo:
        if fix is None:
            left += 1
            continue
        acc = service.get_account(session, account_id=acc_id)
        acc.phone, acc.updated_at = fix, now
        events.record(session, now=now, actor=actor, entity_type="account", entity_id=acc_id, account_id=acc_id, action="updated",
                      reason="data quality: phone number written in E.164", before={"phone": old}, after={"phone": fix})
        fixed += 1
    session.flush()
    return {"fixed": fixed, "left": left}


def set_site_coverage(session: Session, *, site_id: int, partners: list[str], now: datetime, actor: Actor) -> Site:
    """The coverage fix: record which networks (partner codes) reach a site. Raises NotFound (site), InvalidInput (no
    partner named, or a code that is not a partner)."""
    from opsline.partners import service as partners_service

    site = service.get_site(session, site_id=site_id)
    codes = sorted({p.strip().lower() for p in partners if p and p.strip()})
    if not codes:
        raise InvalidInput("name at least one network (partner code) that covers the site", field="fno_coverage")
    known = {p["code"] for p in partners_service.list_partners(session)}
    unknown = [c for c in codes if c not in known]
    if unknown:
        raise InvalidInput(f"'{unknown[0]}' is not a partner code ({', '.join(sorted(known))})", field="fno_coverage")
    before = list(site.fno_coverage or [])
    site.fno_coverage = codes
    events.record(session, now=now, actor=actor, entity_type="site", entity_id=site.id, account_id=site.account_id, action="updated",
                  reason="data quality: network coverage recorded", before={"fno_coverage": before}, after={"fno_coverage": codes})
    session.flush()
    return site


CONFIRM_FIELDS = ("email", "phone", "billing_line1", "billing_line2", "billing_suburb", "billing_city", "billing_postal_code")


def confirm_details(session: Session, *, account_id: int, version: int, values: dict[str, str | None], contact: str, now: datetime,
                    actor: Actor) -> dict[str, Any]:
    """The step on every contact: the agent reads the details back and records what the customer confirmed or changed.
    Changed fields are saved (audited, optimistic version check) and a memo says what changed on which contact (or
    that the details were confirmed unchanged). Returns {"changed": {field: [old, new]}, "memo_id": id}.
    Raises AccountNotFound, InvalidInput (a value the account form refuses, an unknown field), StaleVersion."""
    bad = [k for k in values if k not in CONFIRM_FIELDS]
    if bad:
        raise InvalidInput(f"'{bad[0]}' cannot be confirmed here ({', '.join(CONFIRM_FIELDS)})", field=bad[0])
    acc = service.get_account(session, account_id=account_id)
    try:
        norm = AccountUpdate(version=version, **{k: (v.strip() if isinstance(v, str) and v.strip() else None) for k, v in values.items()})
    except ValidationError as exc:
        err = exc.errors()[0]
        raise InvalidInput(f"{err['loc'][0]}: {err['msg']}", field=str(err["loc"][0])) from None
    proposed = norm.model_dump(exclude={"version", "reason"})
    changed = {k: [getattr(acc, k), proposed[k]] for k in values if proposed.get(k) != getattr(acc, k) and not (proposed.get(k) is None and not getattr(acc, k))}
    where = (contact or "").strip()[:200] or "contact"
    if changed:
        service.update_account(session, account_id=acc.id, data=AccountUpdate(version=version, reason=f"details confirmed on {where}",
                                                                                **{k: v[1] for k, v in changed.items()}), now=now, actor=actor)
        body = f"Details checked with the customer on {where}; updated: " + "; ".join(f"{k} {old or '—'} → {new or '—'}" for k, (old, new) in changed.items())
    else:
        if acc.version != version:
            from opsline.core.errors import StaleVersion

            raise StaleVersion(f"account {acc.account_number} was changed by someone else; reload and try again")
        body = f"Details checked with the customer on {where}: confirmed unchanged ({', '.join(k for k in CONFIRM_FIELDS if getattr(acc, k))})."
    memo = service.add_memo(session, account_id=acc.id, data=MemoIn(category="support", body=body), now=now, actor=actor)
    return {"changed": changed, "memo_id": memo.id}


def home(session: Session, *, now: datetime, actor: Actor, tz: Any) -> list[HomeCard]:
    """Cards for the support and admin desks: one per check (one counting query for the account checks) and duplicates."""
    c = counts(session)
    cards = [HomeCard(desks=QUALITY_DESKS, title=chk.title, count=c[chk.key], href=f"/data-quality?check={chk.key}", permission="customers.quality",
                      hint=chk.hint if c[chk.key] else "none", tone="warn" if c[chk.key] else "normal", order=62 + i)
             for i, chk in enumerate(CHECKS)]
    return cards


def overview(session: Session) -> dict[str, Any]:
    """The data-quality page's header: each check with its count, and the possible duplicates count."""
    c = counts(session)
    return {"checks": [{"key": k.key, "title": k.title, "hint": k.hint, "count": c[k.key]} for k in CHECKS],
            "duplicates": customers_home.possible_duplicates(session)}


def confirm_panel(session: Session, *, account_id: int, now: datetime) -> dict[str, Any]:
    """The account page's "confirm or update details" form (the fields and the version the save checks)."""
    acc = service.get_account(session, account_id=account_id)
    return {"account": {"version": acc.version, **{f: getattr(acc, f) for f in CONFIRM_FIELDS}}, "fields": CONFIRM_FIELDS, "back": None, "contact": None}
