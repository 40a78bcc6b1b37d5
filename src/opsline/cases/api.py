"""TMF621 Trouble Ticket API over support cases: list, get, create (idempotent), patch (status, notes, priority)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Response
from fastapi.responses import JSONResponse
from pydantic import Field
from sqlalchemy import select

from opsline.api.idempotency import run_idempotent
from opsline.api.tmf import PAGE_LIMIT_MAX, TMFModel, dump, page_headers
from opsline.cases import queries, service
from opsline.cases.models import CaseCategory, CaseState, SupportCase
from opsline.cases.schemas import CaseIn, NoteIn
from opsline.core.errors import InvalidInput
from opsline.web.deps import DB, Now, Principal, require

router = APIRouter(tags=["TMF621 Trouble Ticket"])

BASE = "/api/troubleTicket/v4/troubleTicket"
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


def ticket_out(db: Any, c: SupportCase) -> TroubleTicket:
    d = queries.case_dict(db, c)
    history = queries.case_history(db, case_id=c.id)
    notes = queries.case_notes(db, case_id=c.id)
    changes = [StatusChange(status=e["to_value"], changeDate=e["at"], changeReason=e["reason"]) for e in history if e["kind"] in ("opened", "state") and e["to_value"]]
    last = changes[-1] if changes else None
    entities = []
    if c.account_id:
        entities.append(RelatedEntity(id=str(c.account_id), href=f"/api/accountManagement/v4/billingAccount/{c.account_id}", name=d["account_number"], role="account", referred_type="BillingAccount"))
    for lk in queries.case_detail_links(db, case_id=c.id):
        rtype = next((k for k, v in ENTITY_LINK.items() if v == lk["target_type"]), None)
        if rtype and rtype != "BillingAccount":
            entities.append(RelatedEntity(id=lk["target_ref"] or lk["target_id"] or "", role="related", referred_type=rtype))
    parties = []
    if c.account_id:
        parties.append(PartyRef(id=str(c.account_id), href=f"/api/customerManagement/v4/customer/{c.account_id}", name=d["account_name"], role="customer", referred_type="Customer"))
    if d["assignee"]:
        parties.append(PartyRef(id=str(c.assignee_user_id), name=d["assignee"], role="assignee", referred_type="Individual"))
    return TroubleTicket(
        id=str(c.id), href=f"{BASE}/{c.id}", name=c.subject, description=c.description, severity=SEVERITY[c.priority], priority=str(c.priority),
        status=c.state, statusChangeReason=last.changeReason if last else None, statusChangeDate=last.changeDate if last else None,
        ticketType=c.category_code, channel=ChannelRef(name=c.channel), creationDate=c.opened_at, lastUpdate=c.updated_at, resolutionDate=c.resolved_at,
        relatedEntity=entities, relatedParty=parties,
        note=[NoteTMF(id=str(n["id"]), author=n["author"], date=n["at"], text=n["body"]) for n in notes],
        statusChange=changes,
    )


@router.get(BASE, response_model=list[TroubleTicket], response_model_by_alias=True, response_model_exclude_none=True)
def list_tickets(
    db: DB, response: Response, principal: Annotated[Principal, Depends(require("cases.view"))],
    status: Annotated[str | None, Query(max_length=20)] = None, severity: Annotated[str | None, Query(max_length=20)] = None,
    priority: Annotated[str | None, Query(max_length=2)] = None, ticketType: Annotated[str | None, Query(max_length=40)] = None,
    related_party: Annotated[int | None, Query(alias="relatedParty.id")] = None, account: int | None = None,
    offset: Annotated[int, Query(ge=0)] = 0, limit: Annotated[int, Query(ge=1, le=PAGE_LIMIT_MAX)] = 50,
) -> list[TroubleTicket]:
    q = select(SupportCase)
    if status:
        q = q.where(SupportCase.state == status)
    p = _prio(severity, priority)
    if p:
        q = q.where(SupportCase.priority == p)
    if ticketType:
        q = q.where(SupportCase.category_code == ticketType)
    acc = related_party or account
    if acc is not None:
        q = q.where(SupportCase.account_id == acc)
    rows = list(db.execute(q.order_by(SupportCase.id.desc()).offset(offset).limit(limit)).scalars())
    page_headers(response, count=len(rows))
    return [ticket_out(db, c) for c in rows]


@router.get(BASE + "/{id}", response_model=TroubleTicket, response_model_by_alias=True, response_model_exclude_none=True)
def get_ticket(id: int, db: DB, principal: Annotated[Principal, Depends(require("cases.view"))]) -> TroubleTicket:
    return ticket_out(db, service.get_case(db, case_id=id))


@router.post(BASE, status_code=201, response_model=TroubleTicket, response_model_by_alias=True, response_model_exclude_none=True)
def create_ticket(
    body: TroubleTicketCreate, db: DB, now: Now, principal: Annotated[Principal, Depends(require("cases.work"))],
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)] = None,
) -> JSONResponse:
    def action() -> tuple[int, dict[str, Any]]:
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
        return 201, dump(ticket_out(db, c))

    payload_body = body.model_dump(mode="json", by_alias=True)
    if body.channel is not None and body.channel.name is not None and body.channel.name not in ("call", "email", "web", "campaign", "front_line_escalation", "partner"):
        raise InvalidInput("channel.name must be one of call, email, web, campaign, front_line_escalation, partner", field="channel")
    status, payload, _ = run_idempotent(db, principal=principal.actor.name, key=idempotency_key, method="POST", path=BASE, body=payload_body, now=now, action=action)
    return JSONResponse(payload, status_code=status, headers={"Location": payload.get("href", "")})


@router.patch(BASE + "/{id}", response_model=TroubleTicket, response_model_by_alias=True, response_model_exclude_none=True)
def patch_ticket(id: int, body: TroubleTicketUpdate, db: DB, now: Now, principal: Annotated[Principal, Depends(require("cases.work"))]) -> TroubleTicket:
    c = service.get_case(db, case_id=id)
    if body.status and body.status != c.state:
        if body.status not in [s.value for s in CaseState] or body.status == CaseState.ACKNOWLEDGED:
            raise InvalidInput(f"status cannot be set to '{body.status}'", field="status")
        if body.status == CaseState.IN_PROGRESS:
            action = {"acknowledged": "start", "pending": "resume", "held": "resume", "resolved": "reopen", "closed": "reopen"}.get(c.state, "start")
        else:
            action = service.TMF_STATUS_TO_ACTION[body.status]
        service.transition(db, case_id=c.id, action=action, now=now, actor=principal.actor, reason=body.statusChangeReason,
                           partner_code=body.heldBy, resolution=body.statusChangeReason)
    p = _prio(body.severity, body.priority)
    if p is not None and p != c.priority:
        service.change_priority(db, case_id=c.id, priority=p, now=now, actor=principal.actor, reason=body.statusChangeReason or "changed through the API")
    for n in body.note:
        service.add_note(db, case_id=c.id, data=NoteIn(body=n.text, visibility="internal"), now=now, actor=principal.actor, author=n.author)
    db.flush()
    db.refresh(c)
    return ticket_out(db, c)
