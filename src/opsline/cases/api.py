"""TMF621 Trouble Ticket API over support cases (/tmf-api/troubleTicket/v4): list (filtered and sorted in SQL), get,
create (idempotent; the spec's own sample and a spec-minimal ticket are accepted), patch (status, severity, notes,
priority, queue; JSON or merge-patch), delete (refused: cases are kept). Thin: each handler calls service or query functions."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query
from fastapi.responses import JSONResponse
from pydantic import ConfigDict, Field
from sqlalchemy import func, select

from opsline.api.idempotency import run_idempotent
from opsline.api.tmf import Fields, Limit, Offset, ResourceId, Sort, TMFModel, dump, item_response, list_response, selectable
from opsline.cases import service, tickets
from opsline.cases.models import CHANNELS, CaseCategory
from opsline.cases.schemas import CaseIn, NoteIn
from opsline.core import domain_events
from opsline.core.errors import Conflict, InvalidInput
from opsline.web.deps import DB, Now, Principal, require

router = APIRouter(tags=["TMF621 Trouble Ticket"])

BASE = "/tmf-api/troubleTicket/v4/troubleTicket"
SEVERITY = {1: "critical", 2: "major", 3: "minor", 4: "low"}


class TicketNotDeletable(Conflict):
    title = "Ticket cannot be deleted"
    type_slug = "ticket-not-deletable"


ENTITY_LINK = {"CustomerBill": "invoice", "ProductOrder": "order", "Product": "product", "BillingAccount": "account"}


class Strict(TMFModel):
    """A TMF621 input shape: an attribute we neither store nor use is refused (400 naming it), never dropped."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")
    type_: str | None = Field(default=None, alias="@type", max_length=60)
    base_type: str | None = Field(default=None, alias="@baseType", max_length=60)
    schema_location: str | None = Field(default=None, alias="@schemaLocation", max_length=300)


class ChannelRef(Strict):
    id: str | None = Field(default=None, max_length=60)
    href: str | None = Field(default=None, max_length=300)
    name: str | None = Field(default=None, max_length=60)
    referred_type: str | None = Field(default=None, alias="@referredType", max_length=60)


class RelatedEntity(Strict):
    id: str = Field(max_length=60)
    href: str | None = Field(default=None, max_length=300)
    name: str | None = Field(default=None, max_length=200)
    role: str | None = Field(default=None, max_length=60)
    referred_type: str = Field(alias="@referredType", max_length=60)


class PartyRef(Strict):
    id: str = Field(max_length=60)
    href: str | None = Field(default=None, max_length=300)
    name: str | None = Field(default=None, max_length=200)
    role: str | None = Field(default=None, max_length=60)
    referred_type: str | None = Field(default=None, alias="@referredType", max_length=60)


class NoteTMF(Strict):
    id: str | None = Field(default=None, max_length=60, description="Assigned by Opsline (ignored on input)")
    author: str | None = Field(default=None, max_length=200)
    date: datetime | None = Field(default=None, description="Assigned by Opsline: when the note was recorded (ignored on input)")
    text: str = Field(min_length=1, max_length=20_000)


