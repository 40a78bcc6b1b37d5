"""Support desk pages for the leads pipeline (list, board, lead, conversion) and outbound campaigns (list, new, detail, calls)."""

from __future__ import annotations

from typing import Annotated, Any, Callable

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy import select

from opsline.cases import campaigns, incidents, leads, retention, trends, trends_mail
from opsline.cases.models import Queue
from opsline.cases.views import _detail
from opsline.core.errors import InvalidInput, OpslineError
from opsline.core.exports import download_headers, export_sheets
from opsline.partners.service import list_partners
from opsline.web.deps import DB, Now, Principal, Tz, require
from opsline.web.templating import render

router = APIRouter(include_in_schema=False)

View = Annotated[Principal, Depends(require("cases.view"))]
LeadWork = Annotated[Principal, Depends(require("cases.leads"))]
CampaignManage = Annotated[Principal, Depends(require("cases.campaigns"))]


def _errors(exc: ValidationError) -> tuple[str, str | None]:
    first = exc.errors()[0]["loc"] if exc.errors() else ()
    return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()), (str(first[-1]) if first else None)


def _attempt(db: DB, fn: Callable[[], Any]) -> tuple[Any, str | None, str | None, int]:
    """Run one service call; on a user error roll back and return (None, message, field, status)."""
    try:
        out = fn()
        db.flush()
        return out, None, None, 200
    except ValidationError as exc:
        db.rollback()
        msg, field = _errors(exc)
        return None, msg, field, 422
    except OpslineError as exc:
        db.rollback()
        return None, exc.detail, exc.field, exc.status


def _teams(db: DB) -> list[dict[str, str]]:
    return [{"code": c, "name": n} for c, n in db.execute(select(Queue.code, Queue.name).where(Queue.active.is_(True)).order_by(Queue.name))]


def _partners(db: DB) -> list[dict[str, Any]]:
    return [{"code": p["code"], "name": p["name"], "active": p["active"]} for p in list_partners(db) if p["active"] and (p.get("contact_email") or (p.get("adapter") == "http" and p.get("base_url")))]


# --- leads -----------------------------------------------------------------------------------------------------------

@router.get("/cases/leads", response_class=HTMLResponse)
def leads_list(request: Request, db: DB, principal: View, state: str = "", agent: str = "", team: str = "", page: int = 1) -> HTMLResponse:
    res, err, _, status = _attempt(db, lambda: leads.list_leads(db, state=state or None, agent=agent or None, team=team or None, page=page))
    return render(request, "cases/leads.html", {"result": res or {"rows": [], "total": 0, "page": 1, "per_page": 50}, "error": err,
                                                "filters": {"state": state, "agent": agent, "team": team}, "teams": _teams(db),
                                                "states": leads.LEAD.state_values()}, principal=principal, status_code=status)


@router.get("/cases/leads/board", response_class=HTMLResponse)
def leads_board(request: Request, db: DB, principal: View) -> HTMLResponse:
    return render(request, "cases/leads_board.html", {"columns": leads.board(db)}, principal=principal)


@router.get("/cases/leads/conversion", response_class=HTMLResponse)
def leads_conversion(request: Request, db: DB, principal: View) -> HTMLResponse:
    return render(request, "cases/leads_conversion.html", leads.conversion(db), principal=principal)


def _lead_form(request: Request, db: DB, principal: Principal, values: dict[str, Any], error: str | None = None, field: str | None = None,
               status_code: int = 200) -> HTMLResponse:
    return render(request, "cases/lead_new.html", {"values": values, "error": error, "field": field, "teams": _teams(db)},
                  principal=principal, status_code=status_code)


@router.get("/cases/leads/new", response_class=HTMLResponse)
def lead_new(request: Request, db: DB, principal: LeadWork, case_id: int | None = None, account_id: int | None = None) -> HTMLResponse:
    return _lead_form(request, db, principal, {"case_id": case_id or "", "account_id": account_id or ""})


