"""Data protection (POPIA): export everything held about one person, and erase it on request (four eyes) while keeping
the financial records the law requires.

A person is a party; `account_id` names any of their accounts and the request covers every account of that party.
The export reads each area's account-scoped tables (reading for a report is allowed; writing them is not). Erasure
replaces the personal data in the customer tables (party, accounts, contacts, sites) with a token and publishes
`customers.personal_data_erased` so every other area erases its own copies in the same transaction. Invoices, the
ledger, payments (amounts and dates) and the audit log stay, keyed by ids."""

from __future__ import annotations

import enum
import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, LargeBinary, String, Text, func, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from opsline.areas import load_areas
from opsline.core import domain_events, events, lifecycle
from opsline.core.errors import Conflict, InvalidInput, NotFound
from opsline.core.events import Actor
from opsline.core.exports import Sheet, export_sheets
from opsline.core.lifecycle import Lifecycle
from opsline.customers.models import Account, Contact, Memo, Party, Site
from opsline.db.base import REDACTION_PREFIX, Base, IdPk, JSONType, metadata
from opsline.db.session import lock_for_write

ERASED_EVENT = "customers.personal_data_erased"


class PrivacyRequestState(enum.StrEnum):
    REQUESTED = "requested"
    ERASED = "erased"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"


_P = PrivacyRequestState
# A POPIA erasure request: one person asks, one staff member records it, a second with privacy.approve decides.
PRIVACY_REQUEST = Lifecycle(
    name="privacy_request",
    states=PrivacyRequestState,
    initial=_P.REQUESTED,
    transitions={
        _P.REQUESTED: {"approve": _P.ERASED, "reject": _P.REJECTED, "withdraw": _P.WITHDRAWN},
        _P.ERASED: {},
        _P.REJECTED: {},
        _P.WITHDRAWN: {},
    },
    permissions={"approve": "privacy.approve", "reject": "privacy.approve", "withdraw": "privacy.request"},
    needs_reason={"reject", "withdraw"},
    four_eyes={"approve": "requested_by"},
    labels={"approve": "Approve and erase", "reject": "Reject", "withdraw": "Withdraw"},
)


class PrivacyRequest(Base):
    """An erasure request for one party (all its accounts), with who asked, who decided and what was erased."""

    __tablename__ = "privacy_request"

    id: Mapped[IdPk]
    party_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("party.id"))
    account_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("account.id"))  # the account the request came through
    state: Mapped[str] = mapped_column(String(20), default=_P.REQUESTED)
    reason: Mapped[str] = mapped_column(Text)
    requested_by: Mapped[str] = mapped_column(String(120))
    requested_at: Mapped[datetime]
    decided_by: Mapped[str | None] = mapped_column(String(120))
    decided_at: Mapped[datetime | None]
    erased: Mapped[dict[str, Any] | None] = mapped_column(JSONType)  # rows changed per table (never the data itself)

    __table_args__ = (PRIVACY_REQUEST.check(), Index("ix_privacy_request_party", "party_id", "state"))


class UnableToErase(Conflict):
    title = "Erasure not allowed"
    type_slug = "erasure-not-allowed"


# What an export holds, per section: (title, table, how rows belong to the person). Tables an installation lacks are
# skipped; binary columns (attachments, PDFs) are listed by name only.
EXPORT_SECTIONS: tuple[tuple[str, str, str], ...] = (
    ("Party", "party", "party"),
    ("Accounts", "account", "account_pk"),
    ("Contacts", "contact", "account"),
    ("Sites", "site", "account"),
    ("Products", "product", "account"),
    ("Invoices", "invoice", "account"),
    ("Credit notes", "credit_note", "account"),
    ("Payments", "payment", "account"),
    ("Refunds", "payment_refund", "account"),
    ("Arrangements", "arrangement", "account"),
    ("Cases", "support_case", "account"),
    ("Case notes", "case_note", "account"),
    ("Memos", "memo", "account"),
    ("Messages", "message", "account"),
    ("Consents", "contact_preference", "account"),
    ("Contact profile", "contact_profile", "account"),
    ("Privacy requests", "privacy_request", "party"),
)


