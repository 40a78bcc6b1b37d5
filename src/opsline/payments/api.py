"""TMF676 Payment Management: `payment` (single payments recorded and allocated like any other) and `refund` (of an
account's credit balance, four-eyes above the limit). Shapes follow the official v4 swagger."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime, time, timezone
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse
from pydantic import ConfigDict, Field
from sqlalchemy import bindparam, func, select, text

from opsline.api.idempotency import run_idempotent
from opsline.api.tmf import Fields, Limit, Offset, ResourceId, Sort, TMFModel, dump, list_response, sort_clauses
from opsline.core.errors import InvalidInput, NotFound
from opsline.core.money import Money
from opsline.api import tmf_attributes
from opsline.payments import allocations, refunds
from opsline.payments.models import Allocation, Payment, Refund
from opsline.web.deps import DB, Now, Principal, require

router = APIRouter(tags=["TMF676 Payment"])
BASE = "/tmf-api/paymentManagement/v4"
PAYMENT = BASE + "/payment"
REFUND = BASE + "/refund"
View = Annotated[Principal, Depends(require("payments.view"))]
Capture = Annotated[Principal, Depends(require("payments.capture"))]
RefundP = Annotated[Principal, Depends(require("payments.refund"))]

PAYMENT_STATUS = {"received": "pending", "proposed": "pendingApproval", "suspense": "pending", "allocated": "done", "refunded": "refunded", "returned": "failed"}
REFUND_STATUS = {"requested": "pendingApproval", "approved": "authorized", "rejected": "rejected"}


class MoneyIn(TMFModel):
    unit: str = Field(min_length=3, max_length=3)
    value: Decimal = Field(gt=0, le=Decimal("1e12"))


class MoneyOut(TMFModel):
    unit: str
    value: float


class Ref(TMFModel):
    id: str = Field(max_length=60)
    href: str | None = None
    name: str | None = None
    referred_type: str | None = Field(default=None, alias="@referredType")


class AccountRefIn(Ref):
    """A billing account named in a request: its numeric id (anything else is a 400 naming account.id)."""

    id: str = Field(max_length=18, pattern=r"^[1-9][0-9]{0,17}$")


class MethodIn(TMFModel):
    model_config = ConfigDict(populate_by_name=True, extra="allow")
    id: str | None = Field(default=None, max_length=60)
    href: str | None = Field(default=None, max_length=500)
    name: str | None = Field(default=None, max_length=120)
    type: str | None = Field(default=None, alias="@type", max_length=60)
    referred_type: str | None = Field(default=None, alias="@referredType", max_length=60)


class MethodOut(TMFModel):
    name: str
    type: str = Field(alias="@type")


class PaymentItemIn(TMFModel):
    item: Ref
    amount: MoneyIn | None = None


class PaymentItemOut(TMFModel):
    id: str
    amount: MoneyOut
    item: Ref


class PaymentCreate(TMFModel):
    """TMF676 Payment_Create. Attributes beyond ours (amount, taxAmount, channel, payer ...) are kept and returned."""

    model_config = ConfigDict(populate_by_name=True, extra="allow")
    account: AccountRefIn
    totalAmount: MoneyIn
    paymentMethod: MethodIn
    correlatorId: str | None = Field(default=None, max_length=100)
    name: str | None = Field(default=None, max_length=200)
    description: str | None = Field(default=None, max_length=300)
    paymentDate: datetime | None = None
    paymentItem: list[PaymentItemIn] = Field(default_factory=list, max_length=50)
    type: str | None = Field(default=None, alias="@type")


class PaymentOut(TMFModel):
    id: str
    href: str
    correlatorId: str | None = None
    description: str | None = None
    paymentDate: datetime
    status: str
    account: Ref
    amount: MoneyOut
    totalAmount: MoneyOut
    paymentMethod: MethodOut
    paymentItem: list[PaymentItemOut] = Field(default_factory=list)
    type: str = Field(default="Payment", alias="@type")


class RefundCreate(TMFModel):
    """TMF676 Refund_Create. Attributes beyond ours (name, amount, taxAmount, channel, requestor, payment ...) are kept and returned;
    card secrets are refused (a refund goes by bank transfer to `paymentMethod.id`, the payee's bank account)."""

    model_config = ConfigDict(populate_by_name=True, extra="allow")
    account: AccountRefIn
    totalAmount: MoneyIn
    paymentMethod: MethodIn
    description: str | None = Field(default=None, max_length=300)
    name: str | None = Field(default=None, max_length=200)
    payment: Ref | None = None
    correlatorId: str | None = Field(default=None, max_length=100)


class RefundOut(TMFModel):
    id: str
    href: str
    description: str | None = None
    refundDate: datetime
    status: str
    statusDate: datetime | None = None
    account: Ref
    amount: MoneyOut
    totalAmount: MoneyOut
    paymentMethod: MethodOut
    type: str = Field(default="Refund", alias="@type")


def _method(m: MethodIn) -> str:
    words = " ".join(x for x in (m.type, m.referred_type, m.name) if x).lower()
    if "cash" in words:
        return "cash"
    if "card" in words:
        return "card"
    if "debit" in words:
        return "debit_order"
    return "eft"


def _money(m: Any) -> MoneyOut:
    return MoneyOut(unit=m.currency, value=float(Money.from_minor(m.amount_minor, m.currency).amount))


def _account_refs(db: Any, account_ids: Iterable[int | None]) -> dict[int | None, Ref]:
    """BillingAccount references for these ids in one query (None: money still in suspense)."""
    ids = sorted({a for a in account_ids if a is not None})
    names = dict(db.execute(text("SELECT id, name FROM account WHERE id IN :ids").bindparams(bindparam("ids", expanding=True)), {"ids": ids}).all()) if ids else {}
    refs: dict[int | None, Ref] = {None: Ref(id="unallocated", name="suspense", **{"@referredType": "BillingAccount"})}
    for a in ids:
        refs[a] = Ref(id=str(a), href=f"/tmf-api/accountManagement/v4/billingAccount/{a}", name=names.get(a), **{"@referredType": "BillingAccount"})
    return refs


def base_url(request: Request | None) -> str:
    """`https://host[/root]` of the request, which absolute hrefs start with ("" when rendered outside a request: the hub's
    events keep path-only hrefs, as every other href of theirs)."""
    return str(request.base_url).rstrip("/") if request is not None else ""


def payments_out(db: Any, payments: Sequence[Any], *, base: str = "") -> list[PaymentOut]:
    """TMF676 payments (ORM objects or rows of the payment table) with their items and accounts, read in two queries for the
    whole page. `base` (see base_url) makes paymentItem.item.href absolute, as TMF676 has it (format uri)."""
    items: dict[int, list[Any]] = {p.id: [] for p in payments}
    if payments:
        for a in db.execute(select(Allocation.id, Allocation.payment_id, Allocation.account_id, Allocation.invoice_id, Allocation.amount_minor,
                                   Allocation.currency).where(Allocation.payment_id.in_(list(items)), Allocation.state.in_(("allocated", "proposed")))
                            .order_by(Allocation.id)):
            items[a.payment_id].append(a)
    refs = _account_refs(db, [p.account_id for p in payments])
    return [PaymentOut(id=str(p.id), href=f"{PAYMENT}/{p.id}", correlatorId=p.external_id.removeprefix("API:") if p.external_id else None, description=p.reference or None,
                       paymentDate=datetime.combine(p.received_on, time(12), tzinfo=timezone.utc), status=PAYMENT_STATUS[p.state],
                       account=refs[p.account_id], amount=_money(p), totalAmount=_money(p),
                       paymentMethod=MethodOut(name=p.method, **{"@type": "PaymentMethodRef"}),
                       paymentItem=[PaymentItemOut(id=str(a.id), amount=_money(a),
                                                   item=Ref(id=str(a.invoice_id), href=f"{base}/tmf-api/customerBillManagement/v4/customerBill/{a.invoice_id}",
                                                            **{"@referredType": "CustomerBill"}) if a.invoice_id else
                                                   Ref(id=str(a.account_id), name="account credit", **{"@referredType": "BillingAccount"}))
                                    for a in items[p.id]])
            for p in payments]


def payment_out(db: Any, p: Payment, *, base: str = "") -> PaymentOut:
    return payments_out(db, [p], base=base)[0]


# Server-assigned attributes a client may send back (as the spec's sample does): ignored, not refused.
SERVER_OWNED = frozenset({"id", "href", "status", "statusDate", "@type", "@baseType", "@schemaLocation"})


def sent_payment_attributes(body: PaymentCreate) -> dict[str, Any]:
    """What the client sent beyond our columns: kept on the payment's audit trail and returned with it."""
    out = {k: v for k, v in (body.model_extra or {}).items() if k not in SERVER_OWNED}
    if body.name:
        out["name"] = body.name
    if body.paymentDate is not None:
        out["paymentDate"] = body.paymentDate.isoformat().replace("+00:00", "Z")
    method = body.paymentMethod.model_dump(mode="json", by_alias=True, exclude_none=True)
    if set(method) - {"name", "@type"}:
        out["paymentMethod"] = method
    return out


def payment_json(out: PaymentOut, sent: dict[str, Any] | None) -> dict[str, Any]:
    """A payment's JSON with what its client sent beyond our columns (our status, account, totals and items win)."""
    body = dump(out)
    for k, v in (sent or {}).items():
        if k == "paymentMethod":
            body[k] = {**v, **body[k]}
        elif k == "paymentDate":
            if str(v)[:10] == body[k][:10]:  # the day we recorded is the day sent: the client's time of day stands
                body[k] = v
        elif k in ("amount", "taxAmount", "name", "channel", "payer") or k not in body:
            body[k] = v
    return body


def payments_json(db: Any, rows: Sequence[Any], *, base: str = "") -> list[dict[str, Any]]:
    sent = tmf_attributes.kept(db, entity_type="payment", ids=[p.id for p in rows])
    return [payment_json(o, sent.get(int(o.id))) for o in payments_out(db, rows, base=base)]


def payments_by_id(db: Any, ids: Sequence[int | str], *, base: str = "") -> dict[str, dict[str, Any]]:
    """{id: the payment as GET /payment/{id} answers it} for many payments in a few queries (the TMF hub's renderer for a
    batch of created payments). Reads plain rows, so a large batch does not fill the session."""
    wanted = sorted({int(i) for i in ids})
    if not wanted:
        return {}
    rows = db.execute(select(*Payment.__table__.columns).where(Payment.id.in_(wanted)).order_by(Payment.id)).all()
    return {body["id"]: body for body in payments_json(db, rows, base=base)}


def refunds_out(db: Any, rows: Sequence[Refund]) -> list[RefundOut]:
    """TMF676 refunds with their accounts read in one query for the whole page."""
    refs = _account_refs(db, [r.account_id for r in rows])
    return [RefundOut(id=str(r.id), href=f"{REFUND}/{r.id}", description=r.reason, refundDate=r.requested_at, status=REFUND_STATUS[r.state],
                      statusDate=r.decided_at or r.requested_at, account=refs[r.account_id], amount=_money(r), totalAmount=_money(r),
                      paymentMethod=MethodOut(name=f"bank transfer to {r.payee_account}", **{"@type": "BankAccountTransfer"}))
            for r in rows]


def refund_out(db: Any, r: Refund) -> RefundOut:
    return refunds_out(db, [r])[0]


def _account_id(ref: Ref) -> int:
    if not ref.id.isdigit():
        raise InvalidInput(f"account id '{ref.id}' is not a billing account id", field="account.id")
    return int(ref.id)


def _statuses(mapping: dict[str, str], status: str | None) -> list[str] | None:
    """Our states that show as this TMF status (several of ours may map to one of theirs)."""
    return None if status is None else [ours for ours, theirs in mapping.items() if theirs == status]


TmfStatusP = Annotated[str | None, Query(pattern="^(" + "|".join(sorted(set(PAYMENT_STATUS.values()))) + ")$")]
TmfStatusR = Annotated[str | None, Query(pattern="^(" + "|".join(sorted(set(REFUND_STATUS.values()))) + ")$")]
AccountFilter = Annotated[int | None, Query(alias="account.id", ge=1, le=2**53, description="Billing account id")]
When = Annotated[datetime | None, Query(description="ISO 8601 date-time")]


@router.get(PAYMENT, response_model=list[PaymentOut], response_model_by_alias=True, response_model_exclude_none=True)
def list_payments(request: Request, db: DB, principal: View, offset: Offset = 0, limit: Limit = 50, fields: Fields = None, sort: Sort = None,
                  account: AccountFilter = None, account_id: Annotated[int | None, Query(ge=1, le=2**53, deprecated=True)] = None,
                  status: TmfStatusP = None, correlatorId: Annotated[str | None, Query(max_length=100)] = None,
                  payment_date_gt: Annotated[date | None, Query(alias="paymentDate.gt")] = None,
                  payment_date_lt: Annotated[date | None, Query(alias="paymentDate.lt")] = None) -> JSONResponse:
    """Payments, newest first. Filters (in SQL): account.id, status, correlatorId, paymentDate.gt / paymentDate.lt (dates);
    sort by paymentDate, id, status or totalAmount.value."""
    conds: list[Any] = []
    if account or account_id:
        conds.append(Payment.account_id == (account or account_id))
    if status is not None:
        conds.append(Payment.state.in_(_statuses(PAYMENT_STATUS, status)))
    if correlatorId:
        conds.append(Payment.external_id == f"API:{correlatorId}")
    if payment_date_gt:
        conds.append(Payment.received_on > payment_date_gt)
    if payment_date_lt:
        conds.append(Payment.received_on < payment_date_lt)
    total = db.execute(select(func.count()).select_from(Payment).where(*conds)).scalar_one()
    order = sort_clauses(sort, {"paymentDate": Payment.received_on, "id": Payment.id, "status": Payment.state, "totalAmount.value": Payment.amount_minor},
                         default=[Payment.id.desc()], tiebreak=Payment.id.desc())
    rows = payments_json(db, list(db.execute(select(Payment).where(*conds).order_by(*order).offset(offset).limit(limit)).scalars()), base=base_url(request))
    return list_response(rows, fields=fields, total=total)


@router.get(PAYMENT + "/{id}", response_model=PaymentOut, response_model_by_alias=True, response_model_exclude_none=True)
def get_payment(id: ResourceId, db: DB, principal: View, request: Request = None) -> JSONResponse:  # type: ignore[assignment]
    # `request` is None when the TMF hub renders the payment for an event (no request: path-only hrefs)
    p = db.get(Payment, id)
    if p is None:
        raise NotFound(f"payment {id} not found")
    return JSONResponse(payments_json(db, [p], base=base_url(request))[0])


@router.post(PAYMENT, status_code=201, response_model=PaymentOut, response_model_by_alias=True, response_model_exclude_none=True)
def create_payment(request: Request, body: PaymentCreate, db: DB, now: Now, principal: Capture,
                   idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)] = None) -> JSONResponse:
    """Record a payment for a billing account; `paymentItem` naming one CustomerBill allocates to it first. A repeated
    `correlatorId` (or Idempotency-Key) returns the first payment."""
    def action() -> tuple[int, dict[str, Any]]:
        account_id = _account_id(body.account)
        invoice_id = None
        for n, i in enumerate(body.paymentItem):
            if (i.item.referred_type or "CustomerBill") != "CustomerBill":
                raise InvalidInput(f"paymentItem[{n}] names a {i.item.referred_type}: a payment pays customer bills (CustomerBill) only",
                                   field=f"paymentItem[{n}].item.@referredType")
        bills = body.paymentItem
        if len(bills) > 1:
            raise InvalidInput("name at most one CustomerBill in paymentItem; the rest is allocated oldest first", field="paymentItem")
        if bills:
            if not bills[0].item.id.isdigit():
                raise InvalidInput(f"CustomerBill id '{bills[0].item.id}' is not an invoice id", field="paymentItem.item.id")
            invoice_id = int(bills[0].item.id)
        received = (body.paymentDate.date() if body.paymentDate else now.date())
        res = allocations.capture_payment(db, account_id=account_id, amount=Money.of(body.totalAmount.value, body.totalAmount.unit.upper()),
                                          method=_method(body.paymentMethod), received_on=min(received, now.date()), invoice_id=invoice_id,
                                          reference=(body.description or body.name or "")[:300], external_id=f"API:{body.correlatorId}" if body.correlatorId else None,
                                          now=now, actor=principal.actor, source="api")
        p = db.get(Payment, res["payment_id"])
        if not res["replayed"]:
            tmf_attributes.keep(db, entity_type="payment", entity_id=p.id, account_id=p.account_id, attributes=sent_payment_attributes(body),
                                now=now, actor=principal.actor)
            db.flush()
        return (200 if res["replayed"] else 201), payments_json(db, [p], base=base_url(request))[0]

    status, payload, _ = run_idempotent(db, principal=principal.actor.name, key=idempotency_key, method="POST", path=PAYMENT,
                                        body=body.model_dump(mode="json", by_alias=True), now=now, action=action)
    return JSONResponse(payload, status_code=status, headers={"Location": payload.get("href", "")})


