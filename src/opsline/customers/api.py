"""TMF629 Customer (list, get, create, patch, delete) and TMF666 Billing Account (list, get, create, patch) over
accounts: filters and sort in SQL, nothing sent silently dropped. A customer's attributes with no account column
(statusReason, validFor, account, paymentMethod, creditProfile, agreement, relatedParty, characteristics of our own
naming, a contact medium's validFor, preferred and contactType, a status label of the client's) are kept with
opsline.api.tmf_attributes and returned; anything else we cannot hold is a 400 naming it."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, ConfigDict, Field, ValidationError

from opsline.api import tmf_attributes
from opsline.api.idempotency import run_idempotent
from opsline.api.tmf import (Characteristic, Fields, Limit, Offset, ResourceId, RelatedParty, Sort, TimePeriod, TMFModel, api_base, dump,
                              item_response, list_response, selectable)
from opsline.customers import service
from opsline.customers.models import Account, AccountStatus
from opsline.core.errors import InvalidInput
from opsline.customers.schemas import AccountIn, AccountUpdate, country_code, normalise_phone
from opsline.web.deps import DB, Now, Principal, require

router = APIRouter(tags=["TMF629 Customer", "TMF666 Account"])

CUSTOMER_BASE = api_base("customerManagement") + "/customer"
ACCOUNT_BASE = api_base("accountManagement") + "/billingAccount"
StatusFilter = Annotated[AccountStatus | None, Query(description="Only accounts in this status")]


class Strict(TMFModel):
    """An input shape: an attribute we neither store nor use is refused (400 naming it), never silently dropped."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")


class MediumCharacteristic(Strict):
    emailAddress: str | None = Field(default=None, max_length=200)
    phoneNumber: str | None = Field(default=None, max_length=40)
    street1: str | None = Field(default=None, max_length=200)
    street2: str | None = Field(default=None, max_length=200)
    city: str | None = Field(default=None, max_length=100)
    stateOrProvince: str | None = Field(default=None, max_length=60)
    postCode: str | None = Field(default=None, max_length=10)
    country: str | None = Field(default=None, max_length=60, description="ISO 3166 code or English name; answered as the code")


class ContactMediumIn(Strict):
    mediumType: str = Field(min_length=1, max_length=40, description="email, phone (TelephoneNumber, mobile), postalAddress (MailingAddress)")
    characteristic: MediumCharacteristic


class TimePeriodIn(Strict):
    startDateTime: AwareDatetime | None = None
    endDateTime: AwareDatetime | None = None


class CustomerMediumCharacteristic(MediumCharacteristic):
    contactType: str | None = Field(default=None, max_length=40, description="Kept as sent (e.g. homePhone, homeAddress)")


class CustomerContactMediumIn(ContactMediumIn):
    """A TMF629 contact medium: the value goes to the account's column; validFor, preferred and contactType are kept."""

    characteristic: CustomerMediumCharacteristic
    preferred: bool | None = None
    validFor: TimePeriodIn | None = None


class ContactMedium(TMFModel):
    mediumType: str
    preferred: bool = False
    characteristic: dict[str, Any]
    validFor: dict[str, Any] | None = None


class SpecEntity(Strict):
    """The polymorphism attributes every TMF entity may carry."""

    base_type: str | None = Field(default=None, alias="@baseType", max_length=60)
    schema_location: str | None = Field(default=None, alias="@schemaLocation", max_length=300)
    type_: str | None = Field(default=None, alias="@type", max_length=60)


class AccountRefIn(SpecEntity):
    id: str | None = Field(default=None, max_length=60)
    href: str | None = Field(default=None, max_length=300)
    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=500)
    referred_type: str | None = Field(default=None, alias="@referredType", max_length=60)


class EntityRefIn(SpecEntity):
    id: str = Field(min_length=1, max_length=60)
    href: str | None = Field(default=None, max_length=300)
    name: str | None = Field(default=None, max_length=200)
    referred_type: str | None = Field(default=None, alias="@referredType", max_length=60)