class Attachment(Strict):
    """TMF AttachmentRefOrValue: a document held elsewhere, by reference (its url)."""

    id: str | None = Field(default=None, max_length=60)
    href: str | None = Field(default=None, max_length=300)
    name: str | None = Field(default=None, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    attachmentType: str | None = Field(default=None, max_length=60)
    mimeType: str | None = Field(default=None, max_length=120)
    url: str | None = Field(default=None, max_length=1000)
    referred_type: str | None = Field(default=None, alias="@referredType", max_length=60)


class TicketRelationship(Strict):
    id: str = Field(max_length=60)
    href: str | None = Field(default=None, max_length=300)
    name: str | None = Field(default=None, max_length=200)
    relationshipType: str = Field(min_length=1, max_length=60)


class StatusChange(TMFModel):
    status: str
    changeDate: datetime
    changeReason: str | None = None


class TroubleTicket(TMFModel):
    id: str
    href: str
    name: str
    description: str | None = None
    externalId: str | None = None
    severity: str
    priority: str
    status: str
    statusChangeReason: str | None = None
    statusChangeDate: datetime | None = None
    ticketType: str
    channel: ChannelRef | None = None
    creationDate: datetime
    lastUpdate: datetime
    resolutionDate: datetime | None = None
    expectedResolutionDate: datetime | None = None
    requestedResolutionDate: datetime | None = None
    attachment: list[Attachment] = []
    relatedEntity: list[RelatedEntity] = []
    relatedParty: list[PartyRef] = []
    note: list[NoteTMF] = []
    statusChange: list[StatusChange] = []
    troubleTicketRelationship: list[TicketRelationship] = []
    base_type: str | None = Field(default=None, alias="@baseType")
    schema_location: str | None = Field(default=None, alias="@schemaLocation")
    type_: str = Field(default="TroubleTicket", alias="@type")


# Kept as sent (with the opening, in the case history) and shown back: TMF621 attributes that have no column.
KEPT_AS_SENT = ("externalId", "expectedResolutionDate", "requestedResolutionDate", "attachment", "troubleTicketRelationship", "@baseType", "@schemaLocation")
# Assigned by Opsline: accepted in a create (the spec's own sample carries them) and replaced by ours.
ASSIGNED = ("id", "href", "creationDate", "lastUpdate", "statusChangeDate", "statusChange", "resolutionDate")


class TroubleTicketCreate(Strict):
    """TMF621 TroubleTicket_Create: `description`, `severity` and `ticketType` are what the spec requires; `name`
    defaults to the description's first line. `id`, `href`, `creationDate`, `lastUpdate`, `statusChangeDate`,
    `statusChange` and `resolutionDate` are assigned by Opsline and ignored when sent."""

    name: str | None = Field(default=None, min_length=1, max_length=300)
    description: str | None = Field(default=None, max_length=20_000)
    ticketType: str = Field(min_length=1, max_length=40, description="A case category: its code or its name")
    severity: str | None = Field(default=None, max_length=40, description="As the reporter sees it; kept as sent")
    priority: str | None = Field(default=None, max_length=20, description="1 (highest) to 4, or critical/urgent/high/medium/low; raises the case priority")
    status: str | None = Field(default=None, max_length=20, description="A status to move the new ticket to (e.g. pending)")
    statusChangeReason: str | None = Field(default=None, max_length=2000)
    externalId: str | None = Field(default=None, max_length=100)
    expectedResolutionDate: datetime | None = None
    requestedResolutionDate: datetime | None = None
    channel: ChannelRef | None = None
    attachment: list[Attachment] = Field(default=[], max_length=20)
    relatedEntity: list[RelatedEntity] = Field(default=[], max_length=20)
    relatedParty: list[PartyRef] = Field(default=[], max_length=20)
    note: list[NoteTMF] = Field(default=[], max_length=20)
    troubleTicketRelationship: list[TicketRelationship] = Field(default=[], max_length=20)
    id: str | None = Field(default=None, max_length=60)
    href: str | None = Field(default=None, max_length=300)
    creationDate: datetime | None = None
    lastUpdate: datetime | None = None
    statusChangeDate: datetime | None = None
    resolutionDate: datetime | None = None
    statusChange: list[dict[str, Any]] = Field(default=[], max_length=50)


class TroubleTicketUpdate(TMFModel):
    """What a PATCH (JSON or `application/merge-patch+json`) may change; any other attribute is refused naming it."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")
    status: str | None = Field(default=None, max_length=20)
    statusChangeReason: str | None = Field(default=None, max_length=2000)
    heldBy: str | None = Field(default=None, max_length=40, description="Partner code when status becomes 'held'")
    severity: str | None = Field(default=None, max_length=40)
    priority: str | None = Field(default=None, max_length=20)
    queue: str | None = Field(default=None, max_length=40, description="Queue code to hand the ticket to (extension)")
    note: list[NoteTMF] = Field(default=[], max_length=20)


PRIORITY_WORDS = {"critical": 1, "urgent": 1, "high": 2, "major": 2, "medium": 3, "minor": 3, "normal": 3, "low": 4}
# Channels as partners name them -> the case channel (the name sent is kept and shown back).
CHANNEL_WORDS = {"self service": "web", "selfservice": "web", "portal": "web", "online": "web", "app": "web", "phone": "call",
                 "telephone": "call", "call centre": "call", "call center": "call", "mail": "email", "e-mail": "email"}


def _prio(severity: str | None, priority: str | None) -> int | None:
    """The case priority a ticket asks for: `priority` (1-4 or a word such as high), else a severity we know the
    weight of (critical, major, minor, low ...); an unknown severity is kept as sent and leaves the priority to the rules."""
    if priority:
        p = int(priority) if priority in ("1", "2", "3", "4") else PRIORITY_WORDS.get(priority.strip().lower())
        if p is None:
            raise InvalidInput(f"priority must be 1 (highest) to 4 or one of {', '.join(PRIORITY_WORDS)}", field="priority")
        return p
    if severity:
        return PRIORITY_WORDS.get(severity.strip().lower())
    return None


def _status(status: str | None) -> str | None:
    """TMF621 statuses are camelCase (`inProgress`); the spec's own sample writes `Pending`: read it as `pending`."""
    return status[0].lower() + status[1:] if status else status


def ticket_out(row: dict[str, Any]) -> TroubleTicket:
    """A TMF621 TroubleTicket from one `tickets.ticket_rows` row (plain data, no queries)."""
    c, kept = row["case"], row["tmf"]
    changes = [StatusChange(status=e["status"], changeDate=e["at"], changeReason=e["reason"]) for e in row["changes"]]
    last = changes[-1] if changes else None
    entities = []
    if c.account_id:
        entities.append(RelatedEntity(id=str(c.account_id), href=f"/tmf-api/accountManagement/v4/billingAccount/{c.account_id}", name=row["account_number"],
                                      role="account", referred_type="BillingAccount"))
    for lk in row["links"]:
        rtype = next((k for k, v in ENTITY_LINK.items() if v == lk["target_type"]), None)
        if rtype and rtype != "BillingAccount":
            sent = lk["data"].get("tmf") or {}
            entities.append(RelatedEntity(id=lk["target_ref"] or lk["target_id"] or "", href=sent.get("href"), name=sent.get("name"),
                                          role=sent.get("role") or "related", referred_type=rtype))
    parties = []
    if c.account_id:
        parties.append(PartyRef(id=str(c.account_id), href=f"/tmf-api/customerManagement/v4/customer/{c.account_id}", name=row["account_name"], role="customer",
                                referred_type="Customer"))
    if row["assignee"]:
        parties.append(PartyRef(id=str(c.assignee_user_id), name=row["assignee"], role="assignee", referred_type="Individual"))
    parties += [PartyRef.model_validate(p) for p in kept.get("relatedParty", [])]
    channel = ChannelRef.model_validate(kept["channel"]) if kept.get("channel") else ChannelRef(id=c.channel, name=c.channel)
    return TroubleTicket.model_validate({
        "id": str(c.id), "href": f"{BASE}/{c.id}", "name": c.subject, "description": c.description,
        "severity": kept.get("severity") or SEVERITY[c.priority], "priority": str(c.priority),
        "status": c.state, "statusChangeReason": last.changeReason if last else None, "statusChangeDate": last.changeDate if last else None,
        "ticketType": c.category_code, "channel": channel, "creationDate": c.opened_at, "lastUpdate": c.updated_at, "resolutionDate": c.resolved_at,
        "relatedEntity": entities, "relatedParty": parties,
        "note": [NoteTMF(id=str(n["id"]), author=n["author"], date=n["at"], text=n["body"]) for n in row["notes"]],
        "statusChange": changes,
    } | {k: kept[k] for k in KEPT_AS_SENT if k in kept})


def _one(db: Any, case_id: int) -> TroubleTicket:
    rows = tickets.ticket_rows(db, case_ids=[case_id])
    if not rows:
        raise service.CaseNotFound(f"case {case_id} not found")
    return ticket_out(rows[0])


def _category(db: Any, ticket_type: str) -> str:
    """The case category a ticketType names: its code, or its name (any case)."""
    if db.get(CaseCategory, ticket_type) is not None:
        return ticket_type
    wanted = ticket_type.strip().lower()
    code = db.execute(select(CaseCategory.code).where(func.lower(CaseCategory.name) == wanted)).scalar()
    if code is None:
        raise InvalidInput(f"unknown ticketType '{ticket_type}'", field="ticketType")
    return code


@router.get(BASE, response_model=list[selectable(TroubleTicket)], response_model_by_alias=True, response_model_exclude_none=True)
def list_tickets(
    db: DB, principal: Annotated[Principal, Depends(require("cases.view"))],
    status: Annotated[str | None, Query(max_length=20)] = None, severity: Annotated[str | None, Query(max_length=20)] = None,
    priority: Annotated[str | None, Query(max_length=20)] = None, ticketType: Annotated[str | None, Query(max_length=40)] = None,
    name: Annotated[str | None, Query(max_length=300, description="Part of the ticket's name")] = None,
    channel: Annotated[str | None, Query(alias="channel.id", max_length=30)] = None,
    related_party: Annotated[int | None, Query(alias="relatedParty.id", ge=1, le=2**53)] = None,
    related_entity: Annotated[int | None, Query(alias="relatedEntity.id", ge=1, le=2**53, description="A billing account id")] = None,
    account: Annotated[int | None, Query(ge=1, le=2**53)] = None,
    fields: Fields = None, sort: Sort = None, offset: Offset = 0, limit: Limit = 50,
) -> JSONResponse:
    """Tickets, newest first (or by `sort`: creationDate, lastUpdate, status, priority, name, ticketType, resolutionDate),
    filtered in SQL; `severity` filters on the priority it stands for."""
    prio = _prio(None, priority) if priority else _prio(severity, None) if severity else None
    if severity and prio is None:
        raise InvalidInput(f"severity must be one of {', '.join(PRIORITY_WORDS)} to filter on", field="severity")
    rows, total = tickets.ticket_page(db, status=_status(status), priority=prio, ticket_type=ticketType, account_id=related_party or related_entity or account,
                                      name=name, channel=channel, sort=sort, offset=offset, limit=limit)
    return list_response((ticket_out(r) for r in rows), fields=fields, total=total)


@router.get(BASE + "/{id}", response_model=selectable(TroubleTicket), response_model_by_alias=True, response_model_exclude_none=True)
def get_ticket(id: ResourceId, db: DB, principal: Annotated[Principal, Depends(require("cases.view"))], fields: Fields = None) -> JSONResponse:
    return item_response(_one(db, id), fields=fields)


@router.post(BASE, status_code=201, response_model=TroubleTicket, response_model_by_alias=True, response_model_exclude_none=True)
def create_ticket(
    body: TroubleTicketCreate, db: DB, now: Now, principal: Annotated[Principal, Depends(require("cases.work"))],
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)] = None,
) -> JSONResponse:
    """Open a case from a TMF621 ticket. Nothing sent is dropped: each attribute is stored and shown back, or refused
    with a 400 naming it (the server-assigned ones listed in TroubleTicket_Create are replaced by ours)."""
    def action() -> tuple[int, dict[str, Any]]:
        with domain_events.collect(db):  # the case, its links and notes: its SLA clocks are computed once
            return _create()

    def _create() -> tuple[int, dict[str, Any]]:
        category = _category(db, body.ticketType)
        account_id = None
        others = []
        for party in body.relatedParty:
            if (party.role or "customer").lower() == "customer":
                if not party.id.isdigit():
                    raise InvalidInput(f"relatedParty id '{party.id}' is not a customer id", field="relatedParty")
                account_id = int(party.id)
            else:
                others.append(party.model_dump(mode="json", by_alias=True, exclude_none=True))
        links = []
        for ent in body.relatedEntity:
            kind = ENTITY_LINK.get(ent.referred_type)
            if kind is None:
                raise InvalidInput(f"relatedEntity @referredType must be one of {', '.join(ENTITY_LINK)}", field="relatedEntity")
            if kind == "account":
                if not ent.id.isdigit():
                    raise InvalidInput(f"BillingAccount id '{ent.id}' is not an account id", field="relatedEntity")
                account_id = account_id or int(ent.id)
            else:
                links.append((kind, ent.id, {"tmf": {k: v for k, v in (("href", ent.href), ("name", ent.name), ("role", ent.role)) if v}}))
        kept = {k: v for k, v in body.model_dump(mode="json", by_alias=True, exclude_none=True, include=set(KEPT_AS_SENT) | {"base_type", "schema_location"}).items()
                if v not in ([], None)}
        if body.severity:
            kept["severity"] = body.severity
        if others:
            kept["relatedParty"] = others
        channel = "web"
        if body.channel is not None:
            sent = (body.channel.name or body.channel.id or "web").strip().lower()
            channel = sent if sent in CHANNELS else CHANNEL_WORDS.get(sent, "web")
            kept["channel"] = body.channel.model_dump(mode="json", by_alias=True, exclude_none=True)
            kept["channel"].setdefault("id", channel)
        described = (body.description or "").strip()
        name = body.name or (described.splitlines()[0][:300] if described else None)
        if not name:
            raise InvalidInput("give the ticket a name or a description", field="name")
        data = CaseIn(account_id=account_id, category_code=category, channel=channel, subject=name, description=body.description,  # type: ignore[arg-type]
                      priority=_prio(body.severity, body.priority), originating_agent=None)
        c = service.open_case(db, data=data, now=now, actor=principal.actor, tmf=kept)
        for kind, ref, link_data in links:
            service.add_link(db, case_id=c.id, target_type=kind, target_ref=ref, now=now, actor=principal.actor, data=link_data)
        for n in body.note:
            service.add_note(db, case_id=c.id, data=NoteIn(body=n.text, visibility="internal"), now=now, actor=principal.actor, author=n.author)
        status = _status(body.status)
        if status and status != c.state:
            service.update_case(db, case_id=c.id, now=now, actor=principal.actor, status=status, reason=body.statusChangeReason)
        db.flush()
        return 201, dump(_one(db, c.id))

    payload_body = body.model_dump(mode="json", by_alias=True)
    status, payload, _ = run_idempotent(db, principal=principal.actor.name, key=idempotency_key, method="POST", path=BASE, body=payload_body, now=now, action=action)
    return JSONResponse(payload, status_code=status, headers={"Location": payload.get("href", "")})


