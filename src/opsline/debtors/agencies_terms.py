"""Collection agencies' terms as data a debtors manager edits: the layout of the hand-over file we send (columns, headers,
date format, CSV delimiter or xlsx), commission (flat, the partner's rate, or by age of the debt at hand-over) and the
layout of the recovery files they send back. CollectCo (CSV) and MBD (xlsx) get their own layouts, stored at first use."""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from opsline.core import events, lifecycle
from opsline.core.errors import InvalidInput, NotFound, StaleVersion
from opsline.core.events import Actor
from opsline.db.session import lock_for_write
from opsline.debtors.agency_models import COMMISSION_BASES, FILE_FORMATS, AgencyCommissionRate, AgencyTerms
from opsline.partners.models import Partner, PartnerKind
from opsline.users.roles import allowed


class UnableToSaveTerms(InvalidInput):
    title = "Unable to save the agency's terms"
    type_slug = "unable-to-save-agency-terms"



# What a hand-over file can carry: field -> (label, kind). Kinds format the cell: money in major units, dates in the
# agency's date format, text as is.
FIELDS: dict[str, tuple[str, str]] = {
    "reference": ("Our placement reference (PL-n)", "text"),
    "batch": ("Hand-over batch (HO-n)", "text"),
    "account_number": ("Account number", "text"),
    "name": ("Account name", "text"),
    "id_number": ("ID or registration number", "text"),
    "email": ("Email", "text"),
    "phone": ("Phone", "text"),
    "address": ("Billing address (one line)", "text"),
    "postal_code": ("Postal code", "text"),
    "amount": ("Amount handed over", "money"),
    "written_off": ("Of it written off", "money"),
    "on_book": ("Of it on the books", "money"),
    "currency": ("Currency", "text"),
    "oldest_due": ("Oldest unpaid debt due", "date"),
    "last_payment_on": ("Last payment", "date"),
    "placed_on": ("Handed over on", "date"),
    "age_days": ("Age of the debt (days)", "int"),
    "commission_percent": ("Commission %", "text"),
}
RECOVERY_FIELDS = {"account": "Our placement reference (PL-n) or account number", "amount": "Amount paid", "paid_on": "Date paid",
                   "agency_ref": "The agency's receipt reference"}

_COLLECTCO = {
    "export_format": "csv", "export_delimiter": ";", "export_date_format": "%Y%m%d",
    "export_columns": [{"field": f, "header": h} for f, h in (
        ("reference", "ClientRef"), ("account_number", "AccountNo"), ("name", "DebtorName"), ("id_number", "IDNumber"), ("phone", "Cell"),
        ("email", "Email"), ("address", "PostalAddress"), ("postal_code", "PostCode"), ("amount", "Balance"), ("oldest_due", "DebtDate"),
        ("last_payment_on", "LastPaymentDate"), ("placed_on", "HandoverDate"))],
    "commission_basis": "by_age", "bands": [(0, Decimal("15.00")), (180, Decimal("20.00")), (365, Decimal("25.00"))],
    "recovery_format": "csv", "recovery_delimiter": ";", "recovery_date_format": "%Y%m%d",
    "recovery_columns": {"account": "ClientRef", "amount": "AmountPaid", "paid_on": "PaymentDate", "agency_ref": "ReceiptNo"},
}
_MBD = {
    "export_format": "xlsx", "export_delimiter": ",", "export_date_format": "%d/%m/%Y",
    "export_columns": [{"field": f, "header": h} for f, h in (
        ("account_number", "Account Number"), ("name", "Customer Name"), ("id_number", "ID / Reg Number"), ("phone", "Contact Number"),
        ("email", "Email Address"), ("address", "Address"), ("amount", "Outstanding Amount"), ("written_off", "Written Off"),
        ("oldest_due", "Oldest Invoice Date"), ("placed_on", "Date Placed"), ("reference", "Our Reference"))],
    "commission_basis": "flat", "bands": [],
    "recovery_format": "xlsx", "recovery_delimiter": ",", "recovery_date_format": "%d/%m/%Y",
    "recovery_columns": {"account": "Account Number", "amount": "Amount Collected", "paid_on": "Date Paid", "agency_ref": "MBD Ref"},
}
_GENERIC = {
    "export_format": "csv", "export_delimiter": ",", "export_date_format": "%Y-%m-%d",
    "export_columns": [{"field": f, "header": FIELDS[f][0]} for f in ("reference", "account_number", "name", "id_number", "phone", "email", "address",
                                                                        "amount", "currency", "oldest_due", "placed_on")],
    "commission_basis": "flat", "bands": [],
    "recovery_format": "csv", "recovery_delimiter": ",", "recovery_date_format": "%Y-%m-%d",
    "recovery_columns": {"account": "reference", "amount": "amount", "paid_on": "paid_on", "agency_ref": "receipt"},
}
DEFAULT_TERMS = {"collectco": _COLLECTCO, "mbd": _MBD}