@router.post("/cases/leads/new", response_model=None)
async def lead_create(request: Request, db: DB, now: Now, principal: LeadWork) -> Response:
    form = {k: v for k, v in dict(await request.form()).items() if k != "csrf_token"}
    values: dict[str, Any] = {k: v for k, v in form.items() if v not in ("", None)}
    values["consent_marketing"] = values.get("consent_marketing") in ("on", "true", "1", "yes")
    lead, err, field, status = _attempt(db, lambda: leads.record_lead(db, data=leads.LeadRecordIn(**values), now=now, actor=principal.actor))
    if err:
        return _lead_form(request, db, principal, form, err, field, status)
    return RedirectResponse(f"/cases/leads/{lead.id}", status_code=303)


def _lead_page(request: Request, db: DB, principal: Principal, lead_id: int, *, error: str | None = None, field: str | None = None,
               status_code: int = 200) -> HTMLResponse:
    data = leads.lead_detail(db, lead_id=lead_id, actor=principal.actor)
    return render(request, "cases/lead_detail.html", data | {"error": error, "field": field, "teams": _teams(db), "partners": _partners(db)},
                  principal=principal, status_code=status_code)


@router.get("/cases/leads/{lead_id}", response_class=HTMLResponse)
def lead_page(request: Request, lead_id: int, db: DB, principal: View) -> HTMLResponse:
    return _lead_page(request, db, principal, lead_id)


def _lead_after(request: Request, db: DB, principal: Principal, lead_id: int, fn: Callable[[], Any]) -> Response:
    leads.lead_detail(db, lead_id=lead_id, actor=principal.actor)  # 404 for an unknown lead before anything else
    _, err, field, status = _attempt(db, fn)
    if err:
        return _lead_page(request, db, principal, lead_id, error=err, field=field, status_code=status)
    return RedirectResponse(f"/cases/leads/{lead_id}", status_code=303)


@router.post("/cases/leads/{lead_id}/qualify", response_model=None)
def lead_qualify(request: Request, lead_id: int, db: DB, now: Now, principal: LeadWork) -> Response:
    return _lead_after(request, db, principal, lead_id, lambda: leads.qualify(db, lead_id=lead_id, now=now, actor=principal.actor))


@router.post("/cases/leads/{lead_id}/hand-over", response_model=None)
def lead_hand_over(request: Request, lead_id: int, db: DB, now: Now, principal: LeadWork, to_kind: Annotated[str, Form()] = "",
                   to_code: Annotated[str, Form()] = "") -> Response:
    return _lead_after(request, db, principal, lead_id, lambda: leads.hand_over(db, lead_id=lead_id, to_kind=to_kind, to_code=to_code, now=now,
                                                                                actor=principal.actor))


@router.post("/cases/leads/{lead_id}/outcome", response_model=None)
def lead_outcome(request: Request, lead_id: int, db: DB, now: Now, principal: LeadWork, outcome: Annotated[str, Form()] = "",
                 order_id: Annotated[str, Form()] = "", reason: Annotated[str, Form()] = "") -> Response:
    def run() -> Any:
        oid = order_id.strip()
        if oid and not oid.isdigit():
            raise leads.UnableToRecordOutcome(f"'{oid}' is not an order number", field="order_id")
        return leads.record_outcome(db, lead_id=lead_id, outcome=outcome, order_id=int(oid) if oid else None, reason=reason or None, now=now,
                                    actor=principal.actor)

    return _lead_after(request, db, principal, lead_id, run)


# --- campaigns -------------------------------------------------------------------------------------------------------

@router.get("/cases/campaigns", response_class=HTMLResponse)
def campaigns_list(request: Request, db: DB, principal: View) -> HTMLResponse:
    return render(request, "cases/campaigns.html", {"campaigns": campaigns.list_campaigns(db)}, principal=principal)


def _campaign_form(request: Request, principal: Principal, values: dict[str, Any], error: str | None = None, field: str | None = None,
                   status_code: int = 200) -> HTMLResponse:
    return render(request, "cases/campaign_new.html", {"values": values, "error": error, "field": field}, principal=principal, status_code=status_code)


@router.get("/cases/campaigns/new", response_class=HTMLResponse)
def campaign_new(request: Request, now: Now, principal: CampaignManage) -> HTMLResponse:
    return _campaign_form(request, principal, {"filter_kind": "contract_ending", "channel": "call"})


