"""What a signed-in customer may see and do, each action delegated to the area that owns it (invoicing, cancellations,
logistics, cases, customers, notifications, debtors, b2b). This module only decides scope (which accounts a customer
may reach) and leaves a memo on the account for the staff; it holds no business rules of its own."""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from opsline.billing import service as billing
from opsline.billing.invoicing import service as invoicing
from opsline.billing.invoicing.documents import company_profile
from opsline.cancellations import queries as cancellation_queries
from opsline.cancellations import service as cancellations
from opsline.cases import queries as case_queries
from opsline.cases import service as cases
from opsline.cases.schemas import CaseIn, NoteIn
from opsline.core import events
from opsline.core.errors import InvalidInput, NotFound
from opsline.core.localtime import local_date
from opsline.core.money import Money
from opsline.customers import service as customers
from opsline.customers.models import Account
from opsline.customers.schemas import AccountUpdate, MemoIn
from opsline.inventory import service as inventory
from opsline.logistics import service as logistics
from opsline.logistics.errors import UnableToBookCollection
from opsline.notifications import service as notifications
from opsline.portal.auth import Customer, ensure_templates
from opsline.portal.models import PortalUser

log = logging.getLogger("opsline.portal")

# What each portal role may do on its customer's accounts (a consumer's own login is the holder).
ROLE_CAN: dict[str, frozenset[str]] = {
    "holder": frozenset({"view", "billing", "order", "support", "profile"}),
    "admin": frozenset({"view", "billing", "order", "support", "profile", "users"}),
    "viewer": frozenset({"view"}),
    "orderer": frozenset({"view", "order", "support"}),
    "billing": frozenset({"view", "billing", "support"}),
}
CASE_CATEGORIES = (("billing_account", "Billing & account"), ("device_technical", "Device / technical"),
                   ("network_coverage", "Network & coverage"), ("complaint", "Complaint"), ("sales", "Sales enquiry"))
CANCEL_REASONS = ("moving", "price", "service_quality", "competitor", "financial", "other")


class AccountHidden(NotFound):
    """An account (or a thing on one) the signed-in customer may not see: answered as 404, and logged."""


class NotAllowedForRole(NotFound):
    """The customer's portal role does not cover this action (answered as 404: the page does not exist for them)."""


# --- scope --------------------------------------------------------------------------------------------
def accounts_of(session: Session, *, customer: Customer) -> list[dict[str, Any]]:
    """The accounts of every customer (party) the login acts for, with the login's role on each."""
    if not customer.parties:
        return []
    rows = session.execute(select(Account.id, Account.account_number, Account.name, Account.kind, Account.status, Account.party_id,
                                  Account.currency).where(Account.party_id.in_(list(customer.parties))).order_by(Account.account_number)).all()
    return [dict(r._mapping) | {"role": customer.parties[r.party_id]} for r in rows]


def account_for(session: Session, *, customer: Customer, number: str, need: str = "view") -> dict[str, Any]:
    """One account the customer may reach with `need` (view, billing, order, support, profile).
    Raises AccountHidden (not theirs: the caller logs it), NotAllowedForRole."""
    row = session.execute(select(Account.id, Account.account_number, Account.name, Account.kind, Account.status, Account.party_id,
                                 Account.currency, Account.email, Account.phone, Account.version)
                          .where(Account.account_number == (number or "")[:20])).first()
    if row is None or row.party_id not in customer.parties:
        raise AccountHidden(f"account {number} not found")
    role = customer.parties[row.party_id]
    if need not in ROLE_CAN[role]:
        raise NotAllowedForRole(f"your role ({role}) does not include this")
    return dict(row._mapping) | {"role": role, "can": sorted(ROLE_CAN[role])}


def record_refusal(session: Session, *, customer: Customer, what: str, now: datetime, ip: str) -> None:
    """Log and audit a customer reaching for something not theirs (another customer's account or invoice URL)."""
    log.warning("portal: %s asked for %s from %s (refused with 404)", customer.email, what, ip)
    events.record(session, now=now, actor=customer.actor, entity_type="portal_user", entity_id=customer.user_id, action="access_refused",
                  after={"url": what[:300], "ip": ip[:64]})