def _party_and_accounts(session: Session, *, account_id: int) -> tuple[Party, list[int]]:
    acc = session.get(Account, account_id)
    if acc is None:
        raise NotFound(f"account {account_id} not found", field="account")
    party = session.get(Party, acc.party_id)
    assert party is not None
    ids = list(session.scalars(select(Account.id).where(Account.party_id == party.id).order_by(Account.id)))
    return party, ids


def _plain(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def collect(session: Session, *, account_id: int) -> dict[str, Any]:
    """Everything held about the person behind `account_id`: {"party_id", "account_numbers", "sections": {title:
    {"columns": [...], "rows": [[...]]}}}. One query per section. Raises NotFound."""
    party, ids = _party_and_accounts(session, account_id=account_id)
    sections: dict[str, dict[str, Any]] = {}
    for title, table_name, belongs in EXPORT_SECTIONS:
        table = metadata.tables.get(table_name)
        if table is None or (belongs == "account" and "account_id" not in table.c):
            continue
        cols = [c for c in table.c if not isinstance(c.type, LargeBinary)]
        if belongs == "party":
            where = table.c.id == party.id if table_name == "party" else table.c.party_id == party.id
        elif belongs == "account_pk":
            where = table.c.id.in_(ids)
        else:
            where = table.c.account_id.in_(ids)
        rows = session.execute(select(*cols).where(where).order_by(*[c for c in table.primary_key.columns])).all()
        sections[title] = {"columns": [c.name for c in cols], "rows": [[_plain(v) for v in r] for r in rows]}
    numbers = list(session.scalars(select(Account.account_number).where(Account.id.in_(ids)).order_by(Account.id)))
    return {"party_id": party.id, "account_numbers": numbers, "sections": sections}


def export_person(session: Session, *, account_id: int, fmt: str, now: datetime, actor: Actor) -> tuple[str, str, bytes]:
    """(file name, media type, bytes) of the person's data as JSON or an xlsx workbook (one sheet per section, through
    the one safe export writer), and an audit event saying who exported whose data. Raises NotFound, InvalidInput (format)."""
    if fmt not in ("json", "xlsx"):
        raise InvalidInput(f"format '{fmt}' is not json or xlsx", field="format")
    data = collect(session, account_id=account_id)
    stem = f"personal-data-{data['account_numbers'][0] if data['account_numbers'] else data['party_id']}"
    events.record(session, now=now, actor=actor, entity_type="party", entity_id=data["party_id"], account_id=account_id,
                  action="privacy_exported", after={"format": fmt, "sections": {k: len(v["rows"]) for k, v in data["sections"].items()}})
    if fmt == "json":
        body = json.dumps({"generated_at": now.isoformat(), **data}, indent=2, default=str, ensure_ascii=False).encode()
        return f"{stem}.json", "application/json", body
    sheets = [Sheet(title, s["columns"], [[json.dumps(v, default=str) if isinstance(v, (dict, list)) else v for v in r] for r in s["rows"]])
              for title, s in data["sections"].items()]
    return export_sheets("xlsx", name=stem, sheets=sheets)


def blockers(session: Session, *, account_ids: list[int]) -> list[str]:
    """Why the person's data may not be erased yet (empty when it may): money owed either way, open cases, open orders.
    Reads the ledger, cases and orders tables (reading is allowed across areas)."""
    why: list[str] = []
    ledger = metadata.tables["ledger_entry"]
    for currency, total in session.execute(select(ledger.c.currency, func.sum(ledger.c.amount_minor)).where(ledger.c.account_id.in_(account_ids))
                                           .group_by(ledger.c.currency)).all():
        if total:
            why.append(f"the balance is {currency} {Decimal(total) / 100:,.2f} ({'owed by the customer' if total > 0 else 'owed to the customer'}); settle, refund or write it off first")
    cases = metadata.tables["support_case"]
    final_cases = _final_states("case")
    n_cases = session.scalar(select(func.count()).select_from(cases).where(cases.c.account_id.in_(account_ids), cases.c.state.not_in(final_cases)))
    if n_cases:
        why.append(f"{n_cases} case(s) are still open; close them first")
    orders = metadata.tables["product_order"]
    final_orders = _final_states("product_order")
    n_orders = session.scalar(select(func.count()).select_from(orders).where(orders.c.account_id.in_(account_ids), orders.c.state.not_in(final_orders)))
    if n_orders:
        why.append(f"{n_orders} order(s) are still open; complete or cancel them first")
    return why


def _final_states(lifecycle_name: str) -> list[str]:
    """The final states of another area's declared lifecycle (from the area registry, so no import of that area)."""
    lc = next(lc for a in load_areas() for lc in a.lifecycles if lc.name == lifecycle_name)
    return [s for s in lc.state_values() if lc.is_final(s)]


def request_erasure(session: Session, *, account_id: int, reason: str, now: datetime, actor: Actor) -> PrivacyRequest:
    """Record a person's request to erase their data (the first of the four eyes). Raises NotFound, InvalidInput (no
    reason), Conflict (a request for this person is already waiting), UnableToErase (naming what blocks it)."""
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("say how the person asked (date, channel, reference)", field="reason")
    lock_for_write(session)
    party, ids = _party_and_accounts(session, account_id=account_id)
    waiting = session.scalar(select(PrivacyRequest.id).where(PrivacyRequest.party_id == party.id, PrivacyRequest.state == _P.REQUESTED))
    if waiting:
        raise Conflict(f"erasure request {waiting} for this person is already waiting for a decision", field="account")
    if session.scalar(select(PrivacyRequest.id).where(PrivacyRequest.party_id == party.id, PrivacyRequest.state == _P.ERASED)):
        raise Conflict("this person's data was already erased", field="account")
    why = blockers(session, account_ids=ids)
    if why:
        raise UnableToErase("cannot erase yet: " + "; ".join(why), field="account", extra={"blockers": why})
    req = PrivacyRequest(party_id=party.id, account_id=account_id, state=_P.REQUESTED, reason=reason, requested_by=actor.name, requested_at=now)
    session.add(req)
    session.flush()
    events.record(session, now=now, actor=actor, entity_type="privacy_request", entity_id=req.id, account_id=account_id, action="requested",
                  reason=reason, after={"party_id": party.id, "accounts": ids})
    return req


def get_request(session: Session, *, request_id: int) -> PrivacyRequest:
    req = session.get(PrivacyRequest, request_id)
    if req is None:
        raise NotFound(f"privacy request {request_id} not found", field="request")
    return req


def approve_erasure(session: Session, *, request_id: int, now: datetime, actor: Actor) -> dict[str, int]:
    """The second person approves: the person's data is erased in this transaction and every area is told
    (`customers.personal_data_erased`). Returns rows changed per table. Raises NotFound, FourEyesRequired (the requester),
    ActionNotPermitted, TransitionNotAllowed (decided already), UnableToErase (a balance, case or order appeared since)."""
    lock_for_write(session)
    req = get_request(session, request_id=request_id)
    party, ids = _party_and_accounts(session, account_id=req.account_id)
    why = blockers(session, account_ids=ids) if req.state == _P.REQUESTED else []
    if why:
        raise UnableToErase("cannot erase yet: " + "; ".join(why), field="request", extra={"blockers": why})
    lifecycle.transition(session, PRIVACY_REQUEST, req, "approve", now=now, actor=actor, account_id=req.account_id, label=f"privacy request {req.id}")
    counts = _erase(session, party_id=party.id, account_ids=ids, token=f"erased-{req.id}")
    domain_events.publish(session, ERASED_EVENT, {"id": req.id, "party_id": party.id, "account_ids": ids}, now=now, actor=actor)
    req.decided_by, req.decided_at, req.erased = actor.name, now, counts
    events.record(session, now=now, actor=actor, entity_type="party", entity_id=party.id, account_id=req.account_id, action="erased",
                  reason=f"privacy request {req.id}", after={"rows": counts})
    session.flush()
    return counts


def decide_other(session: Session, *, request_id: int, action: str, reason: str, now: datetime, actor: Actor) -> None:
    """Reject (privacy.approve) or withdraw (privacy.request) a waiting request, with a reason. Nothing is erased."""
    if action not in ("reject", "withdraw"):
        raise InvalidInput(f"'{action}' is not reject or withdraw", field="action")
    req = get_request(session, request_id=request_id)
    lifecycle.transition(session, PRIVACY_REQUEST, req, action, now=now, actor=actor, reason=reason, account_id=req.account_id,
                         label=f"privacy request {req.id}")
    req.decided_by, req.decided_at = actor.name, now


def _erase(session: Session, *, party_id: int, account_ids: list[int], token: str) -> dict[str, int]:
    """Replace personal data with `token` in the customer tables, set-based. Account numbers, ids, kinds, segments,
    currencies and dates stay (invoices, the ledger and payments refer to them)."""
    counts: dict[str, int] = {}
    counts["party"] = session.execute(update(Party).where(Party.id == party_id).values(
        name=f"Erased person {token}", given_name=None, family_name=None, registration_number=None, id_number=None)).rowcount
    counts["account"] = session.execute(update(Account).where(Account.id.in_(account_ids)).values(
        name=f"Erased {token}", email=None, phone=None, billing_line1=None, billing_line2=None, billing_suburb=None, billing_city=None,
        billing_province=None, billing_postal_code=None, vat_number=None, version=Account.version + 1)
        .execution_options(synchronize_session=False)).rowcount
    counts["contact"] = session.execute(update(Contact).where(Contact.account_id.in_(account_ids)).values(
        name=f"Erased {token}", email=None, phone=None)).rowcount
    counts["site"] = session.execute(update(Site).where(Site.account_id.in_(account_ids)).values(
        label="Erased", line1=f"Erased {token}", line2=None, suburb=None, city="Erased", postal_code=None, latitude=None, longitude=None)).rowcount
    # Memos stay append-only: the database lets a body be replaced by a redaction marker and nothing else.
    counts["memo"] = session.execute(update(Memo).where(Memo.account_id.in_(account_ids)).values(
        body=f"{REDACTION_PREFIX} under privacy request {token.removeprefix('erased-')}]")).rowcount
    session.expire_all()
    return counts


def requests_for(session: Session, *, account_id: int) -> list[dict[str, Any]]:
    """The person's privacy requests, newest first, with the actions each allows."""
    acc = session.get(Account, account_id)
    if acc is None:
        raise NotFound(f"account {account_id} not found", field="account")
    rows = session.scalars(select(PrivacyRequest).where(PrivacyRequest.party_id == acc.party_id).order_by(PrivacyRequest.id.desc()))
    return [_as_dict(r) for r in rows]


def waiting_requests(session: Session) -> list[dict[str, Any]]:
    """Requests waiting for the second person, oldest first, with the account number."""
    rows = session.execute(select(PrivacyRequest, Account.account_number).join(Account, Account.id == PrivacyRequest.account_id)
                           .where(PrivacyRequest.state == _P.REQUESTED).order_by(PrivacyRequest.id)).all()
    return [_as_dict(r) | {"account_number": n} for r, n in rows]


def _as_dict(r: PrivacyRequest) -> dict[str, Any]:
    return {"id": r.id, "party_id": r.party_id, "account_id": r.account_id, "state": r.state, "reason": r.reason, "requested_by": r.requested_by,
            "requested_at": r.requested_at, "decided_by": r.decided_by, "decided_at": r.decided_at, "erased": r.erased,
            "actions": PRIVACY_REQUEST.allowed_actions(r.state)}


def panel(session: Session, *, account_id: int, now: datetime) -> dict[str, Any]:
    """The account page's privacy panel: the person's requests."""
    return {"account_id": account_id, "requests": requests_for(session, account_id=account_id)}