@router.post("/cases/campaigns/new", response_model=None)
async def campaign_create(request: Request, db: DB, now: Now, principal: CampaignManage) -> Response:
    form = {k: v for k, v in dict(await request.form()).items() if k != "csrf_token"}
    values: dict[str, Any] = {k: v for k, v in form.items() if v not in ("", None)}
    values["offers"] = [o.strip() for o in str(values.pop("offers", "")).splitlines() if o.strip()]
    c, err, field, status = _attempt(db, lambda: campaigns.create_campaign(db, data=campaigns.CampaignIn(**values), now=now, actor=principal.actor))
    if err:
        return _campaign_form(request, principal, form, err, field, status)
    return RedirectResponse(f"/cases/campaigns/{c.id}", status_code=303)


def _campaign_page(request: Request, db: DB, principal: Principal, campaign_id: int, *, page: int = 1, error: str | None = None,
                   field: str | None = None, status_code: int = 200) -> HTMLResponse:
    data = campaigns.campaign_detail(db, campaign_id=campaign_id, actor=principal.actor, page=page)
    return render(request, "cases/campaign_detail.html", data | {"error": error, "field": field}, principal=principal, status_code=status_code)


@router.get("/cases/campaigns/{campaign_id}", response_class=HTMLResponse)
def campaign_page(request: Request, campaign_id: int, db: DB, principal: View, page: int = 1) -> HTMLResponse:
    return _campaign_page(request, db, principal, campaign_id, page=page)


def _campaign_after(request: Request, db: DB, principal: Principal, campaign_id: int, fn: Callable[[], Any]) -> Response:
    campaigns.campaign_detail(db, campaign_id=campaign_id, actor=principal.actor, per_page=1)  # 404 first
    _, err, field, status = _attempt(db, fn)
    if err:
        return _campaign_page(request, db, principal, campaign_id, error=err, field=field, status_code=status)
    return RedirectResponse(f"/cases/campaigns/{campaign_id}", status_code=303)


@router.post("/cases/campaigns/{campaign_id}/build", response_model=None)
def campaign_build(request: Request, campaign_id: int, db: DB, now: Now, principal: CampaignManage) -> Response:
    return _campaign_after(request, db, principal, campaign_id, lambda: campaigns.build_targets(db, campaign_id=campaign_id, now=now, actor=principal.actor))


@router.post("/cases/campaigns/{campaign_id}/transition", response_model=None)
def campaign_transition(request: Request, campaign_id: int, db: DB, now: Now, principal: CampaignManage, action: Annotated[str, Form()] = "",
                        reason: Annotated[str, Form()] = "") -> Response:
    def run() -> Any:
        if action == "launch":
            return campaigns.launch(db, campaign_id=campaign_id, now=now, actor=principal.actor)
        return campaigns.finish(db, campaign_id=campaign_id, action=action, reason=reason or None, now=now, actor=principal.actor)

    return _campaign_after(request, db, principal, campaign_id, run)


@router.post("/cases/campaigns/{campaign_id}/targets/{target_id}/outcome", response_model=None)
def campaign_target_outcome(request: Request, campaign_id: int, target_id: int, db: DB, now: Now, principal: LeadWork,
                            outcome: Annotated[str, Form()] = "", offer: Annotated[str, Form()] = "", note: Annotated[str, Form()] = "",
                            lead_interest: Annotated[str, Form()] = "") -> Response:
    def run() -> Any:
        if not campaigns.target_in(db, campaign_id=campaign_id, target_id=target_id):
            raise campaigns.UnableToRecordCampaignOutcome(f"target {target_id} is not in campaign {campaign_id}", field="target_id")
        return campaigns.record_outcome(db, target_id=target_id, outcome=outcome, offer=offer or None, note=note or None,
                                        lead_interest=lead_interest or None, now=now, actor=principal.actor)

    return _campaign_after(request, db, principal, campaign_id, run)





# --- trends ----------------------------------------------------------------------------------------------------------

Trends = Annotated[Principal, Depends(require("cases.trends"))]
Work = Annotated[Principal, Depends(require("cases.work"))]