def memo(session: Session, *, account_id: int, customer: Customer, body: str, now: datetime, category: str = "general") -> None:
    """The memo on the staff account page that says what the customer did in self-service."""
    customers.add_memo(session, account_id=account_id, data=MemoIn(category=category, body=f"Self-service ({customer.email}): {body}"[:10_000]),
                       now=now, actor=customer.actor)


def _tell(session: Session, *, customer: Customer, account_id: int, subject: str, text: str, link: str, now: datetime) -> int:
    """An email to the customer confirming what they did (through notifications, so it shows on the timeline)."""
    ensure_templates(session, now=now)
    return notifications.send(session, event="portal.action", account_id=account_id, to=customer.email, channel="email", category="service",
                              context={"name": customer.full_name, "subject": subject, "text": text, "link": link}, now=now,
                              actor=customer.actor, on_opt_out="suppress")


# --- reading ------------------------------------------------------------------------------------------
def pay_instructions(session: Session, *, account: dict[str, Any]) -> dict[str, Any]:
    """How to pay: the company's bank details with this account's number as the reference."""
    company = company_profile(session)
    return {"bank_name": company.get("bank_name"), "account_number": company.get("bank_account_number"),
            "branch_code": company.get("bank_branch_code"), "reference": account["account_number"], "company": company.get("name")}


def home(session: Session, *, customer: Customer, now: datetime) -> list[dict[str, Any]]:
    out = []
    for a in accounts_of(session, customer=customer):
        bal = billing.account_balance(session, account_id=a["id"], as_of=now)
        out.append(a | {"balance": bal["balance"]})
    return out


def account_page(session: Session, *, account: dict[str, Any], now: datetime, tz: ZoneInfo) -> dict[str, Any]:
    aid = account["id"]
    bal = billing.account_balance(session, account_id=aid, as_of=now)
    products = inventory.list_products(session, account_id=aid, limit=50)
    equipment = inventory.list_equipment(session, account_id=aid, limit=50)
    invoices = invoicing.list_invoices(session, account_id=aid, finalised_only=True, limit=12, tz=str(tz))["items"]
    stmt = invoicing.statement(session, account_id=aid, date_from=None, date_to=None, now=now, tz=tz)
    payments = [e for e in stmt["entries"] if e["amount_minor"] < 0][-10:]
    case_rows = case_queries.account_cases(session, account_id=aid, now=now)
    claims = invoicing.list_claims(session, account_id=aid, now=now, limit=20)
    journeys = cancellation_queries.account_panel(session, account_id=aid, now=now)
    return {"balance": bal["balance"], "pay": pay_instructions(session, account=account), "products": products, "equipment": equipment,
            "invoices": invoices, "payments": list(reversed(payments)), "cases": case_rows["open_cases"] + case_rows["closed_cases"],
            "claims": claims, "journeys": journeys, "currency": account["currency"],
            "ending": {p["id"] for p in journeys["products"] if p["busy"]}}


def statement_page(session: Session, *, account: dict[str, Any], date_from: date | None, date_to: date | None, now: datetime, tz: ZoneInfo) -> dict[str, Any]:
    return invoicing.statement(session, account_id=account["id"], date_from=date_from, date_to=date_to, now=now, tz=tz)