class RelatedPartyRefIn(EntityRefIn):
    role: str | None = Field(default=None, max_length=60)
    referred_type: str = Field(alias="@referredType", min_length=1, max_length=60)


class CreditProfileIn(SpecEntity):
    creditProfileDate: AwareDatetime
    creditRiskRating: int | None = Field(default=None, ge=-(2**31), le=2**31 - 1)
    creditScore: int | None = Field(default=None, ge=-(2**31), le=2**31 - 1)
    validFor: TimePeriodIn


class EngagedParty(TMFModel):
    id: str
    href: str | None = None
    name: str
    referred_type: str = Field(alias="@referredType")


class EngagedPartyIn(Strict):
    id: str | None = Field(default=None, max_length=60, description="Ignored: Opsline creates the party")
    href: str | None = Field(default=None, max_length=300, description="Ignored: Opsline creates the party")
    name: str | None = Field(default=None, max_length=200)
    referred_type: str = Field(default="Individual", alias="@referredType", pattern="^(Individual|Organization)$")


class CharacteristicIn(Strict):
    name: str = Field(min_length=1, max_length=60)
    value: Any = None
    valueType: str | None = Field(default=None, max_length=20)


class CustomerCharacteristicIn(CharacteristicIn, SpecEntity):
    """A characteristic of a customer: ours (see _CHAR_FIELDS) go to the account's columns, any other is kept as sent
    (it needs a value then: the spec requires one)."""


class Customer(TMFModel):
    id: str
    href: str
    name: str
    status: str
    statusReason: str | None = None
    engagedParty: EngagedParty
    contactMedium: list[ContactMedium] = []
    characteristic: list[dict[str, Any]] = []
    account: list[dict[str, Any]] = []
    paymentMethod: list[dict[str, Any]] | None = None
    creditProfile: list[dict[str, Any]] | None = None
    agreement: list[dict[str, Any]] | None = None
    relatedParty: list[dict[str, Any]] | None = None
    validFor: dict[str, Any] | None = None
    type_: str = Field(default="Customer", alias="@type")


class CustomerAttributes(Strict):
    """TMF629 attributes a create or patch may send beyond name and engaged party: contact media and characteristics
    fill the account's columns; the rest is kept (see KEPT) and returned."""

    status: str | None = Field(default=None, min_length=1, max_length=60,
                               description="'active' (a new customer is active); any other label of the client's is kept and returned while the account is active")
    statusReason: str | None = Field(default=None, max_length=500)
    validFor: TimePeriodIn | None = None
    account: list[AccountRefIn] | None = Field(default=None, max_length=20)
    paymentMethod: list[EntityRefIn] | None = Field(default=None, max_length=20)
    creditProfile: list[CreditProfileIn] | None = Field(default=None, max_length=20)
    agreement: list[EntityRefIn] | None = Field(default=None, max_length=20)
    relatedParty: list[RelatedPartyRefIn] | None = Field(default=None, max_length=20)
    contactMedium: list[CustomerContactMediumIn] | None = Field(default=None, max_length=20)
    characteristic: list[CustomerCharacteristicIn] | None = Field(default=None, max_length=50)
    type_: str | None = Field(default=None, alias="@type", pattern="^Customer$")


class CustomerCreate(CustomerAttributes):
    """TMF629 Customer_Create, with Opsline's account fields as characteristics (accountNumber, accountType, segment,
    valueTier, currency, paymentTermsDays, billCycleDay, vatNumber). `id` and `href` are assigned by Opsline."""

    name: str = Field(min_length=1, max_length=200)
    engagedParty: EngagedPartyIn | None = None
    id: str | None = Field(default=None, max_length=60)
    href: str | None = Field(default=None, max_length=300)