def _agency(session: Session, code: str) -> Partner:
    p = session.get(Partner, (code or "").strip())
    if p is None or p.kind != PartnerKind.DEBT_COLLECTOR:
        known = ", ".join(session.execute(select(Partner.code).where(Partner.kind == PartnerKind.DEBT_COLLECTOR).order_by(Partner.code)).scalars())
        raise NotFound(f"no collection agency '{code}' (known: {known or 'none'})", field="agency")
    return p


def ensure_terms(session: Session, *, now: datetime) -> None:
    """Store the default terms of every collection agency that has none (CollectCo and MBD get their own layouts; any
    other agency a generic CSV). Idempotent; an operator's edits are kept."""
    have = set(session.execute(select(AgencyTerms.partner_code)).scalars())
    for code in session.execute(select(Partner.code).where(Partner.kind == PartnerKind.DEBT_COLLECTOR).order_by(Partner.code)).scalars():
        if code in have:
            continue
        t = DEFAULT_TERMS.get(code, _GENERIC)
        session.add(AgencyTerms(partner_code=code, **{k: v for k, v in t.items() if k != "bands"}, updated_at=now, updated_by="seed", version=1))
        session.flush()
        if t["bands"]:
            session.execute(insert(AgencyCommissionRate), [{"partner_code": code, "min_age_days": d, "percent": p} for d, p in t["bands"]])
    session.flush()


def _terms_dict(p: Partner, t: AgencyTerms | dict[str, Any], bands: list[tuple[int, Decimal]]) -> dict[str, Any]:
    g = (lambda k: t[k]) if isinstance(t, dict) else (lambda k: getattr(t, k))
    return {"code": p.code, "name": p.name, "active": p.active, "contact_email": p.contact_email, "currency": p.currency,
            "flat_percent": Decimal(p.commission_percent or 0).quantize(Decimal("0.01")),
            **{k: g(k) for k in ("export_format", "export_delimiter", "export_date_format", "export_columns", "commission_basis", "recovery_format",
                                 "recovery_delimiter", "recovery_date_format", "recovery_columns")},
            "version": 0 if isinstance(t, dict) else t.version, "stored": not isinstance(t, dict),
            "updated_at": None if isinstance(t, dict) else t.updated_at, "updated_by": None if isinstance(t, dict) else t.updated_by,
            "bands": [{"min_age_days": d, "percent": Decimal(pc).quantize(Decimal("0.01"))} for d, pc in bands]}


def get_terms(session: Session, *, code: str) -> dict[str, Any]:
    """An agency's terms (its stored ones, else the defaults it would get). Raises NotFound."""
    p = _agency(session, code)
    t = session.get(AgencyTerms, p.code)
    if t is None:
        d = DEFAULT_TERMS.get(p.code, _GENERIC)
        return _terms_dict(p, d, list(d["bands"]))
    bands = [(int(r.min_age_days), r.percent) for r in session.execute(
        select(AgencyCommissionRate).where(AgencyCommissionRate.partner_code == p.code).order_by(AgencyCommissionRate.min_age_days)).scalars()]
    return _terms_dict(p, t, bands)