@router.patch(BASE + "/{id}", response_model=TroubleTicket, response_model_by_alias=True, response_model_exclude_none=True)
def patch_ticket(id: ResourceId, body: TroubleTicketUpdate, db: DB, now: Now, principal: Annotated[Principal, Depends(require("cases.work"))]) -> TroubleTicket:
    """Change status, severity (kept as sent), priority, queue; add notes. JSON or `application/merge-patch+json`."""
    service.update_case(db, case_id=id, now=now, actor=principal.actor, status=_status(body.status), reason=body.statusChangeReason, partner_code=body.heldBy,
                        priority=_prio(None, body.priority) if body.priority else _prio(body.severity, None), queue_code=body.queue,
                        notes=[(n.text, n.author) for n in body.note], severity=body.severity)
    db.flush()
    return _one(db, id)


@router.delete(BASE + "/{id}", status_code=204)
def delete_ticket(id: ResourceId, db: DB, principal: Annotated[Principal, Depends(require("cases.work"))]) -> None:
    """TMF621 DELETE: a ticket is a support case, which the business keeps (its history is the SLA and ICASA record):
    409 saying so, after 404 for an unknown ticket. Withdraw a ticket with PATCH status=cancelled."""
    _one(db, id)
    raise TicketNotDeletable(f"ticket {id} is kept as the record of the case; withdraw it with PATCH status=cancelled instead")