class CustomerUpdate(CustomerAttributes):
    """What a PATCH (JSON or `application/merge-patch+json`) may change; contact media replace those of their type, a
    kept attribute sent replaces the kept one (null removes it). `engagedParty` (required by Customer_Update) must be
    the customer's own: it cannot be changed."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    engagedParty: EngagedPartyIn | None = None


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


class RelatedPartyIn(Strict):
    id: str | None = Field(default=None, max_length=60)
    href: str | None = Field(default=None, max_length=300)
    name: str | None = Field(default=None, max_length=200)
    role: str | None = Field(default=None, max_length=60)
    referred_type: str | None = Field(default=None, alias="@referredType", max_length=60)


class ContactIn(Strict):
    contactType: str | None = Field(default=None, max_length=40)
    contactMedium: list[ContactMediumIn] = Field(default=[], max_length=20)


class BillingAccountCreate(Strict):
    """TMF666 BillingAccount_Create: a new billing account (Opsline's account) for a new party. `name` is the account
    holder's name; `accountType` retail, b2b or wholesale; `relatedParty` an Organization or Individual the account
    is for (its name when `name` is not given); contact media as in TMF629; Opsline's account fields as characteristics."""

    name: str = Field(min_length=1, max_length=200)
    accountType: str | None = Field(default=None, pattern="^(retail|b2b|wholesale)$")
    description: str | None = Field(default=None, max_length=200, description="The account holder's name when `name` is the account's label")
    relatedParty: list[RelatedPartyIn] = Field(default=[], max_length=1)
    contact: list[ContactIn] = Field(default=[], max_length=5)
    characteristic: list[CharacteristicIn] = Field(default=[], max_length=50)
    type_: str | None = Field(default=None, alias="@type", pattern="^BillingAccount$")


class BillingAccountUpdate(Strict):
    """What a billing-account PATCH may change: the holder's name (`description`), contact media, characteristics
    (segment, valueTier, paymentTermsDays, billCycleDay). `name` (the account number) and `relatedParty` (the
    customer), which TMF666 BillingAccount_Update requires, may be repeated but not changed."""

    name: str | None = Field(default=None, max_length=200)
    relatedParty: list[RelatedPartyIn] | None = Field(default=None, max_length=1)

    description: str | None = Field(default=None, min_length=1, max_length=200)
    contact: list[ContactIn] | None = Field(default=None, max_length=5)
    characteristic: list[CharacteristicIn] | None = None


_CHAR_FIELDS = {
    "accountNumber": "account_number", "accountType": "kind", "segment": "segment_code", "valueTier": "value_tier_code",
    "currency": "currency", "paymentTermsDays": "payment_terms_days", "billCycleDay": "bill_cycle_day", "vatNumber": "vat_number",
}
MEDIUM_TYPES = {"email": "email", "emailaddress": "email", "phone": "phone", "mobile": "phone", "telephonenumber": "phone", "telephone": "phone",
                "postaladdress": "postalAddress", "mailingaddress": "postalAddress", "address": "postalAddress"}
# Customer attributes with no account column, kept with tmf_attributes (entity type "customer") and returned as sent.
KEPT = ("statusReason", "validFor", "account", "paymentMethod", "creditProfile", "agreement", "relatedParty")
KEPT_ENTITY = "customer"
# Per contact medium (keyed by our medium kind: email, phone, postalAddress), kept and returned with that medium.
MEDIUM_KEPT = ("preferred", "validFor")
CUSTOMER_SORT = {"id": "id", "name": "name", "status": "status", "validFor.startDateTime": "created_at"}
ACCOUNT_SORT = {"id": "id", "name": "account_number", "state": "status", "accountType": "kind", "lastModified": "updated_at", "description": "name"}


def _contact_media(a: dict[str, Any], kept: dict[str, dict[str, Any]] | None = None) -> list[ContactMedium]:
    """The account's email, phone and billing address as contact media, each with what was kept for it (preferred,
    validFor, contactType: kept values win over our defaults, which are not columns)."""
    kept = kept or {}
    out = []

    def medium(kind: str, preferred: bool, characteristic: dict[str, Any]) -> ContactMedium:
        extra = kept.get(kind, {})
        if extra.get("contactType"):
            characteristic = characteristic | {"contactType": extra["contactType"]}
        return ContactMedium(mediumType=kind, preferred=extra.get("preferred", preferred), characteristic=characteristic, validFor=extra.get("validFor"))

    if a["email"]:
        out.append(medium("email", True, {"emailAddress": a["email"]}))
    if a["phone"]:
        out.append(medium("phone", not a["email"], {"phoneNumber": a["phone"]}))
    if a["billing_line1"]:
        address = {"street1": a["billing_line1"], "street2": a["billing_line2"], "city": a["billing_city"], "stateOrProvince": a["billing_province"],
                   "postCode": a["billing_postal_code"], "country": a["billing_country"], "contactType": "billing"}
        out.append(medium("postalAddress", False, {k: v for k, v in address.items() if v is not None}))
    return out


def customer_out(acc: Account | dict[str, Any], party_kind: str | None = None, kept: dict[str, Any] | None = None) -> Customer:
    """TMF629 Customer from an account (or the account dict a search returns: lists need no second query), its party's
    kind (person / organisation: the engaged party is an Individual or an Organization) and the attributes kept for it
    (tmf_attributes). Our columns win where we hold the value: the status (a kept label of the client's shows only
    while the account is active), validFor.startDateTime (when the account was created), the billing account ref
    (first; refs the client sent follow), our characteristics and the contact media's values."""
    a = acc if isinstance(acc, dict) else service.account_dict(acc)
    kept = kept or {}
    kind = party_kind or a.get("party_kind") or ("organisation" if a["kind"] != "retail" else "person")
    ours_account = {"id": str(a["id"]), "href": f"{ACCOUNT_BASE}/{a['id']}", "name": a["account_number"], "@referredType": "BillingAccount"}
    label = kept.get("status")
    return Customer(
        id=str(a["id"]), href=f"{CUSTOMER_BASE}/{a['id']}", name=a["name"],
        status=label if label and a["status"] == AccountStatus.ACTIVE else a["status"], statusReason=kept.get("statusReason"),
        engagedParty=EngagedParty(id=str(a["party_id"]), name=a["name"], referred_type="Organization" if kind == "organisation" else "Individual"),
        contactMedium=_contact_media(a, kept.get("contactMedium") or {}),
        characteristic=[dump(Characteristic(name=k, value=a[v])) for k, v in _CHAR_FIELDS.items() if a[v] is not None] + kept.get("characteristic", []),
        account=[ours_account] + [r for r in kept.get("account", []) if r.get("id") != ours_account["id"]],
        paymentMethod=kept.get("paymentMethod"), creditProfile=kept.get("creditProfile"), agreement=kept.get("agreement"), relatedParty=kept.get("relatedParty"),
        validFor=kept.get("validFor", {}) | {"startDateTime": dump(TimePeriod(startDateTime=a["created_at"]))["startDateTime"]},
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


def _fields_from_tmf(name: str | None, media: list[ContactMediumIn] | None, characteristics: list[CharacteristicIn] | None, *,
                     keep_unknown: bool = False) -> dict[str, Any]:
    """Account fields from TMF contact media and characteristics. A phone number is read in the country of the address
    sent with it (a French '01 09 75 83 51' is +33109758351), else as South African. A characteristic that is not ours
    is refused unless `keep_unknown` (the caller keeps it). Raises InvalidInput naming the attribute."""
    fields: dict[str, Any] = {}
    if name is not None:
        fields["name"] = name
    region = "ZA"
    for i, cm in enumerate(media or []):
        if cm.characteristic.country:
            try:
                region = fields["billing_country"] = country_code(cm.characteristic.country)
            except ValueError as exc:
                raise InvalidInput(str(exc), field=f"contactMedium[{i}].characteristic.country") from exc
    for i, cm in enumerate(media or []):
        c, kind = cm.characteristic, MEDIUM_TYPES.get(cm.mediumType.replace(" ", "").lower())
        used = {k for k, v in c.model_dump().items() if v is not None and k != "contactType"}
        allowed = {"email": {"emailAddress"}, "phone": {"phoneNumber"}, "postalAddress": {"street1", "street2", "city", "stateOrProvince", "postCode", "country"}}
        if kind is None:
            raise InvalidInput(f"mediumType '{cm.mediumType}' is not one of email, phone, mobile, TelephoneNumber, postalAddress, MailingAddress",
                               field=f"contactMedium[{i}].mediumType")
        if used - allowed[kind]:
            raise InvalidInput(f"a {cm.mediumType} contact medium has no {', '.join(sorted(used - allowed[kind]))}", field=f"contactMedium[{i}].characteristic")
        if kind == "email":
            fields["email"] = c.emailAddress
        elif kind == "phone":
            try:
                fields["phone"] = normalise_phone(c.phoneNumber, region)
            except ValueError as exc:
                raise InvalidInput(str(exc), field=f"contactMedium[{i}].characteristic.phoneNumber") from exc
        else:
            fields.update({"billing_line1": c.street1, "billing_line2": c.street2, "billing_city": c.city, "billing_province": c.stateOrProvince,
                           "billing_postal_code": c.postCode})
    for i, ch in enumerate(characteristics or []):
        if ch.name not in _CHAR_FIELDS and keep_unknown:
            if ch.value is None:
                raise InvalidInput(f"characteristic '{ch.name}' has no value", field=f"characteristic[{i}].value")
            continue
        if ch.name not in _CHAR_FIELDS:
            raise InvalidInput(f"characteristic '{ch.name}' is not one of {', '.join(_CHAR_FIELDS)}", field=f"characteristic[{i}].name")
        fields[_CHAR_FIELDS[ch.name]] = ch.value
    return fields


def _created(db: Any, request: Request, now: Any, principal: Principal, fields: dict[str, Any]) -> Account:
    try:
        data = AccountIn(**fields)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise InvalidInput(f"{'.'.join(map(str, err['loc']))}: {err['msg']}", field=".".join(map(str, err["loc"]))) from exc
    acc = service.create_account(db, data=data, now=now, actor=principal.actor, default_currency=request.app.state.settings.currency)
    db.flush()
    return acc


def _medium_kind(cm: ContactMediumIn) -> str:
    return MEDIUM_TYPES[cm.mediumType.replace(" ", "").lower()]


def _status_label(status: str | None, current: str) -> str | None:
    """A status sent by a client: our account's own status (nothing to keep: None), or a label of the client's (kept).
    Another of our statuses is a 400: a customer is suspended or closed through the account's lifecycle, not by a label."""
    if status is None or status.lower() == current:
        return None
    if status.lower() in {s.value for s in AccountStatus}:
        raise InvalidInput(f"status '{status}' cannot be set here: the customer is {current} (suspend, reconnect or close the account through its "
                           "lifecycle)", field="status")
    return status


def _kept_after(body: CustomerAttributes, before: dict[str, Any], *, current_status: str) -> dict[str, Any]:
    """The kept attributes after this create (`before` empty) or patch: an attribute sent replaces the kept one, null
    removes it; characteristics that are not ours replace the kept ones; a contact medium's extras replace those kept
    for its kind."""
    after = {k: v for k, v in before.items()}
    sent = body.model_fields_set
    for name in KEPT:
        if name not in sent:
            continue
        value = getattr(body, name)
        if value is None or value == []:
            after.pop(name, None)
        else:
            after[name] = value if isinstance(value, str) else ([dump(v) for v in value] if isinstance(value, list) else dump(value))
    if "status" in sent:
        label = _status_label(body.status, current_status)
        if label is None:
            after.pop("status", None)
        else:
            after["status"] = label
    if body.characteristic is not None:
        theirs = [dump(c) for c in body.characteristic if c.name not in _CHAR_FIELDS]
        if theirs:
            after["characteristic"] = theirs
        else:
            after.pop("characteristic", None)
    if body.contactMedium:
        media = dict(after.get("contactMedium") or {})
        for cm in body.contactMedium:
            extra = {k: dump(v) if isinstance(v, TimePeriodIn) else v for k in MEDIUM_KEPT if (v := getattr(cm, k)) is not None}
            if cm.characteristic.contactType:
                extra["contactType"] = cm.characteristic.contactType
            if extra:
                media[_medium_kind(cm)] = extra
            else:
                media.pop(_medium_kind(cm), None)
        if media:
            after["contactMedium"] = media
        else:
            after.pop("contactMedium", None)
    return after


def _page(db: Any, res: dict[str, Any]) -> list[dict[str, Any]]:
    kinds = service.party_kinds(db, party_ids=[a["party_id"] for a in res["items"]])
    return [a | {"party_kind": kinds.get(a["party_id"])} for a in res["items"]]


@router.get(CUSTOMER_BASE, response_model=list[selectable(Customer)], response_model_by_alias=True, response_model_exclude_none=True)
def list_customers(
    db: DB, principal: Annotated[Principal, Depends(require("customers.view"))],
    name: Annotated[str | None, Query(max_length=200, description="Name, account number, email or phone")] = None,
    status: StatusFilter = None, engaged_party: Annotated[int | None, Query(alias="engagedParty.id", ge=1, le=2**53)] = None,
    fields: Fields = None, sort: Sort = None, offset: Offset = 0, limit: Limit = 50,
) -> JSONResponse:
    """Customers by name (or number, email, phone), status (the account's: a customer shown with a label of the
    client's is `active`), engaged party; `sort` by name, status, id, validFor.startDateTime."""
    res = service.search_accounts(db, q=name, status=status, party_id=engaged_party, sort=sort, sortable=CUSTOMER_SORT, offset=offset, page_size=limit,
                                  with_total=True)
    kept = tmf_attributes.kept(db, entity_type=KEPT_ENTITY, ids=[a["id"] for a in res["items"]])
    return list_response((customer_out(a, kept=kept.get(a["id"])) for a in _page(db, res)), fields=fields, total=res["total"])


def _one_customer(db: Any, id: int) -> Customer:
    acc = service.get_account(db, account_id=id)
    return customer_out(acc, service.party_kinds(db, party_ids=[acc.party_id]).get(acc.party_id), _kept(db, id))


def _kept(db: Any, id: int) -> dict[str, Any]:
    return tmf_attributes.kept(db, entity_type=KEPT_ENTITY, ids=[id]).get(id, {})


@router.get(CUSTOMER_BASE + "/{id}", response_model=selectable(Customer), response_model_by_alias=True, response_model_exclude_none=True)
def get_customer(id: ResourceId, db: DB, principal: Annotated[Principal, Depends(require("customers.view"))], fields: Fields = None) -> JSONResponse:
    return item_response(_one_customer(db, id), fields=fields)


@router.post(CUSTOMER_BASE, status_code=201, response_model=Customer, response_model_by_alias=True, response_model_exclude_none=True)
def create_customer(
    body: CustomerCreate, request: Request, db: DB, now: Now, principal: Annotated[Principal, Depends(require("customers.create"))],
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)] = None,
) -> JSONResponse:
    """A customer: its party (an Organization is an organisation, an Individual a person) and account, with every contact
    medium sent. What the account has no column for (statusReason, validFor, account, paymentMethod, creditProfile,
    agreement, relatedParty, characteristics not ours, a contact medium's validFor, preferred and contactType, a
    status other than `active`) is kept and returned; see customer_out for which value wins."""
    def action() -> tuple[int, dict[str, Any]]:
        fields = _fields_from_tmf(body.name, body.contactMedium, body.characteristic, keep_unknown=True)
        kept = _kept_after(body, {}, current_status=AccountStatus.ACTIVE)
        org = body.engagedParty is not None and body.engagedParty.referred_type == "Organization"
        fields["party_kind"] = "organisation" if org or fields.get("kind") in ("b2b", "wholesale") else "person"
        acc = _created(db, request, now, principal, fields)
        tmf_attributes.keep(db, entity_type=KEPT_ENTITY, entity_id=acc.id, account_id=acc.id, attributes=kept, now=now, actor=principal.actor)
        return 201, dump(_one_customer(db, acc.id))

    status, payload, _ = run_idempotent(db, principal=principal.actor.name, key=idempotency_key, method="POST", path=CUSTOMER_BASE,
                                        body=body.model_dump(mode="json", by_alias=True), now=now, action=action)
    return JSONResponse(payload, status_code=status, headers={"Location": payload.get("href", "")})


