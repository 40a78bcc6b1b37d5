"""TMF621 Trouble Ticket API over support cases (/tmf-api/troubleTicket/v4): list, get, create (idempotent), patch
(status, notes, priority, queue). Thin: each handler calls one service or query function."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Response
from fastapi.responses import JSONResponse
from pydantic import Field

from opsline.api.idempotency import run_idempotent
from opsline.api.tmf import PAGE_LIMIT_MAX, TMFModel, dump, page_headers
from opsline.cases import service, tickets
from opsline.cases.models import CHANNELS, CaseCategory
from opsline.cases.schemas import CaseIn, NoteIn
from opsline.core import domain_events
from opsline.core.errors import InvalidInput
from opsline.web.deps import DB, Now, Principal, require

router = APIRouter(tags=["TMF621 Trouble Ticket"])

BASE = "/tmf-api/troubleTicket/v4/troubleTicket"
SEVERITY = {1: "critical", 2: "major", 3: "minor", 4: "low"}
SEVERITY_TO_PRIORITY = {v: k for k, v in SEVERITY.items()}
ENTITY_LINK = {"CustomerBill": "invoice", "ProductOrder": "order", "Product": "product", "BillingAccount": "account"}


class ChannelRef(TMFModel):
    id: str | None = Field(default=None, max_length=60)
    name: str | None = Field(default=None, max_length=60)


class RelatedEntity(TMFModel):
    id: str = Field(max_length=60)
    href: str | None = Field(default=None, max_length=300)
    name: str | None = Field(default=None, max_length=200)
    role: str | None = Field(default=None, max_length=60)
    referred_type: str = Field(alias="@referredType", max_length=60)


class PartyRef(TMFModel):
    id: str = Field(max_length=60)
    href: str | None = Field(default=None, max_length=300)
    name: str | None = Field(default=None, max_length=200)
    role: str | None = Field(default=None, max_length=60)
    referred_type: str | None = Field(default=None, alias="@referredType", max_length=60)


class NoteTMF(TMFModel):
    id: str | None = None
    author: str | None = Field(default=None, max_length=200)
    date: datetime | None = None
    text: str = Field(min_length=1, max_length=20_000)


class StatusChange(TMFModel):
    status: str
    changeDate: datetime
    changeReason: str | None = None


class TroubleTicket(TMFModel):
    id: str
    href: str
    name: str
    description: str | None = None
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
    relatedEntity: list[RelatedEntity] = []
    relatedParty: list[PartyRef] = []
    note: list[NoteTMF] = []
    statusChange: list[StatusChange] = []
    type_: str = Field(default="TroubleTicket", alias="@type")


class TroubleTicketCreate(TMFModel):
    name: str = Field(min_length=1, max_length=300)
    description: str | None = Field(default=None, max_length=20_000)
    ticketType: str = Field(min_length=1, max_length=40)
    severity: str | None = Field(default=None, max_length=20)
    priority: str | None = Field(default=None, max_length=2)
    channel: ChannelRef | None = None
    relatedEntity: list[RelatedEntity] = Field(default=[], max_length=20)
    relatedParty: list[PartyRef] = Field(default=[], max_length=20)
    note: list[NoteTMF] = Field(default=[], max_length=20)


class TroubleTicketUpdate(TMFModel):
    status: str | None = Field(default=None, max_length=20)
    statusChangeReason: str | None = Field(default=None, max_length=2000)
    heldBy: str | None = Field(default=None, max_length=40, description="Partner code when status becomes 'held'")
    severity: str | None = Field(default=None, max_length=20)
    priority: str | None = Field(default=None, max_length=2)
    queue: str | None = Field(default=None, max_length=40, description="Queue code to hand the ticket to (extension)")
    note: list[NoteTMF] = Field(default=[], max_length=20)


def _prio(severity: str | None, priority: str | None) -> int | None:
    if priority:
        if priority not in ("1", "2", "3", "4"):
            raise InvalidInput("priority must be 1 (highest) to 4", field="priority")
        return int(priority)
    if severity:
        p = SEVERITY_TO_PRIORITY.get(severity.lower())
        if p is None:
            raise InvalidInput(f"severity must be one of {', '.join(SEVERITY.values())}", field="severity")
        return p
    return None


def ticket_out(row: dict[str, Any]) -> TroubleTicket:
    """A TMF621 TroubleTicket from one `tickets.ticket_rows` row (plain data, no queries)."""
    c = row["case"]
    changes = [StatusChange(status=e["status"], changeDate=e["at"], changeReason=e["reason"]) for e in row["changes"]]
    last = changes[-1] if changes else None
    entities = []
    if c.account_id:
        entities.append(RelatedEntity(id=str(c.account_id), href=f"/tmf-api/accountManagement/v4/billingAccount/{c.account_id}", name=row["account_number"],
                                      role="account", referred_type="BillingAccount"))
    for lk in row["links"]:
        rtype = next((k for k, v in ENTITY_LINK.items() if v == lk["target_type"]), None)
        if rtype and rtype != "BillingAccount":
            entities.append(RelatedEntity(id=lk["target_ref"] or lk["target_id"] or "", role="related", referred_type=rtype))
    parties = []
    if c.account_id:
        parties.append(PartyRef(id=str(c.account_id), href=f"/tmf-api/customerManagement/v4/customer/{c.account_id}", name=row["account_name"], role="customer",
                                referred_type="Customer"))
    if row["assignee"]:
        parties.append(PartyRef(id=str(c.assignee_user_id), name=row["assignee"], role="assignee", referred_type="Individual"))
    return TroubleTicket(
        id=str(c.id), href=f"{BASE}/{c.id}", name=c.subject, description=c.description, severity=SEVERITY[c.priority], priority=str(c.priority),
        status=c.state, statusChangeReason=last.changeReason if last else None, statusChangeDate=last.changeDate if last else None,
        ticketType=c.category_code, channel=ChannelRef(id=c.channel, name=c.channel), creationDate=c.opened_at, lastUpdate=c.updated_at, resolutionDate=c.resolved_at,
        relatedEntity=entities, relatedParty=parties,
        note=[NoteTMF(id=str(n["id"]), author=n["author"], date=n["at"], text=n["body"]) for n in row["notes"]],
        statusChange=changes,
    )


def _one(db: Any, case_id: int) -> TroubleTicket:
    rows = tickets.ticket_rows(db, case_ids=[case_id])
    if not rows:
        raise service.CaseNotFound(f"case {case_id} not found")
    return ticket_out(rows[0])


@router.get(BASE, response_model=list[TroubleTicket], response_model_by_alias=True, response_model_exclude_none=True)
def list_tickets(
    db: DB, response: Response, principal: Annotated[Principal, Depends(require("cases.view"))],
    status: Annotated[str | None, Query(max_length=20)] = None, severity: Annotated[str | None, Query(max_length=20)] = None,
    priority: Annotated[str | None, Query(max_length=2)] = None, ticketType: Annotated[str | None, Query(max_length=40)] = None,
    related_party: Annotated[int | None, Query(alias="relatedParty.id")] = None, account: int | None = None,
    offset: Annotated[int, Query(ge=0)] = 0, limit: Annotated[int, Query(ge=1, le=PAGE_LIMIT_MAX)] = 50,
) -> list[TroubleTicket]:
    rows, total = tickets.ticket_page(db, status=status, priority=_prio(severity, priority), ticket_type=ticketType, account_id=related_party or account,
                                      offset=offset, limit=limit)
    page_headers(response, count=len(rows))
    response.headers["X-Total-Count"] = str(total)
    return [ticket_out(r) for r in rows]


@router.get(BASE + "/{id}", response_model=TroubleTicket, response_model_by_alias=True, response_model_exclude_none=True)
def get_ticket(id: int, db: DB, principal: Annotated[Principal, Depends(require("cases.view"))]) -> TroubleTicket:
    return _one(db, id)


@router.post(BASE, status_code=201, response_model=TroubleTicket, response_model_by_alias=True, response_model_exclude_none=True)
def create_ticket(
    body: TroubleTicketCreate, db: DB, now: Now, principal: Annotated[Principal, Depends(require("cases.work"))],
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)] = None,
) -> JSONResponse:
    def action() -> tuple[int, dict[str, Any]]:
        with domain_events.collect(db):  # the case, its links and notes: its SLA clocks are computed once
            return _create()

    def _create() -> tuple[int, dict[str, Any]]:
        if db.get(CaseCategory, body.ticketType) is None:
            raise InvalidInput(f"unknown ticketType '{body.ticketType}'", field="ticketType")
        account_id = None
        for party in body.relatedParty:
            if (party.role or "customer").lower() == "customer":
                if not party.id.isdigit():
                    raise InvalidInput(f"relatedParty id '{party.id}' is not a customer id", field="relatedParty")
                account_id = int(party.id)
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
                links.append((kind, ent.id))
        channel = (body.channel.name if body.channel and body.channel.name else "web")
        data = CaseIn(account_id=account_id, category_code=body.ticketType, channel=channel, subject=body.name, description=body.description,  # type: ignore[arg-type]
                      priority=_prio(body.severity, body.priority), originating_agent=None)
        c = service.open_case(db, data=data, now=now, actor=principal.actor)
        for kind, ref in links:
            service.add_link(db, case_id=c.id, target_type=kind, target_ref=ref, now=now, actor=principal.actor)
        for n in body.note:
            service.add_note(db, case_id=c.id, data=NoteIn(body=n.text, visibility="internal"), now=now, actor=principal.actor, author=n.author)
        db.flush()
        return 201, dump(_one(db, c.id))

    payload_body = body.model_dump(mode="json", by_alias=True)
    if body.channel is not None and body.channel.name is not None and body.channel.name not in CHANNELS:
        raise InvalidInput(f"channel.name must be one of {', '.join(CHANNELS)}", field="channel")
    status, payload, _ = run_idempotent(db, principal=principal.actor.name, key=idempotency_key, method="POST", path=BASE, body=payload_body, now=now, action=action)
    return JSONResponse(payload, status_code=status, headers={"Location": payload.get("href", "")})


@router.patch(BASE + "/{id}", response_model=TroubleTicket, response_model_by_alias=True, response_model_exclude_none=True)
def patch_ticket(id: int, body: TroubleTicketUpdate, db: DB, now: Now, principal: Annotated[Principal, Depends(require("cases.work"))]) -> TroubleTicket:
    service.update_case(db, case_id=id, now=now, actor=principal.actor, status=body.status, reason=body.statusChangeReason, partner_code=body.heldBy,
                        priority=_prio(body.severity, body.priority), queue_code=body.queue, notes=[(n.text, n.author) for n in body.note])
    db.flush()
    return _one(db, id)