@router.get(REFUND, response_model=list[RefundOut], response_model_by_alias=True, response_model_exclude_none=True)
def list_refunds(db: DB, principal: View, offset: Offset = 0, limit: Limit = 50, fields: Fields = None, sort: Sort = None,
                 account: AccountFilter = None, status: TmfStatusR = None,
                 refund_date_gt: Annotated[datetime | None, Query(alias="refundDate.gt")] = None,
                 refund_date_lt: Annotated[datetime | None, Query(alias="refundDate.lt")] = None) -> JSONResponse:
    """Refunds, newest first. Filters (in SQL): account.id, status, refundDate.gt / refundDate.lt; sort by refundDate, id, status."""
    conds: list[Any] = []
    if account:
        conds.append(Refund.account_id == account)
    if status is not None:
        conds.append(Refund.state.in_(_statuses(REFUND_STATUS, status)))
    if refund_date_gt:
        conds.append(Refund.requested_at > refund_date_gt)
    if refund_date_lt:
        conds.append(Refund.requested_at < refund_date_lt)
    total = db.execute(select(func.count()).select_from(Refund).where(*conds)).scalar_one()
    order = sort_clauses(sort, {"refundDate": Refund.requested_at, "id": Refund.id, "status": Refund.state}, default=[Refund.id.desc()], tiebreak=Refund.id.desc())
    rows = refunds_json(db, list(db.execute(select(Refund).where(*conds).order_by(*order).offset(offset).limit(limit)).scalars()))
    return list_response(rows, fields=fields, total=total)