def _version(if_match: str | None, current: int) -> int:
    tag = (if_match or "").strip().removeprefix("W/").strip('"')
    return int(tag) if tag.isdigit() else current


@router.patch(CUSTOMER_BASE + "/{id}", response_model=Customer, response_model_by_alias=True, response_model_exclude_none=True)
def patch_customer(
    id: ResourceId, body: CustomerUpdate, db: DB, now: Now, principal: Annotated[Principal, Depends(require("customers.edit"))],
    if_match: Annotated[str | None, Header(alias="If-Match", max_length=100)] = None,
) -> JSONResponse:
    """Change name, contact media, characteristics and the kept attributes (JSON or `application/merge-patch+json`);
    If-Match a version. A change of kept attributes records a new kept set."""
    acc = service.get_account(db, account_id=id)
    if body.engagedParty is not None:
        _same_party(db, acc, body.engagedParty)
    fields = _fields_from_tmf(body.name, body.contactMedium, body.characteristic, keep_unknown=True)
    refused = sorted(k for k in fields if k not in AccountUpdate.model_fields)
    if refused:
        raise InvalidInput(f"cannot change {', '.join(refused)} of a customer", field=refused[0])
    before = _kept(db, id)
    after = _kept_after(body, before, current_status=acc.status)
    service.update_account(db, account_id=id, data=_update(fields, _version(if_match, acc.version)), now=now, actor=principal.actor)
    if after != before:
        tmf_attributes.keep(db, entity_type=KEPT_ENTITY, entity_id=id, account_id=id, attributes=after, now=now, actor=principal.actor, replace=True)
    return item_response(_one_customer(db, id))