def invoice_for(session: Session, *, account: dict[str, Any], invoice_id: int) -> dict[str, Any]:
    """A finalised invoice of the account, with its lines and what is still open to dispute per line.
    Raises AccountHidden (another account's invoice, or a draft)."""
    try:
        inv = invoicing.get_invoice(session, invoice_id=invoice_id)
    except NotFound as exc:
        raise AccountHidden(f"invoice {invoice_id} not found") from exc
    if inv["account_id"] != account["id"] or not inv.get("number"):
        raise AccountHidden(f"invoice {invoice_id} not found")
    room = invoicing.creditable_by_line(session, invoice_id=invoice_id)
    disputed = invoicing.disputed_by_invoice(session, account_id=account["id"])
    for ln in inv["lines"]:
        ln["open_minor"] = max(0, room.get(ln["id"], 0))
    inv["disputed"] = disputed.get(invoice_id)
    inv["claims"] = invoicing.list_claims(session, invoice_id=invoice_id)
    return inv


def invoice_pdf(session: Session, *, account: dict[str, Any], invoice_id: int, now: datetime) -> tuple[str, bytes]:
    invoice_for(session, account=account, invoice_id=invoice_id)
    return invoicing.invoice_pdf(session, invoice_id=invoice_id, now=now)


# --- billing actions ------------------------------------------------------------------------------------
def parse_amount(text: str, currency: str) -> Money:
    try:
        value = Decimal((text or "").replace(",", "").replace(" ", "").removeprefix("R"))
    except InvalidOperation as exc:
        raise InvalidInput("enter an amount such as 150.00", field="amount") from exc
    if not value.is_finite():
        raise InvalidInput("enter an amount such as 150.00", field="amount")
    return Money.of(value, currency)


def raise_claim(session: Session, *, customer: Customer, account: dict[str, Any], invoice_id: int, line_id: int, amount: str, reason: str,
                now: datetime, link_base: str) -> dict[str, Any]:
    """Dispute an amount on one invoice line through the invoicing area (capped there at what the line has left).
    Raises AccountHidden, InvalidInput, UnableToRaiseClaim, ClaimExceedsLine. Nothing is changed when it raises."""
    inv = invoice_for(session, account=account, invoice_id=invoice_id)
    money = parse_amount(amount, inv["currency"])
    claim = invoicing.raise_claim(session, invoice_id=invoice_id, lines=[(line_id, money)], reason=reason, channel="web", now=now,
                                  actor=customer.actor)
    memo(session, account_id=account["id"], customer=customer, category="billing",
         body=f"raised billing claim {claim.id} on invoice {inv['number']} for {money} (due {claim.due_date.isoformat()}): {reason.strip()}", now=now)
    _tell(session, customer=customer, account_id=account["id"], now=now, subject=f"We received your billing query on invoice {inv['number']}",
          text=f"You disputed {money} on invoice {inv['number']}. Reference: claim {claim.id}. We will answer by {claim.due_date.isoformat()}.",
          link=f"{link_base}/portal/accounts/{account['account_number']}/invoices/{invoice_id}")
    return {"id": claim.id, "due_date": claim.due_date, "amount": money}


def promise_to_pay(session: Session, *, customer: Customer, account: dict[str, Any], amount: str, pay_by: str, kind: str, note: str,
                   now: datetime, tz: ZoneInfo) -> dict[str, Any]:
    """A promise to pay (one date) or a request for an arrangement, handed to the debtors desk through its arrangements
    service, which decides under its approval limits (the customer has none, so it waits for a person).
    Raises InvalidInput, UnableToArrange."""
    from opsline.debtors import arrangements

    try:
        due = date.fromisoformat(pay_by)
    except ValueError as exc:
        raise InvalidInput("choose the date you will pay by", field="pay_by") from exc
    money = parse_amount(amount, account["currency"]) if (amount or "").strip() else None
    arr = arrangements.propose(session, account_id=account["id"], kind="promise" if kind != "plan" else "plan",
                               instalments=[arrangements.InstalmentIn(due_date=due, amount_minor=money.rounded().minor if money else None)],
                               today=local_date(now, tz), now=now, actor=customer.actor, amount_minor=money.rounded().minor if money else None,
                               note=f"self-service: {note}".strip()[:500])
    memo(session, account_id=account["id"], customer=customer, category="debtors",
         body=f"asked for a {'promise to pay' if kind != 'plan' else 'payment arrangement'}"
              f"{' of ' + str(money) if money else ''} by {due.isoformat()} (arrangement {arr.id}, {arr.state})", now=now)
    return {"id": arr.id, "state": arr.state}