@router.get("/cases/trends", response_class=HTMLResponse)
def trends_page(request: Request, db: DB, now: Now, principal: Trends, weeks: int = 12) -> HTMLResponse:
    data, err, field, status = _attempt(db, lambda: trends.report(db, now=now, weeks=weeks))
    if err:
        data = trends.report(db, now=now, weeks=12)
    return render(request, "cases/trends.html", {"data": data, "error": err, "field": field, "subscriptions": trends_mail.subscriptions(db)},
                  principal=principal, status_code=status)


@router.get("/cases/trends/cases", response_class=HTMLResponse)
def trends_drill(request: Request, db: DB, now: Now, principal: Trends, weeks: int = 12, week: int | None = None, category: str = "",
                 channel: str = "") -> HTMLResponse:
    data = trends.drill(db, now=now, weeks=weeks, week=week, category=category or None, channel=channel or None)
    return render(request, "cases/trends_cases.html", {"data": data, "weeks": weeks}, principal=principal)


@router.get("/cases/trends/export")
def trends_export(db: DB, now: Now, principal: Trends, weeks: int = 12, format: str = "xlsx") -> Response:
    data = trends.report(db, now=now, weeks=weeks)
    filename, media, body = export_sheets(format, name=f"support-trends-{data['mondays'][0]}", sheets=trends.sheets(data))
    return Response(body, media_type=media, headers=download_headers(filename))


@router.post("/cases/{case_id}/sentiment", response_model=None)
def case_sentiment(request: Request, case_id: int, db: DB, now: Now, principal: Work, recovered: Annotated[str, Form()] = "") -> Response:
    value = {"yes": True, "no": False, "": None}.get(recovered, "bad")
    if value == "bad":
        raise InvalidInput("recovered is yes, no or empty", field="recovered")
    trends.set_sentiment(db, case_id=case_id, recovered=value, now=now, actor=principal.actor)  # type: ignore[arg-type]
    return RedirectResponse(f"/cases/{case_id}", status_code=303)


@router.post("/cases/trends/subscriptions", response_model=None)
def trends_subscribe(request: Request, db: DB, now: Now, principal: Trends, email: Annotated[str, Form()] = "", weeks: Annotated[str, Form()] = "12") -> Response:
    def run() -> Any:
        if not weeks.strip().isdigit():
            raise InvalidInput("weeks must be a whole number", field="weeks")
        return trends_mail.subscribe(db, email=email, weeks=int(weeks), now=now, actor=principal.actor)

    _, err, field, status = _attempt(db, run)
    if err:
        return render(request, "cases/trends.html", {"data": trends.report(db, now=now, weeks=12), "error": err, "field": field,
                                                     "subscriptions": trends_mail.subscriptions(db)}, principal=principal, status_code=status)
    return RedirectResponse("/cases/trends", status_code=303)


@router.post("/cases/trends/subscriptions/{subscription_id}/cancel", response_model=None)
def trends_unsubscribe(subscription_id: int, db: DB, now: Now, principal: Trends) -> Response:
    trends_mail.unsubscribe(db, subscription_id=subscription_id, now=now, actor=principal.actor)
    return RedirectResponse("/cases/trends", status_code=303)


# --- retention -------------------------------------------------------------------------------------------------------

@router.get("/cases/retention", response_class=HTMLResponse)
def retention_page(request: Request, db: DB, principal: View) -> HTMLResponse:
    return render(request, "cases/retention.html", retention.report(db), principal=principal)


@router.post("/cases/{case_id}/retention/outcome", response_model=None)
def retention_outcome(request: Request, case_id: int, db: DB, now: Now, tz: Tz, principal: Work, offer: Annotated[str, Form()] = "",
                      outcome: Annotated[str, Form()] = "", reason_code: Annotated[str, Form()] = "", product_id: Annotated[str, Form()] = "",
                      offering_id: Annotated[str, Form()] = "") -> Response:
    def num(v: str, field: str) -> int | None:
        v = v.strip()
        if v and not v.isdigit():
            raise InvalidInput(f"'{v}' is not a number", field=field)
        return int(v) if v else None

    _, err, field, status = _attempt(db, lambda: retention.record(db, case_id=case_id, offer=offer, outcome=outcome, reason_code=reason_code,
                                                                   product_id=num(product_id, "product_id"), offering_id=num(offering_id, "offering_id"),
                                                                   now=now, tz=tz, actor=principal.actor))
    if err:
        return _detail(request, db, now, principal, case_id, error=f"{field}: {err}" if field else err, status_code=status)
    return RedirectResponse(f"/cases/{case_id}", status_code=303)