@router.get(REFUND + "/{id}", response_model=RefundOut, response_model_by_alias=True, response_model_exclude_none=True)
def get_refund(id: ResourceId, db: DB, principal: View) -> JSONResponse:
    r = db.get(Refund, id)
    if r is None:
        raise NotFound(f"refund {id} not found")
    return JSONResponse(refunds_json(db, [r])[0])


CARD_SECRETS = ("cardNumber", "cvv", "expirationDate", "pin")


def sent_refund_attributes(db: Any, body: RefundCreate) -> dict[str, Any]:
    """What the client sent beyond our columns (kept and returned). Raises InvalidInput naming a card secret or an unknown payment."""
    method = body.paymentMethod.model_dump(mode="json", by_alias=True, exclude_none=True)
    for k in CARD_SECRETS:
        if k in method:
            raise InvalidInput(f"paymentMethod.{k}: Opsline never stores card data; a refund is paid by bank transfer to paymentMethod.id "
                               "(the payee's bank account)", field=f"paymentMethod.{k}")
    out = {k: v for k, v in (body.model_extra or {}).items() if k not in SERVER_OWNED}
    if body.payment is not None:
        if not body.payment.id.isdigit() or db.get(Payment, int(body.payment.id)) is None:
            raise InvalidInput(f"payment {body.payment.id} does not exist", field="payment.id")
        out["payment"] = body.payment.model_dump(mode="json", by_alias=True, exclude_none=True) | {"href": f"{PAYMENT}/{body.payment.id}"}
    for k in ("name", "correlatorId"):
        if getattr(body, k):
            out[k] = getattr(body, k)
    if set(method) - {"name", "id"}:
        out["paymentMethod"] = method
    return out


