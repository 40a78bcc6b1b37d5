"""TMF629 Customer and TMF666 Billing Account resources."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request, Response
from fastapi.responses import JSONResponse
from pydantic import Field

from opsline.api.idempotency import run_idempotent
from opsline.api.tmf import Characteristic, Limit, Offset, ResourceId, RelatedParty, TimePeriod, TMFModel, dump, page_headers
from opsline.customers import service
from opsline.customers.models import Account
from opsline.customers.schemas import AccountIn, AccountUpdate
from opsline.web.deps import DB, Now, Principal, require

router = APIRouter(tags=["TMF629 Customer", "TMF666 Account"])

CUSTOMER_BASE = "/api/customerManagement/v4/customer"
ACCOUNT_BASE = "/api/accountManagement/v4/billingAccount"


class ContactMedium(TMFModel):
    mediumType: str
    preferred: bool = False
    characteristic: dict[str, Any]


class EngagedParty(TMFModel):
    id: str
    href: str | None = None
    name: str
    referred_type: str = Field(alias="@referredType")


class Customer(TMFModel):
    id: str
    href: str
    name: str
    status: str
    statusReason: str | None = None
    engagedParty: EngagedParty
    contactMedium: list[ContactMedium] = []
    characteristic: list[Characteristic] = []
    account: list[dict[str, Any]] = []
    validFor: TimePeriod | None = None
    type_: str = Field(default="Customer", alias="@type")


class CustomerCreate(TMFModel):
    """TMF629 Customer_Create, with Opsline's account fields as characteristics."""

    name: str = Field(min_length=1, max_length=200)
    engagedParty: dict[str, Any] | None = None
    contactMedium: list[ContactMedium] = Field(default=[], max_length=20)
    characteristic: list[Characteristic] = Field(default=[], max_length=50)


class CustomerUpdate(TMFModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    contactMedium: list[ContactMedium] | None = None
    characteristic: list[Characteristic] | None = None


class BillingAccount(TMFModel):
    id: str
    href: str
    name: str
    accountType: str
    state: str
    paymentStatus: str | None = None
    description: str | None = None
    relatedParty: list[RelatedParty] = []
    contact: list[dict[str, Any]] = []
    billStructure: dict[str, Any] | None = None
    defaultPaymentMethod: dict[str, Any] | None = None
    paymentPlan: list[dict[str, Any]] = []
    characteristic: list[Characteristic] = []
    lastModified: str | None = None
    type_: str = Field(default="BillingAccount", alias="@type")


_CHAR_FIELDS = {
    "accountNumber": "account_number", "accountType": "kind", "segment": "segment_code", "valueTier": "value_tier_code",
    "currency": "currency", "paymentTermsDays": "payment_terms_days", "billCycleDay": "bill_cycle_day", "vatNumber": "vat_number",
}


def _contact_media(a: dict[str, Any]) -> list[ContactMedium]:
    out = []
    if a["email"]:
        out.append(ContactMedium(mediumType="email", preferred=True, characteristic={"emailAddress": a["email"]}))
    if a["phone"]:
        out.append(ContactMedium(mediumType="phone", characteristic={"phoneNumber": a["phone"]}))
    if a["billing_line1"]:
        out.append(ContactMedium(mediumType="postalAddress", characteristic={
            "street1": a["billing_line1"], "street2": a["billing_line2"], "city": a["billing_city"], "stateOrProvince": a["billing_province"],
            "postCode": a["billing_postal_code"], "country": a["billing_country"], "contactType": "billing"}))
    return out


def customer_out(acc: Account) -> Customer:
    a = service.account_dict(acc)
    return Customer(
        id=str(acc.id), href=f"{CUSTOMER_BASE}/{acc.id}", name=acc.name, status=acc.status,
        engagedParty=EngagedParty(id=str(acc.party_id), name=acc.name, referred_type="Organization" if acc.kind != "retail" else "Individual"),
        contactMedium=_contact_media(a),
        characteristic=[Characteristic(name=k, value=a[v]) for k, v in _CHAR_FIELDS.items()],
        account=[{"id": str(acc.id), "href": f"{ACCOUNT_BASE}/{acc.id}", "name": acc.account_number, "@referredType": "BillingAccount"}],
        validFor=TimePeriod(startDateTime=acc.created_at),
    )


def billing_account_out(acc: Account) -> BillingAccount:
    a = service.account_dict(acc)
    return BillingAccount(
        id=str(acc.id), href=f"{ACCOUNT_BASE}/{acc.id}", name=acc.account_number, accountType=acc.kind, state=acc.status,
        description=acc.name,
        relatedParty=[RelatedParty(id=str(acc.id), href=f"{CUSTOMER_BASE}/{acc.id}", name=acc.name, role="customer", referred_type="Customer")],
        contact=[{"contactType": "billing", "contactMedium": [dump(m) for m in _contact_media(a)]}],
        billStructure={"cycleSpecification": {"billingDateShift": acc.bill_cycle_day, "frequency": "monthly"}, "presentationMedia": [{"name": "email"}]},
        paymentPlan=[{"planType": "terms", "numberOfPayments": 1, "paymentFrequency": f"{acc.payment_terms_days} days"}],
        characteristic=[Characteristic(name="currency", value=acc.currency), Characteristic(name="segment", value=acc.segment_code), Characteristic(name="valueTier", value=acc.value_tier_code)],
        lastModified=acc.updated_at.isoformat(),
    )


def _fields_from_tmf(body: CustomerCreate | CustomerUpdate) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if body.name is not None:
        fields["name"] = body.name
    for cm in body.contactMedium or []:
        c = cm.characteristic
        if cm.mediumType == "email":
            fields["email"] = c.get("emailAddress")
        elif cm.mediumType in ("phone", "mobile"):
            fields["phone"] = c.get("phoneNumber")
        elif cm.mediumType == "postalAddress":
            fields.update({"billing_line1": c.get("street1"), "billing_line2": c.get("street2"), "billing_city": c.get("city"),
                           "billing_province": c.get("stateOrProvince"), "billing_postal_code": c.get("postCode")})
    for ch in body.characteristic or []:
        if ch.name in _CHAR_FIELDS:
            fields[_CHAR_FIELDS[ch.name]] = ch.value
    return fields


@router.get(CUSTOMER_BASE, response_model=list[Customer], response_model_by_alias=True, response_model_exclude_none=True)
def list_customers(
    db: DB, response: Response, principal: Annotated[Principal, Depends(require("customers.view"))],
    name: str | None = None, status: str | None = None, offset: Offset = 0, limit: Limit = 50,
) -> list[Customer]:
    page_size = limit
    page = offset // page_size + 1
    res = service.search_accounts(db, q=name, status=status, page=page, page_size=page_size)
    ids = [i["id"] for i in res["items"]]
    accounts = [service.get_account(db, account_id=i) for i in ids]
    page_headers(response, count=len(accounts))
    return [customer_out(a) for a in accounts]


@router.get(CUSTOMER_BASE + "/{id}", response_model=Customer, response_model_by_alias=True, response_model_exclude_none=True)
def get_customer(id: ResourceId, db: DB, principal: Annotated[Principal, Depends(require("customers.view"))]) -> Customer:
    return customer_out(service.get_account(db, account_id=id))


@router.post(CUSTOMER_BASE, status_code=201, response_model=Customer, response_model_by_alias=True, response_model_exclude_none=True)
def create_customer(
    body: CustomerCreate, request: Request, db: DB, now: Now, principal: Annotated[Principal, Depends(require("customers.create"))],
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)] = None,
) -> JSONResponse:
    def action() -> tuple[int, dict[str, Any]]:
        fields = _fields_from_tmf(body)
        party = body.engagedParty or {}
        fields["party_kind"] = "organisation" if party.get("@referredType") == "Organization" or fields.get("kind") in ("b2b", "wholesale") else "person"
        acc = service.create_account(db, data=AccountIn(**fields), now=now, actor=principal.actor, default_currency=request.app.state.settings.currency)
        db.flush()
        return 201, dump(customer_out(acc))

    status, payload, _ = run_idempotent(db, principal=principal.actor.name, key=idempotency_key, method="POST", path=CUSTOMER_BASE, body=body.model_dump(mode="json"), now=now, action=action)
    return JSONResponse(payload, status_code=status, headers={"Location": payload.get("href", "")})


