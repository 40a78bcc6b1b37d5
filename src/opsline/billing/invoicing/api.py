"""TMF678 Customer Bill Management: customerBill (invoices) and appliedCustomerBillingRate (invoice lines)."""

from __future__ import annotations

from datetime import date, datetime, time
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Response
from fastapi.responses import Response as RawResponse
from pydantic import Field

from opsline.api.tmf import PAGE_LIMIT_MAX, Characteristic, Sort, TimePeriod, TMFModel, TMFMoney, page_headers, sort_clauses
from opsline.billing.invoicing import credits as cr
from opsline.billing.invoicing import documents, invoices
from opsline.billing.invoicing.tz import local_zone
from opsline.billing.models import Invoice
from opsline.core.money import Money
from opsline.web.deps import DB, Now, Principal, require

router = APIRouter(tags=["TMF678 Customer Bill"])

BASE = "/tmf-api/customerBillManagement/v4"
ACCOUNT_BASE = "/tmf-api/accountManagement/v4/billingAccount"
# the invoice lifecycle calls a fully paid invoice "paid"; TMF678 names that state "settled"
TO_TMF_STATE = {"paid": "settled"}
FROM_TMF_STATE = {v: k for k, v in TO_TMF_STATE.items()}
BILL = BASE + "/customerBill"
RATE = BASE + "/appliedCustomerBillingRate"
View = Annotated[Principal, Depends(require("billing.view"))]
MAX_ID = 2**63 - 1
PathId = Annotated[int, Path(ge=1, le=MAX_ID)]


class BillRef(TMFModel):
    id: str
    href: str


class AccountRef(TMFModel):
    id: str
    href: str | None = None
    name: str | None = None
    referred_type: str = Field(default="BillingAccount", alias="@referredType")


class ProductRef(TMFModel):
    id: str
    href: str | None = None


class AppliedTax(TMFModel):
    taxCategory: str
    taxRate: float
    taxAmount: TMFMoney


class TaxItem(TMFModel):
    taxCategory: str
    taxRate: float
    taxAmount: TMFMoney


class BillDocument(TMFModel):
    id: str
    href: str
    mimeType: str = "application/pdf"
    name: str


class CustomerBill(TMFModel):
    id: str
    href: str
    billNo: str | None = None
    billDate: datetime | None = None
    category: str = "normal"
    runType: str = "onCycle"
    state: str
    paymentDueDate: datetime | None = None
    billingPeriod: TimePeriod
    amountDue: TMFMoney
    remainingAmount: TMFMoney
    taxExcludedAmount: TMFMoney
    taxIncludedAmount: TMFMoney
    taxItem: list[TaxItem] = []
    billingAccount: AccountRef
    billDocument: list[BillDocument] = []
    appliedBillingRate: list[BillRef] = []
    type_: str = Field(default="CustomerBill", alias="@type")


class CustomerBillUpdate(TMFModel):
    """Only the state may change: onHold, validated, or back to new (release a hold)."""

    state: Literal["new", "onHold", "validated"]


class AppliedCustomerBillingRate(TMFModel):
    id: str
    href: str
    name: str
    description: str | None = None
    type: str
    date: datetime | None = None
    isBilled: bool = True
    periodCoverage: TimePeriod | None = None
    appliedTax: list[AppliedTax] = []
    taxExcludedAmount: TMFMoney
    taxIncludedAmount: TMFMoney
    bill: BillRef
    billingAccount: AccountRef
    product: ProductRef | None = None
    characteristic: list[Characteristic] = []
    type_: str = Field(default="AppliedCustomerBillingRate", alias="@type")


def _m(minor: int, cur: str) -> TMFMoney:
    return TMFMoney(**Money.from_minor(minor, cur).to_tmf())  # type: ignore[arg-type]


def _at(d: date | None) -> datetime | None:
    return datetime.combine(d, time.min).replace(tzinfo=local_zone()) if d else None


def _rate(rates: dict[str, Any], code: str) -> float:
    return float(Decimal(rates.get(code, {}).get("rate") or 0))