def _same_party(db: Any, acc: Account, party: EngagedPartyIn) -> None:
    """A PATCH may repeat the engaged party (TMF629 Customer_Update requires it) but not change it. Raises InvalidInput."""
    kind = service.party_kinds(db, party_ids=[acc.party_id]).get(acc.party_id)
    referred = "Organization" if kind == "organisation" else "Individual"
    if party.id is not None and party.id != str(acc.party_id):
        raise InvalidInput(f"the engaged party of a customer cannot be changed (it is {acc.party_id})", field="engagedParty.id")
    if "referred_type" in party.model_fields_set and party.referred_type != referred:
        raise InvalidInput(f"the engaged party is an {referred}; it cannot be changed", field="engagedParty.@referredType")


def _update(fields: dict[str, Any], version: int) -> AccountUpdate:
    try:
        return AccountUpdate(version=version, **fields)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise InvalidInput(f"{'.'.join(map(str, err['loc']))}: {err['msg']}", field=".".join(map(str, err["loc"]))) from exc


@router.delete(CUSTOMER_BASE + "/{id}", status_code=204)
def delete_customer(id: ResourceId, db: DB, now: Now, principal: Annotated[Principal, Depends(require("accounts.close"))]) -> Response:
    """TMF629 DELETE: a customer nothing refers to yet (no product, order, invoice, payment, case ...) is closed for good
    (its records stay, as the law requires); otherwise 409 naming what refers to it."""
    service.remove_account(db, account_id=id, now=now, actor=principal.actor, reason="deleted through the TMF629 API")
    return Response(status_code=204)