@router.patch(CUSTOMER_BASE + "/{id}", response_model=Customer, response_model_by_alias=True, response_model_exclude_none=True)
def patch_customer(
    id: ResourceId, body: CustomerUpdate, db: DB, now: Now, principal: Annotated[Principal, Depends(require("customers.edit"))],
    if_match: Annotated[str | None, Header(alias="If-Match")] = None,
) -> Customer:
    acc = service.get_account(db, account_id=id)
    version = int(if_match.strip('"W/')) if if_match and if_match.strip('"W/').isdigit() else acc.version
    fields = {k: v for k, v in _fields_from_tmf(body).items() if k in AccountUpdate.model_fields}
    acc = service.update_account(db, account_id=id, data=AccountUpdate(version=version, **fields), now=now, actor=principal.actor)
    return customer_out(acc)


@router.get(ACCOUNT_BASE, response_model=list[BillingAccount], response_model_by_alias=True, response_model_exclude_none=True)
def list_billing_accounts(
    db: DB, response: Response, principal: Annotated[Principal, Depends(require("customers.view"))],
    name: str | None = None, state: str | None = None, offset: Offset = 0, limit: Limit = 50,
) -> list[BillingAccount]:
    res = service.search_accounts(db, q=name, status=state, page=offset // limit + 1, page_size=limit)
    accounts = [service.get_account(db, account_id=i["id"]) for i in res["items"]]
    page_headers(response, count=len(accounts))
    return [billing_account_out(a) for a in accounts]


@router.get(ACCOUNT_BASE + "/{id}", response_model=BillingAccount, response_model_by_alias=True, response_model_exclude_none=True)
def get_billing_account(id: ResourceId, db: DB, principal: Annotated[Principal, Depends(require("customers.view"))]) -> BillingAccount:
    return billing_account_out(service.get_account(db, account_id=id))