def bill_out(inv: dict[str, Any], rates: dict[str, Any], credited_minor: int) -> CustomerBill:
    cur = inv["currency"]
    taxes: dict[str, int] = {}
    for ln in inv.get("lines", []):
        taxes[ln["tax_rate_code"]] = taxes.get(ln["tax_rate_code"], 0) + ln["tax_minor"]
    docs = [BillDocument(id=str(inv["id"]), href=f"/billing/invoices/{inv['id']}/pdf", name=f"{inv['number']}.pdf")] if inv["number"] else []
    return CustomerBill(
        id=str(inv["id"]), href=f"{BILL}/{inv['id']}", billNo=inv["number"], billDate=inv["issued_at"], state=TO_TMF_STATE.get(inv["state"], inv["state"]),
        runType="onCycle" if inv["kind"] == "cycle" else "offCycle", paymentDueDate=_at(inv["due_date"]),
        billingPeriod=TimePeriod(startDateTime=_at(inv["period_start"]), endDateTime=_at(inv["period_end"])),
        amountDue=_m(inv["total_minor"], cur), remainingAmount=_m(inv["total_minor"] - credited_minor, cur),
        taxExcludedAmount=_m(inv["subtotal_minor"], cur), taxIncludedAmount=_m(inv["total_minor"], cur),
        taxItem=[TaxItem(taxCategory=c, taxRate=_rate(rates, c), taxAmount=_m(t, cur)) for c, t in taxes.items()],
        billingAccount=AccountRef(id=str(inv["account_id"]), href=f"{ACCOUNT_BASE}/{inv['account_id']}"),
        billDocument=docs, appliedBillingRate=[BillRef(id=str(ln["id"]), href=f"{RATE}/{ln['id']}") for ln in inv.get("lines", [])],
    )


def rate_out(ln: dict[str, Any], rates: dict[str, Any]) -> AppliedCustomerBillingRate:
    cur = ln["currency"]
    chars = [Characteristic(name="explanation", value=ln["explanation"])] if ln.get("explanation") else []
    chars.append(Characteristic(name="quantity", value=str(ln["quantity"])))
    return AppliedCustomerBillingRate(
        id=str(ln["id"]), href=f"{RATE}/{ln['id']}", name=ln["description"], description=ln.get("explanation") or None, type=ln["kind"], date=ln.get("issued_at"),
        periodCoverage=TimePeriod(startDateTime=_at(ln["period_start"]), endDateTime=_at(ln["period_end"])) if ln["period_start"] else None,
        appliedTax=[AppliedTax(taxCategory=ln["tax_rate_code"], taxRate=_rate(rates, ln["tax_rate_code"]), taxAmount=_m(ln["tax_minor"], cur))],
        taxExcludedAmount=_m(ln["amount_minor"], cur), taxIncludedAmount=_m(ln["total_minor"], cur),
        bill=BillRef(id=str(ln["invoice_id"]), href=f"{BILL}/{ln['invoice_id']}"),
        billingAccount=AccountRef(id=str(ln["account_id"]), href=f"{ACCOUNT_BASE}/{ln['account_id']}"),
        product=ProductRef(id=str(ln["product_id"])) if ln["product_id"] else None, characteristic=chars,
    )


def _credited(db: Any, invoice_id: int) -> int:
    return sum(cr.credited_by_line(db, invoice_id=invoice_id).values())