@router.get(ACCOUNT_BASE, response_model=list[selectable(BillingAccount)], response_model_by_alias=True, response_model_exclude_none=True)
def list_billing_accounts(
    db: DB, principal: Annotated[Principal, Depends(require("customers.view"))],
    name: Annotated[str | None, Query(max_length=200, description="Account number, name, email or phone")] = None,
    state: StatusFilter = None, accountType: Annotated[str | None, Query(pattern="^(retail|b2b|wholesale)$")] = None,
    related_party: Annotated[int | None, Query(alias="relatedParty.id", ge=1, le=2**53, description="The customer (account) id")] = None,
    fields: Fields = None, sort: Sort = None, offset: Offset = 0, limit: Limit = 50,
) -> JSONResponse:
    """Billing accounts by name (or number, email, phone), state, accountType, relatedParty.id; `sort` by name, state,
    accountType, lastModified, description, id."""
    res = service.search_accounts(db, q=name, status=state, kind=accountType, account_id=related_party, sort=sort, sortable=ACCOUNT_SORT, offset=offset,
                                  page_size=limit, with_total=True)
    return list_response((billing_account_out(a) for a in res["items"]), fields=fields, total=res["total"])


@router.get(ACCOUNT_BASE + "/{id}", response_model=selectable(BillingAccount), response_model_by_alias=True, response_model_exclude_none=True)
def get_billing_account(id: ResourceId, db: DB, principal: Annotated[Principal, Depends(require("customers.view"))], fields: Fields = None) -> JSONResponse:
    return item_response(billing_account_out(service.get_account(db, account_id=id)), fields=fields)