# --- cancellations and collections ----------------------------------------------------------------------
def _live_product(session: Session, *, account: dict[str, Any], product_id: int) -> dict[str, Any]:
    try:
        p = inventory.product_detail(session, product_id=product_id)
    except NotFound as exc:
        raise AccountHidden(f"product {product_id} not found") from exc
    if p["account_id"] != account["id"]:
        raise AccountHidden(f"product {product_id} not found")
    return p


def cancellation_preview(session: Session, *, account: dict[str, Any], product_id: int, requested_date: date | None, now: datetime,
                         tz: ZoneInfo, courier_code: str | None = None) -> dict[str, Any]:
    """The effective date, notice, rules and early-termination fee the cancellations area would apply (nothing written),
    the loaned equipment to send back, and the courier's free collection slots after the last day of service.
    Raises AccountHidden, UnableToCancelProduct, UnableToRequestCancellation."""
    product = _live_product(session, account=account, product_id=product_id)
    today = local_date(now, tz)
    p = cancellations.preview(session, product_id=product_id, notice_date=today, requested_date=requested_date)
    equipment = [e for e in inventory.list_equipment(session, product_id=product_id) if e["owner"] == "isp_loaned"]
    slots: list[dict[str, Any]] = []
    if equipment:
        start = max(p["last_day"], today + timedelta(days=1))
        slots = _free_slots(session, courier_code=courier_code, start=start, tz=tz)
    return {"product": product, "preview": p, "equipment": equipment, "slots": slots[:20], "reasons": CANCEL_REASONS}


def _free_slots(session: Session, *, courier_code: str | None, start: date, tz: ZoneInfo) -> list[dict[str, Any]]:
    """The courier's (or the first active courier's) windows with room, over two weeks from `start`."""
    try:
        return [s for s in logistics.slots(session, courier_code=courier_code, from_date=start, days=14, tz=tz) if s["free"] > 0]  # type: ignore[arg-type]
    except UnableToBookCollection:
        return []


def request_cancellation(session: Session, *, customer: Customer, account: dict[str, Any], product_id: int, reason_code: str,
                         requested_date: date | None, slot_start: datetime | None, address: str, contact_phone: str, now: datetime,
                         tz: ZoneInfo) -> dict[str, Any]:
    """The customer, having seen the dates and fee, cancels: the cancellations area opens the journey (channel portal;
    the customer declined to stay by confirming) and confirms it with the dates it previews, and the logistics area books
    the courier collection of the loaned equipment in the chosen slot. One transaction: all or nothing.
    Raises AccountHidden, InvalidInput, UnableToCancelProduct (a journey already open: cancelling twice), what
    cancellations.confirm and logistics.book_collection raise."""
    _live_product(session, account=account, product_id=product_id)
    if reason_code not in CANCEL_REASONS:
        raise InvalidInput("choose a reason", field="reason_code")
    equipment = [e["id"] for e in inventory.list_equipment(session, product_id=product_id) if e["owner"] == "isp_loaned"]
    if equipment and slot_start is None:
        raise InvalidInput("choose a collection slot for the equipment", field="slot_start")
    actor = customer.actor
    j = cancellations.request_cancellation(session, account_id=account["id"], product_id=product_id, reason_code=reason_code,
                                           requester="account_holder", verified=True, requester_name=customer.full_name,
                                           requested_date=requested_date, channel="portal", now=now, tz=tz, actor=actor,
                                           retention_declined="confirmed in self-service after seeing the dates and fee")
    j = cancellations.confirm(session, journey_id=j.id, requested_date=requested_date, now=now, tz=tz, actor=actor)
    booking = None
    if equipment and slot_start is not None:
        booking = logistics.book_collection(session, account_id=account["id"], equipment_ids=equipment, slot_start=slot_start,
                                            address=address, contact_name=customer.full_name, contact_phone=contact_phone,
                                            reference=j.reference, idempotency_key=f"portal-cancel:{j.id}", now=now, actor=actor, tz=tz)
    memo(session, account_id=account["id"], customer=customer, category="cancellations",
         body=f"cancelled product {product_id} ({j.reference}), effective {j.effective_date.isoformat() if j.effective_date else '?'}"
              + (f"; collection {booking['number']} booked" if booking else ""), now=now)
    return {"journey": j.reference, "effective_date": j.effective_date, "collection": booking}


