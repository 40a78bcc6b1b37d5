"""TMF629 Customer and TMF666 Billing Account resources."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse
from pydantic import Field

from opsline.api.idempotency import run_idempotent
from opsline.api.tmf import (Characteristic, Fields, Limit, Offset, ResourceId, RelatedParty, TimePeriod, TMFModel, api_base, dump,
                              item_response, list_response, selectable)
from opsline.customers import service
from opsline.customers.models import Account, AccountStatus
from opsline.customers.schemas import AccountIn, AccountUpdate
from opsline.web.deps import DB, Now, Principal, require

router = APIRouter(tags=["TMF629 Customer", "TMF666 Account"])

CUSTOMER_BASE = api_base("customerManagement") + "/customer"
ACCOUNT_BASE = api_base("accountManagement") + "/billingAccount"
StatusFilter = Annotated[AccountStatus | None, Query(description="Only accounts in this status")]


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
        address = {"street1": a["billing_line1"], "street2": a["billing_line2"], "city": a["billing_city"], "stateOrProvince": a["billing_province"],
                   "postCode": a["billing_postal_code"], "country": a["billing_country"], "contactType": "billing"}
        out.append(ContactMedium(mediumType="postalAddress", characteristic={k: v for k, v in address.items() if v is not None}))
    return out


def customer_out(acc: Account | dict[str, Any]) -> Customer:
    """TMF629 Customer from an account (or the account dict a search returns: lists need no second query)."""
    a = acc if isinstance(acc, dict) else service.account_dict(acc)
    return Customer(
        id=str(a["id"]), href=f"{CUSTOMER_BASE}/{a['id']}", name=a["name"], status=a["status"],
        engagedParty=EngagedParty(id=str(a["party_id"]), name=a["name"], referred_type="Organization" if a["kind"] != "retail" else "Individual"),
        contactMedium=_contact_media(a),
        characteristic=[Characteristic(name=k, value=a[v]) for k, v in _CHAR_FIELDS.items() if a[v] is not None],
        account=[{"id": str(a["id"]), "href": f"{ACCOUNT_BASE}/{a['id']}", "name": a["account_number"], "@referredType": "BillingAccount"}],
        validFor=TimePeriod(startDateTime=a["created_at"]),
    )


def billing_account_out(acc: Account | dict[str, Any]) -> BillingAccount:
    """TMF666 BillingAccount from an account or its dict."""
    a = acc if isinstance(acc, dict) else service.account_dict(acc)
    return BillingAccount(
        id=str(a["id"]), href=f"{ACCOUNT_BASE}/{a['id']}", name=a["account_number"], accountType=a["kind"], state=a["status"],
        description=a["name"],
        relatedParty=[RelatedParty(id=str(a["id"]), href=f"{CUSTOMER_BASE}/{a['id']}", name=a["name"], role="customer", referred_type="Customer")],
        contact=[{"contactType": "billing", "contactMedium": [dump(m) for m in _contact_media(a)],
                  "validFor": {"startDateTime": a["created_at"].isoformat()}}],
        billStructure={"cycleSpecification": {"name": f"monthly on day {a['bill_cycle_day']}", "isRef": False,
                                              "billingDateShift": a["bill_cycle_day"], "frequency": "monthly"},
                       "presentationMedia": [{"name": "email", "isRef": False}]},
        paymentPlan=[{"planType": "terms", "numberOfPayments": 1, "paymentFrequency": f"{a['payment_terms_days']} days"}],
        characteristic=[Characteristic(name="currency", value=a["currency"]), Characteristic(name="segment", value=a["segment_code"]),
                        Characteristic(name="valueTier", value=a["value_tier_code"])],
        lastModified=a["updated_at"].isoformat(),
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


@router.get(CUSTOMER_BASE, response_model=list[selectable(Customer)], response_model_by_alias=True, response_model_exclude_none=True)
def list_customers(
    db: DB, principal: Annotated[Principal, Depends(require("customers.view"))],
    name: Annotated[str | None, Query(max_length=200, description="Name, account number, email or phone")] = None,
    status: StatusFilter = None, fields: Fields = None, offset: Offset = 0, limit: Limit = 50,
) -> JSONResponse:
    res = service.search_accounts(db, q=name, status=status, offset=offset, page_size=limit, with_total=True)
    return list_response((customer_out(a) for a in res["items"]), fields=fields, total=res["total"])


@router.get(CUSTOMER_BASE + "/{id}", response_model=selectable(Customer), response_model_by_alias=True, response_model_exclude_none=True)
def get_customer(id: ResourceId, db: DB, principal: Annotated[Principal, Depends(require("customers.view"))], fields: Fields = None) -> JSONResponse:
    return item_response(customer_out(service.get_account(db, account_id=id)), fields=fields)


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


@router.get(ACCOUNT_BASE, response_model=list[selectable(BillingAccount)], response_model_by_alias=True, response_model_exclude_none=True)
def list_billing_accounts(
    db: DB, principal: Annotated[Principal, Depends(require("customers.view"))],
    name: Annotated[str | None, Query(max_length=200, description="Account number, name, email or phone")] = None,
    state: StatusFilter = None, fields: Fields = None, offset: Offset = 0, limit: Limit = 50,
) -> JSONResponse:
    res = service.search_accounts(db, q=name, status=state, offset=offset, page_size=limit, with_total=True)
    return list_response((billing_account_out(a) for a in res["items"]), fields=fields, total=res["total"])


@router.get(ACCOUNT_BASE + "/{id}", response_model=selectable(BillingAccount), response_model_by_alias=True, response_model_exclude_none=True)
def get_billing_account(id: ResourceId, db: DB, principal: Annotated[Principal, Depends(require("customers.view"))], fields: Fields = None) -> JSONResponse:
    return item_response(billing_account_out(service.get_account(db, account_id=id)), fields=fields)