@router.post(ACCOUNT_BASE, status_code=201, response_model=BillingAccount, response_model_by_alias=True, response_model_exclude_none=True)
def create_billing_account(
    body: BillingAccountCreate, request: Request, db: DB, now: Now, principal: Annotated[Principal, Depends(require("customers.create"))],
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)] = None,
) -> JSONResponse:
    """TMF666 POST: a new account (and party). Its name is the account holder's (`description`, else the related party's, else `name`)."""
    def action() -> tuple[int, dict[str, Any]]:
        party = body.relatedParty[0] if body.relatedParty else None
        media = [m for c in body.contact for m in c.contactMedium]
        holder = body.description or (party.name if party and party.name else None) or body.name
        fields = _fields_from_tmf(holder, media, body.characteristic)
        if body.accountType:
            fields["kind"] = body.accountType
        org = party is not None and party.referred_type == "Organization"
        fields["party_kind"] = "organisation" if org or fields.get("kind") in ("b2b", "wholesale") else "person"
        acc = _created(db, request, now, principal, fields)
        return 201, dump(billing_account_out(acc))

    status, payload, _ = run_idempotent(db, principal=principal.actor.name, key=idempotency_key, method="POST", path=ACCOUNT_BASE,
                                        body=body.model_dump(mode="json", by_alias=True), now=now, action=action)
    return JSONResponse(payload, status_code=status, headers={"Location": payload.get("href", "")})