# --- cases ------------------------------------------------------------------------------------------------
def open_case(session: Session, *, customer: Customer, account: dict[str, Any], category_code: str, subject: str, description: str,
              now: datetime, link_base: str) -> dict[str, Any]:
    """Raise a case through the cases area (channel web; a complaint gets its ICASA acknowledgement there).
    Raises InvalidInput, UnableToOpenCase."""
    if category_code not in dict(CASE_CATEGORIES):
        raise InvalidInput("choose what it is about", field="category_code")
    data = CaseIn(account_id=account["id"], category_code=category_code, channel="web", subject=(subject or "").strip()[:300],
                  description=(description or "").strip()[:20_000] or None, contact_email=customer.email)
    c = cases.open_case(session, data=data, now=now, actor=customer.actor)
    memo(session, account_id=account["id"], customer=customer, category="support", body=f"raised case {c.reference}: {c.subject}", now=now)
    if category_code != "complaint":  # a complaint's acknowledgement comes from the cases area
        _tell(session, customer=customer, account_id=account["id"], now=now, subject=f"Your case {c.reference}: {c.subject}",
              text=f"We opened case {c.reference} for you.", link=f"{link_base}/portal/accounts/{account['account_number']}/cases/{c.reference}")
    return {"reference": c.reference, "id": c.id}


def case_for(session: Session, *, account: dict[str, Any], reference: str, now: datetime) -> dict[str, Any]:
    """A case of the account with the notes the customer may see (customer-visible and their own).
    Raises AccountHidden."""
    try:
        c = cases.get_case_by_reference(session, reference=(reference or "")[:20])
    except NotFound as exc:
        raise AccountHidden(f"case {reference} not found") from exc
    if c.account_id != account["id"]:
        raise AccountHidden(f"case {reference} not found")
    detail = case_queries.case_detail(session, case_id=c.id, now=now)
    notes = [n for n in detail["notes"] if n["visibility"] == "customer" or n.get("direction") == "in"]
    resolve_days = cases.setting_int(session, "complaint_resolve_days", 14)
    d = detail["case"]
    return {"case": d, "notes": notes, "resolve_by": (c.opened_at + timedelta(days=resolve_days)) if c.category_code == "complaint" else None}


def reply_to_case(session: Session, *, customer: Customer, account: dict[str, Any], reference: str, body: str, now: datetime) -> None:
    """The customer's reply, added as an incoming customer-visible note. Raises AccountHidden, CaseNotOpen, InvalidInput."""
    found = case_for(session, account=account, reference=reference, now=now)
    if not (body or "").strip():
        raise InvalidInput("write your reply", field="body")
    cases.add_note(session, case_id=found["case"]["id"], data=NoteIn(body=body.strip()[:20_000], visibility="customer"), now=now,
                   actor=customer.actor, author=customer.full_name, direction="in")
    memo(session, account_id=account["id"], customer=customer, category="support", body=f"replied on case {reference}", now=now)


# --- profile ------------------------------------------------------------------------------------------------
def update_contact(session: Session, *, customer: Customer, account: dict[str, Any], email: str, phone: str, now: datetime) -> None:
    """New contact details on the account through the customers area (audited there), with a memo.
    Raises InvalidInput / ValidationError, StaleVersion."""
    before = {"email": account["email"], "phone": account["phone"]}
    data = AccountUpdate(version=account["version"], email=(email or "").strip() or None, phone=(phone or "").strip() or None)
    customers.update_account(session, account_id=account["id"], data=data, now=now, actor=customer.actor)
    memo(session, account_id=account["id"], customer=customer,
         body=f"changed contact details: email {before['email'] or '—'} → {data.email or '—'}, phone {before['phone'] or '—'} → {data.phone or '—'}", now=now)