def list_agencies(session: Session) -> list[dict[str, Any]]:
    return [get_terms(session, code=c) for c in session.execute(
        select(Partner.code).where(Partner.kind == PartnerKind.DEBT_COLLECTOR).order_by(Partner.name)).scalars()]


def commission_percent(terms: dict[str, Any], age_days: int) -> Decimal:
    """The commission rate for debt `age_days` old at hand-over: the band with the largest threshold not above it
    (by_age), else the agency's flat rate."""
    if terms["commission_basis"] == "by_age":
        fit = [b["percent"] for b in terms["bands"] if b["min_age_days"] <= age_days]
        if fit:
            return fit[-1]
    return terms["flat_percent"]


def commission_minor(amount_minor: int, percent: Decimal) -> int:
    """Commission on a recovery: amount x percent / 100, rounded half-up to the minor unit."""
    return int((Decimal(int(amount_minor)) * percent / 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


_FIELD_LINE = re.compile(r"^\s*([a-z_]+)\s*=\s*(.+?)\s*$")
_BAND_LINE = re.compile(r"^\s*(\d{1,5})\s*(?:days?)?\s*=\s*(\d{1,3}(?:\.\d{1,2})?)\s*%?\s*$")


def _check_date_format(fmt: str, field: str) -> str:
    fmt = (fmt or "").strip()
    if not fmt or "%" not in fmt or len(fmt) > 20:
        raise UnableToSaveTerms(f"'{fmt}' is not a date format like %d/%m/%Y or %Y%m%d", field=field)
    try:
        probe = date(2026, 11, 23).strftime(fmt)
        if datetime.strptime(probe, fmt).date() != date(2026, 11, 23):
            raise ValueError
    except ValueError:
        raise UnableToSaveTerms(f"'{fmt}' does not write and read back a date (use %d, %m and %Y)", field=field) from None
    return fmt


def _check_delimiter(raw: str, field: str) -> str:
    raw = {"tab": "\t", "\\t": "\t"}.get((raw or "").strip().lower(), raw or "")
    if raw not in (",", ";", "|", "\t"):
        raise UnableToSaveTerms(f"'{raw}' is not a CSV delimiter (one of , ; | tab)", field=field)
    return raw


def save_terms(session: Session, *, code: str, export_format: str, export_delimiter: str, export_date_format: str, export_columns: str,
               commission_basis: str, bands: str, recovery_format: str, recovery_delimiter: str, recovery_date_format: str,
               recovery_columns: dict[str, str], version: int, now: datetime, actor: Actor) -> dict[str, Any]:
    """Save an agency's terms from the form: `export_columns` one `field = Header` a line, in file order; `bands` one
    `min_age_days = percent` a line (by_age). `version` is the version the form showed (0: never saved). Raises
    UnableToSaveTerms naming the field, StaleVersion (saved by someone else meanwhile), ActionNotPermitted, NotFound."""
    if not actor.is_system and not allowed(actor.roles, "debtors.agency"):
        raise lifecycle.ActionNotPermitted("your role does not allow 'debtors.agency'", extra={"permission": "debtors.agency"})
    p = _agency(session, code)
    for f, v in (("export_format", export_format), ("recovery_format", recovery_format)):
        if v not in FILE_FORMATS:
            raise UnableToSaveTerms(f"'{v}' is not csv or xlsx", field=f)
    if commission_basis not in COMMISSION_BASES:
        raise UnableToSaveTerms(f"'{commission_basis}' is not flat or by_age", field="commission_basis")
    cols: list[dict[str, str]] = []
    for k, line in enumerate((export_columns or "").splitlines(), start=1):
        if not line.strip():
            continue
        m = _FIELD_LINE.match(line)
        if not m or m.group(1) not in FIELDS:
            raise UnableToSaveTerms(f"line {k} '{line.strip()}' is not 'field = Header' with a known field ({', '.join(FIELDS)})", field="export_columns")
        if len(m.group(2)) > 60:
            raise UnableToSaveTerms(f"line {k}: a header of at most 60 characters", field="export_columns")
        cols.append({"field": m.group(1), "header": m.group(2)})
    if not cols:
        raise UnableToSaveTerms("the hand-over file needs at least one column", field="export_columns")
    if not any(c["field"] in ("reference", "account_number") for c in cols):
        raise UnableToSaveTerms("the hand-over file must carry our reference or the account number (recoveries name it)", field="export_columns")
    if len({c["header"].lower() for c in cols}) != len(cols):
        raise UnableToSaveTerms("two columns have the same header", field="export_columns")
    parsed: list[tuple[int, Decimal]] = []
    for k, line in enumerate((bands or "").splitlines(), start=1):
        if not line.strip():
            continue
        m = _BAND_LINE.match(line)
        if not m or Decimal(m.group(2)) > 100:
            raise UnableToSaveTerms(f"line {k} '{line.strip()}' is not 'days = percent' (percent 0 to 100)", field="bands")
        parsed.append((int(m.group(1)), Decimal(m.group(2)).quantize(Decimal("0.01"))))
    if len({d for d, _ in parsed}) != len(parsed):
        raise UnableToSaveTerms("two bands start at the same age", field="bands")
    parsed.sort()
    if commission_basis == "by_age" and (not parsed or parsed[0][0] != 0):
        raise UnableToSaveTerms("commission by age needs a band starting at 0 days", field="bands")
    rc = {k: (recovery_columns.get(k) or "").strip() for k in RECOVERY_FIELDS}
    for k, v in rc.items():
        if not v or len(v) > 60:
            raise UnableToSaveTerms(f"give the recovery file's header for {RECOVERY_FIELDS[k].lower()}", field=f"recovery_columns.{k}")
    if len({v.lower() for v in rc.values()}) != len(rc):
        raise UnableToSaveTerms("two recovery columns have the same header", field="recovery_columns")
    values = {"export_format": export_format, "export_delimiter": _check_delimiter(export_delimiter, "export_delimiter"),
              "export_date_format": _check_date_format(export_date_format, "export_date_format"), "export_columns": cols,
              "commission_basis": commission_basis, "recovery_format": recovery_format,
              "recovery_delimiter": _check_delimiter(recovery_delimiter, "recovery_delimiter"),
              "recovery_date_format": _check_date_format(recovery_date_format, "recovery_date_format"), "recovery_columns": rc}
    lock_for_write(session)
    before = get_terms(session, code=p.code)
    t = session.execute(select(AgencyTerms).where(AgencyTerms.partner_code == p.code).with_for_update()).scalar_one_or_none()
    if (t.version if t else 0) != version:
        raise StaleVersion(f"{p.name}'s terms were changed by {t.updated_by if t else 'someone'} meanwhile; reload and try again", field="version")
    if t is None:
        t = AgencyTerms(partner_code=p.code, version=0, updated_at=now, updated_by=actor.name, **values)
        session.add(t)
    for k, v in values.items():
        setattr(t, k, v)
    t.version, t.updated_at, t.updated_by = (t.version or 0) + 1, now, actor.name
    session.flush()
    session.execute(delete(AgencyCommissionRate).where(AgencyCommissionRate.partner_code == p.code))
    if parsed:
        session.execute(insert(AgencyCommissionRate), [{"partner_code": p.code, "min_age_days": d, "percent": pc} for d, pc in parsed])
    after = get_terms(session, code=p.code)
    keep = ("export_format", "export_delimiter", "export_date_format", "export_columns", "commission_basis", "recovery_format", "recovery_delimiter",
            "recovery_date_format", "recovery_columns")
    events.record(session, now=now, actor=actor, entity_type="agency_terms", entity_id=p.code, action="updated",
                  before={k: before[k] for k in keep} | {"bands": [[b["min_age_days"], str(b["percent"])] for b in before["bands"]]},
                  after={k: after[k] for k in keep} | {"bands": [[d, str(pc)] for d, pc in parsed]})
    return after


__all__ = ["DEFAULT_TERMS", "FIELDS", "RECOVERY_FIELDS", "UnableToSaveTerms", "commission_minor", "commission_percent", "ensure_terms",
           "get_terms", "list_agencies", "save_terms"]