@router.patch(ACCOUNT_BASE + "/{id}", response_model=BillingAccount, response_model_by_alias=True, response_model_exclude_none=True)
def patch_billing_account(
    id: ResourceId, body: BillingAccountUpdate, db: DB, now: Now, principal: Annotated[Principal, Depends(require("customers.edit"))],
    if_match: Annotated[str | None, Header(alias="If-Match", max_length=100)] = None,
) -> JSONResponse:
    """TMF666 PATCH (JSON or `application/merge-patch+json`): holder name, contact media, characteristics; If-Match a version."""
    acc = service.get_account(db, account_id=id)
    if body.name is not None and body.name != acc.account_number:
        raise InvalidInput(f"the name of a billing account is its number ({acc.account_number}); it cannot be changed", field="name")
    if any(p.id not in (None, str(acc.id)) for p in body.relatedParty or []):
        raise InvalidInput(f"the related party of a billing account is its customer ({acc.id}); it cannot be changed", field="relatedParty.id")
    fields = _fields_from_tmf(body.description, [m for c in body.contact or [] for m in c.contactMedium], body.characteristic)
    refused = sorted(k for k in fields if k not in AccountUpdate.model_fields)
    if refused:
        raise InvalidInput(f"cannot change {', '.join(refused)} of a billing account", field=refused[0])
    acc = service.update_account(db, account_id=id, data=_update(fields, _version(if_match, acc.version)), now=now, actor=principal.actor)
    return item_response(billing_account_out(acc))