def preferences(session: Session, *, account: dict[str, Any]) -> dict[str, Any]:
    return notifications.preferences(session, account_id=account["id"])


def set_preferences(session: Session, *, customer: Customer, account: dict[str, Any], allowed: set[tuple[str, str]], now: datetime) -> list[str]:
    """Opt in or out per channel and category through the notifications area; returns what changed (memo'd)."""
    current = notifications.preferences(session, account_id=account["id"])
    changed = []
    for row in current["rows"]:
        for channel, was in row["channels"].items():
            want = (channel, row["category"]) in allowed
            if want != was:
                notifications.set_preference(session, account_id=account["id"], channel=channel, category=row["category"], opted_out=not want,
                                             now=now, actor=customer.actor, reason="changed in self-service")
                changed.append(f"{row['category']} by {channel}: {'on' if want else 'off'}")
    if changed:
        memo(session, account_id=account["id"], customer=customer, body="notification preferences: " + "; ".join(changed), now=now)
    return changed


def company_users(session: Session, *, customer: Customer, party_id: int) -> list[dict[str, Any]]:
    from opsline.portal.models import PortalMembership

    if customer.parties.get(party_id) != "admin":
        raise NotFound("no such company")
    rows = session.execute(select(PortalUser.email, PortalUser.full_name, PortalMembership.role, PortalUser.email_verified_at)
                           .join(PortalMembership, PortalMembership.user_id == PortalUser.id)
                           .where(PortalMembership.party_id == party_id).order_by(PortalUser.email)).all()
    return [dict(r._mapping) for r in rows]


# --- service requests (become a quote for the sales desk) -------------------------------------------------------------
REQUEST_KINDS = {"new": "New service", "upgrade": "Upgrade or change of package", "relocation": "Move a service to another address"}


def request_options(session: Session, *, account: dict[str, Any], now: datetime, tz: ZoneInfo) -> dict[str, Any]:
    """What a service request form offers: the catalog's sellable offerings, the account's sites and live products."""
    from opsline.catalog import service as catalog

    sites = customers.account_360(session, account_id=account["id"], memo_limit=0, timeline_limit=0)["sites"]
    return {"kinds": REQUEST_KINDS, "offerings": catalog.offering_choices(session, on=local_date(now, tz)), "sites": sites,
            "products": [p for p in inventory.list_products(session, account_id=account["id"], limit=50) if p["state"] == "active"]}