def refunds_json(db: Any, rows: Sequence[Refund]) -> list[dict[str, Any]]:
    """Refunds' JSON with what their clients sent beyond our columns (our status, account, totals and dates win)."""
    sent = tmf_attributes.kept(db, entity_type="refund", ids=[r.id for r in rows])
    out = []
    for o in refunds_out(db, rows):
        body = dump(o)
        for k, v in sent.get(int(o.id), {}).items():
            if k == "paymentMethod":
                body[k] = {**v, **body[k]}
            elif k in ("amount", "taxAmount") or k not in body:
                body[k] = v
        out.append(body)
    return out


@router.post(REFUND, status_code=201, response_model=RefundOut, response_model_by_alias=True, response_model_exclude_none=True)
def create_refund(body: RefundCreate, db: DB, now: Now, principal: RefundP,
                  idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)] = None) -> JSONResponse:
    """Refund part of a billing account's credit balance; above the four-eyes limit it waits (status pendingApproval)."""
    def action() -> tuple[int, dict[str, Any]]:
        account_id = _account_id(body.account)
        sent = sent_refund_attributes(db, body)
        res = refunds.request_refund(db, account_id=account_id, amount=Money.of(body.totalAmount.value, body.totalAmount.unit.upper()),
                                     reason=body.description or body.name or "", payee_name=body.paymentMethod.name or "account holder",
                                     payee_account=body.paymentMethod.id or "", now=now, actor=principal.actor,
                                     idempotency_key=f"API:{body.correlatorId}" if body.correlatorId else None)
        r = db.get(Refund, res["refund_id"])
        if not res["replayed"]:
            tmf_attributes.keep(db, entity_type="refund", entity_id=r.id, account_id=r.account_id, attributes=sent, now=now, actor=principal.actor)
            db.flush()
        return (200 if res["replayed"] else 201), refunds_json(db, [r])[0]

    status, payload, _ = run_idempotent(db, principal=principal.actor.name, key=idempotency_key, method="POST", path=REFUND,
                                        body=body.model_dump(mode="json", by_alias=True), now=now, action=action)
    return JSONResponse(payload, status_code=status, headers={"Location": payload.get("href", "")})