# --- brand incidents -------------------------------------------------------------------------------------------------

@router.get("/cases/incidents", response_class=HTMLResponse)
def incidents_list(request: Request, db: DB, principal: View) -> HTMLResponse:
    return render(request, "cases/incidents.html", {"incidents": incidents.list_incidents(db)}, principal=principal)


def _incident_page(request: Request, db: DB, principal: Principal, incident_id: int, *, error: str | None = None, field: str | None = None,
                   status_code: int = 200) -> HTMLResponse:
    data = incidents.detail(db, incident_id=incident_id, actor=principal.actor)
    return render(request, "cases/incident_detail.html", data | {"error": error, "field": field}, principal=principal, status_code=status_code)


@router.get("/cases/incidents/{incident_id}", response_class=HTMLResponse)
def incident_page(request: Request, incident_id: int, db: DB, principal: View) -> HTMLResponse:
    return _incident_page(request, db, principal, incident_id)


def _incident_after(request: Request, db: DB, principal: Principal, incident_id: int, fn: Callable[[], Any]) -> Response:
    incidents.detail(db, incident_id=incident_id, actor=principal.actor)  # 404 first
    _, err, field, status = _attempt(db, fn)
    if err:
        return _incident_page(request, db, principal, incident_id, error=err, field=field, status_code=status)
    return RedirectResponse(f"/cases/incidents/{incident_id}", status_code=303)


@router.post("/cases/{case_id}/incident", response_model=None)
def incident_raise(request: Request, case_id: int, db: DB, now: Now, principal: Work, title: Annotated[str, Form()] = "",
                   owner: Annotated[str, Form()] = "", stakeholders: Annotated[str, Form()] = "", severity: Annotated[str, Form()] = "2") -> Response:
    def run() -> Any:
        if severity.strip() not in ("1", "2", "3"):
            raise incidents.UnableToRaiseIncident("severity is 1 (highest), 2 or 3", field="severity")
        return incidents.raise_incident(db, case_id=case_id, title=title, owner=owner, stakeholders=stakeholders, severity=int(severity),
                                        now=now, actor=principal.actor)

    inc, err, field, status = _attempt(db, run)
    if err:
        return _detail(request, db, now, principal, case_id, error=f"{field}: {err}" if field else err, status_code=status)
    return RedirectResponse(f"/cases/incidents/{inc.id}", status_code=303)


@router.post("/cases/incidents/{incident_id}/link", response_model=None)
def incident_link(request: Request, incident_id: int, db: DB, now: Now, principal: Work, case_reference: Annotated[str, Form()] = "") -> Response:
    return _incident_after(request, db, principal, incident_id, lambda: incidents.link_case(db, incident_id=incident_id, case_reference=case_reference,
                                                                                            now=now, actor=principal.actor))


@router.post("/cases/incidents/{incident_id}/update", response_model=None)
def incident_update(request: Request, incident_id: int, db: DB, now: Now, principal: Work, body: Annotated[str, Form()] = "") -> Response:
    return _incident_after(request, db, principal, incident_id, lambda: incidents.add_update(db, incident_id=incident_id, body=body, now=now,
                                                                                             actor=principal.actor))


@router.post("/cases/incidents/{incident_id}/transition", response_model=None)
def incident_transition(request: Request, incident_id: int, db: DB, now: Now, principal: Work, action: Annotated[str, Form()] = "",
                        summary: Annotated[str, Form()] = "", reason: Annotated[str, Form()] = "") -> Response:
    return _incident_after(request, db, principal, incident_id, lambda: incidents.transition(db, incident_id=incident_id, action=action, summary=summary,
                                                                                             reason=reason or None, now=now, actor=principal.actor))