def request_service(session: Session, *, customer: Customer, account: dict[str, Any], kind: str, offering_id: int | None, product_id: int | None,
                    site_id: int | None, note: str, now: datetime, tz: ZoneInfo, link_base: str) -> dict[str, Any]:
    """A new service, an upgrade or a relocation, priced by the orders area as a quote (in progress) that the sales desk
    turns into an order. Raises AccountHidden (a product or site not on the account), InvalidInput, and what
    orders.create_quote raises (UnableToPlaceOrder, OrderNotAllowed, catalog errors)."""
    from opsline.orders import service as orders
    from opsline.orders.schemas import OrderItemIn, QuoteIn

    if kind not in REQUEST_KINDS:
        raise InvalidInput("choose what you need", field="kind")
    if product_id is not None:
        _live_product(session, account=account, product_id=product_id)
    if site_id is not None:
        try:
            customers.get_site(session, site_id=site_id, account_id=account["id"])
        except NotFound as exc:
            raise AccountHidden(f"site {site_id} not found") from exc
    if kind == "new":
        if offering_id is None or site_id is None:
            raise InvalidInput("choose the service and the address", field="offering_id")
        item = OrderItemIn(action="add", offering_id=offering_id, site_id=site_id)
    elif kind == "upgrade":
        if offering_id is None or product_id is None:
            raise InvalidInput("choose the service to change and the new package", field="product_id")
        item = OrderItemIn(action="modify", product_id=product_id, offering_id=offering_id)
    else:
        if product_id is None or site_id is None:
            raise InvalidInput("choose the service to move and the new address", field="site_id")
        item = OrderItemIn(action="modify", product_id=product_id, site_id=site_id)
    quote = orders.create_quote(session, data=QuoteIn(account_id=account["id"], description=f"self-service: {REQUEST_KINDS[kind]}. {note}".strip()[:2000],
                                                      items=[item]), now=now, tz=tz, actor=customer.actor)
    total = Money.from_minor(quote.recurring_total_minor + quote.recurring_tax_minor, quote.currency)
    memo(session, account_id=account["id"], customer=customer, category="sales",
         body=f"asked for: {REQUEST_KINDS[kind]} (quote {quote.id}, {total} a month){' — ' + note.strip() if note.strip() else ''}", now=now)
    _tell(session, customer=customer, account_id=account["id"], now=now, subject=f"Your request: {REQUEST_KINDS[kind]}",
          text=f"We priced your request as quote {quote.id} ({total} a month incl. VAT). Our team will confirm it with you and place the order.",
          link=f"{link_base}/portal/accounts/{account['account_number']}")
    return {"quote_id": quote.id, "monthly": total}


# --- B2B: SLA scorecard, service reviews, change requests (the b2b area's read functions) ---------------------------------
def b2b_page(session: Session, *, account: dict[str, Any]) -> dict[str, Any]:
    """The company's contracts, SLA violations by month (the scorecard), released monthly reviews and change requests."""
    from opsline.b2b import queries as b2b

    panel = b2b.account_panel(session, account_id=account["id"])
    changes = [c for contract in panel["contracts"] for c in b2b.changes_list(session, contract_id=contract["id"], limit=50)]
    scorecard: dict[str, dict[str, int]] = {}
    for v in panel["violations"]:
        scorecard.setdefault(v["period"].isoformat()[:7], {}).setdefault(v["metric_label"], 0)
        scorecard[v["period"].isoformat()[:7]][v["metric_label"]] += 1
    return {"contracts": panel["contracts"], "violations": panel["violations"], "scorecard": scorecard,
            "reviews": [r for r in panel["reviews"] if r["state"] == "released"], "changes": changes}


def review_pdf(session: Session, *, account: dict[str, Any], review_id: int, tz: ZoneInfo) -> tuple[str, bytes]:
    """A released monthly service review of the account, as the b2b area renders it. Raises AccountHidden."""
    from opsline.b2b import reviews

    if review_id not in {r["id"] for r in b2b_page(session, account=account)["reviews"]}:
        raise AccountHidden(f"review {review_id} not found")
    return reviews.pdf(session, review_id=review_id, tz=tz)


def staff_panel(session: Session, *, account_id: int, **_: Any) -> dict[str, Any]:
    """The staff account page's Self-service panel: the logins that see this account and what customers did lately."""
    from opsline.portal.models import PortalMembership

    party = session.execute(select(Account.party_id).where(Account.id == account_id)).scalar()
    logins = [dict(r._mapping) for r in session.execute(
        select(PortalUser.email, PortalUser.full_name, PortalMembership.role, PortalUser.email_verified_at, PortalUser.sms_code, PortalUser.active)
        .join(PortalMembership, PortalMembership.user_id == PortalUser.id).where(PortalMembership.party_id == party).order_by(PortalUser.email))]
    actions = [events.as_dict(e) for e in session.execute(
        select(events.AuditEvent).where(events.AuditEvent.account_id == account_id, events.AuditEvent.actor.like("customer:%"))
        .order_by(events.AuditEvent.id.desc()).limit(10)).scalars()]
    return {"logins": logins, "actions": actions}