@router.get(BILL, response_model=list[CustomerBill], response_model_by_alias=True, response_model_exclude_none=True)
def list_bills(
    db: DB, response: Response, principal: View,
    billing_account_id: Annotated[int | None, Query(alias="billingAccount.id", ge=1, le=MAX_ID)] = None,
    state: Literal["new", "onHold", "validated", "sent", "partiallyPaid", "settled"] | None = None,
    bill_date_gte: Annotated[date | None, Query(alias="billDate.gte")] = None,
    bill_date_lt: Annotated[date | None, Query(alias="billDate.lt")] = None, sort: Sort = None,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0, limit: Annotated[int, Query(ge=1, le=PAGE_LIMIT_MAX)] = 50,
) -> list[CustomerBill]:
    """Finalised invoices, newest first. Filters (in SQL): billingAccount.id, state, billDate.gte / billDate.lt (dates); `sort` by
    billDate, id, state, paymentDueDate, amountDue.value."""
    order_by = sort_clauses(sort, {"billDate": Invoice.issued_at, "id": Invoice.id, "state": Invoice.state, "paymentDueDate": Invoice.due_date,
                                   "amountDue.value": Invoice.total_minor}, default=[Invoice.id.desc()], tiebreak=Invoice.id.desc())
    res = invoices.list_invoices(db, account_id=billing_account_id, state=FROM_TMF_STATE.get(state, state) if state else None, issued_from=bill_date_gte,
                                 issued_to=bill_date_lt, finalised_only=True, offset=offset, limit=limit, order_by=order_by)
    rates = invoices.tax_rates(db)
    page_headers(response, count=len(res["items"]), total=res["total"])
    ids = [i["id"] for i in res["items"]]
    lines = invoices.lines_by_invoice(db, invoice_ids=ids)
    credited = cr.credited_by_invoice(db, invoice_ids=ids)
    return [bill_out(i | {"lines": lines[i["id"]]}, rates, credited.get(i["id"], 0)) for i in res["items"]]


@router.get(BILL + "/{id}", response_model=CustomerBill, response_model_by_alias=True, response_model_exclude_none=True)
def get_bill(id: PathId, db: DB, principal: View) -> CustomerBill:
    return bill_out(invoices.get_invoice(db, invoice_id=id), invoices.tax_rates(db), _credited(db, id))


@router.patch(BILL + "/{id}", response_model=CustomerBill, response_model_by_alias=True, response_model_exclude_none=True)
def patch_bill(id: PathId, body: CustomerBillUpdate, db: DB, now: Now, principal: Annotated[Principal, Depends(require("billing.approve"))]) -> CustomerBill:
    """Put an invoice on hold, validate it, or release a hold (state back to new). Other states follow delivery and payments."""
    invoices.transition_to(db, invoice_id=id, state=body.state, now=now, actor=principal.actor, reason="TMF678 PATCH")
    return bill_out(invoices.get_invoice(db, invoice_id=id), invoices.tax_rates(db), _credited(db, id))


@router.get(BILL + "/{id}/document", responses={200: {"content": {"application/pdf": {}}}}, response_class=RawResponse)
def bill_document(id: PathId, db: DB, now: Now, principal: View) -> RawResponse:
    """The tax invoice PDF."""
    name, pdf = documents.invoice_pdf(db, invoice_id=id, now=now)
    return RawResponse(pdf, media_type="application/pdf", headers={"Content-Disposition": f'inline; filename="{name}"'})


@router.get(RATE, response_model=list[AppliedCustomerBillingRate], response_model_by_alias=True, response_model_exclude_none=True)
def list_rates(
    db: DB, response: Response, principal: View,
    bill_id: Annotated[int | None, Query(alias="bill.id", ge=1, le=MAX_ID)] = None,
    billing_account_id: Annotated[int | None, Query(alias="billingAccount.id", ge=1, le=MAX_ID)] = None,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0, limit: Annotated[int, Query(ge=1, le=PAGE_LIMIT_MAX)] = 100,
) -> list[AppliedCustomerBillingRate]:
    """Invoice lines; filter by bill.id or billingAccount.id."""
    rows = invoices.list_lines(db, invoice_id=bill_id, account_id=billing_account_id, offset=offset, limit=limit)
    rates = invoices.tax_rates(db)
    page_headers(response, count=len(rows), total=invoices.count_lines(db, invoice_id=bill_id, account_id=billing_account_id))
    return [rate_out(r, rates) for r in rows]


@router.get(RATE + "/{id}", response_model=AppliedCustomerBillingRate, response_model_by_alias=True, response_model_exclude_none=True)
def get_rate(id: PathId, db: DB, principal: View) -> AppliedCustomerBillingRate:
    return rate_out(invoices.get_line(db, line_id=id), invoices.tax_rates(db))
