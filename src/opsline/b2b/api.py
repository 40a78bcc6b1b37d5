"""TMF623 SLA Management (read-only): each B2B contract as an SLA with its rules, and each measured violation as an
SLAViolation, under /tmf-api/slaManagement/v2 (the API is at version 2; TM Forum publishes no v4). Shapes follow the
TMF623 resources: SLA {name, description, version, validFor, state, relatedParty, rule[{id, metric, unit,
referenceValue, operator, tolerance, consequence}]}, SLAViolation {date, sla, relatedParty, violation{rule, unit,
referenceValue, operator, actualValue, tolerance, violationAverage, comment, consequence}}; operators as TMF623 writes
them (.ge, .le, .gt, .lt). Lists take `fields`, `offset`, `limit` and answer X-Total-Count / X-Result-Count."""

from __future__ import annotations

from datetime import date, datetime, time, timezone
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse
from pydantic import Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from opsline.api.tmf import Fields, Limit, Offset, RelatedParty, ResourceId, TimePeriod, TMFModel, item_response, list_response, selectable
from opsline.b2b.models import METRICS, B2BContract, B2BServiceCredit, B2BSlaRule, B2BViolation
from opsline.core.errors import InvalidInput, NotFound
from opsline.core.money import Money
from opsline.customers.models import Account
from opsline.web.deps import DB, Principal, require

router = APIRouter(tags=["TMF623 SLA Management"])
ROOT = "/tmf-api/slaManagement/v2"
SLA_BASE = f"{ROOT}/sla"
VIOLATION_BASE = f"{ROOT}/slaViolation"
View = Annotated[Principal, Depends(require("b2b.view"))]
OPERATORS = {">=": ".ge", "<=": ".le", ">": ".gt", "<": ".lt"}


class SlaRuleRef(TMFModel):
    id: str
    href: str
    description: str | None = None


class SlaRule(TMFModel):
    id: str
    href: str
    metric: str
    unit: str
    referenceValue: str
    operator: str
    tolerance: str
    consequence: str
    description: str | None = None


class SLA(TMFModel):
    id: str
    href: str
    name: str
    description: str | None = None
    version: str = "1"
    state: str
    validFor: TimePeriod
    relatedParty: list[RelatedParty]
    rule: list[SlaRule]
    type_: str = Field(default="SLA", alias="@type")


class SlaRef(TMFModel):
    id: str
    href: str
    name: str | None = None
    description: str | None = None


class Violation(TMFModel):
    rule: SlaRuleRef
    unit: str
    referenceValue: str
    operator: str
    actualValue: str
    tolerance: str
    violationAverage: str
    comment: str | None = None
    consequence: str


class SLAViolation(TMFModel):
    id: str
    href: str
    date: datetime
    period: TimePeriod = Field(description="The month measured (extension)")
    sla: SlaRef
    relatedParty: list[RelatedParty]
    violation: Violation
    type_: str = Field(default="SLAViolation", alias="@type")


def _num(v: Any) -> str:
    return format(v.normalize() if hasattr(v, "normalize") else v, "f")


def _at(d: date | None) -> datetime | None:
    return None if d is None else datetime.combine(d, time(0), tzinfo=timezone.utc)


def _consequence(r: Any) -> str:
    if r.consequence == "credit_percent":
        return f"service credit of {_num(r.credit_percent)} % of the monthly charges"
    if r.consequence == "credit_fixed":
        return f"service credit of {Money.from_minor(int(r.credit_fixed_minor or 0), r.currency)}"
    return "none"


def _party(account_id: int, name: str) -> list[RelatedParty]:
    return [RelatedParty(id=str(account_id), href=f"/tmf-api/customerManagement/v4/customer/{account_id}", name=name, role="SLAConsumer",
                         **{"@referredType": "Customer"})]


def _rule(r: Any) -> SlaRule:
    return SlaRule(id=str(r.id), href=f"{SLA_BASE}/{r.contract_id}#rule-{r.id}", metric=r.metric, unit=r.unit, referenceValue=_num(r.reference_value),
                   operator=OPERATORS.get(r.operator, r.operator), tolerance=_num(r.tolerance), consequence=_consequence(r),
                   description=r.description or METRICS.get(r.metric, ("", r.metric))[1])


def _slas(session: Session, *, contract_ids: list[int] | None = None, account_id: int | None = None, state: str | None = None,
          offset: int = 0, limit: int = 100) -> tuple[list[SLA], int]:
    q = select(B2BContract.id, B2BContract.reference, B2BContract.name, B2BContract.state, B2BContract.valid_from, B2BContract.valid_to,
               B2BContract.terms, B2BContract.account_id, B2BContract.currency, Account.name.label("account_name")).join(Account, Account.id == B2BContract.account_id)
    count = select(func.count()).select_from(B2BContract)
    for cond in ([B2BContract.id.in_(contract_ids)] if contract_ids is not None else []) + ([B2BContract.account_id == account_id] if account_id else []) \
            + ([B2BContract.state == state] if state else []):
        q, count = q.where(cond), count.where(cond)
    contracts = session.execute(q.order_by(B2BContract.id).offset(offset).limit(limit)).all()
    total = session.execute(count).scalar_one()
    rules: dict[int, list[SlaRule]] = {}
    if contracts:
        for r in session.execute(select(B2BSlaRule.id, B2BSlaRule.contract_id, B2BSlaRule.metric, B2BSlaRule.unit, B2BSlaRule.reference_value,
                                        B2BSlaRule.operator, B2BSlaRule.tolerance, B2BSlaRule.consequence, B2BSlaRule.credit_percent,
                                        B2BSlaRule.credit_fixed_minor, B2BSlaRule.description, B2BContract.currency)
                                 .join(B2BContract, B2BContract.id == B2BSlaRule.contract_id)
                                 .where(B2BSlaRule.contract_id.in_([c.id for c in contracts])).order_by(B2BSlaRule.id)).all():
            rules.setdefault(r.contract_id, []).append(_rule(r))
    return [SLA(id=str(c.id), href=f"{SLA_BASE}/{c.id}", name=f"{c.reference} {c.name}", description=c.terms, state=c.state,
                validFor=TimePeriod(startDateTime=_at(c.valid_from), endDateTime=_at(c.valid_to)), relatedParty=_party(c.account_id, c.account_name),
                rule=rules.get(c.id, [])) for c in contracts], int(total)


def _month(raw: str | None) -> date | None:
    if not raw:
        return None
    try:
        y, m = raw.split("-")
        return date(int(y), int(m), 1)
    except ValueError:
        raise InvalidInput(f"'{raw[:20]}' is not a month (YYYY-MM)", field="period") from None


def _violations(session: Session, *, violation_id: int | None = None, contract_id: int | None = None, account_id: int | None = None,
                period: date | None = None, offset: int = 0, limit: int = 100) -> tuple[list[SLAViolation], int]:
    V, R, C = B2BViolation, B2BSlaRule, B2BContract
    q = (select(V.id, V.rule_id, V.contract_id, V.account_id, V.period, V.metric, V.actual_value, V.reference_value, V.sample_size, V.cause, V.created_at,
                R.unit, R.operator, R.tolerance, R.consequence, R.credit_percent, R.credit_fixed_minor, R.description, C.reference, C.name, C.currency,
                Account.name.label("account_name"), B2BServiceCredit.state.label("credit_state"), B2BServiceCredit.amount_minor.label("credit_minor"))
         .join(R, R.id == V.rule_id).join(C, C.id == V.contract_id).join(Account, Account.id == V.account_id)
         .outerjoin(B2BServiceCredit, B2BServiceCredit.violation_id == V.id))
    count = select(func.count()).select_from(V)
    conds = [c for c, v in ((V.id == violation_id, violation_id), (V.contract_id == contract_id, contract_id), (V.account_id == account_id, account_id),
                            (V.period == period, period)) if v]
    for cond in conds:
        q, count = q.where(cond), count.where(cond)
    rows = session.execute(q.order_by(V.period.desc(), V.id).offset(offset).limit(limit)).all()
    total = session.execute(count).scalar_one()
    out = []
    for r in rows:
        end = date(r.period.year + (r.period.month == 12), r.period.month % 12 + 1, 1)
        comment = "; ".join(x for x in (
            f"measured on {r.sample_size} item(s) in {r.period:%Y-%m}", f"cause: {r.cause}" if r.cause else "",
            f"service credit {r.credit_state} ({Money.from_minor(int(r.credit_minor), r.currency)})" if r.credit_state else "") if x)
        out.append(SLAViolation(
            id=str(r.id), href=f"{VIOLATION_BASE}/{r.id}", date=r.created_at, period=TimePeriod(startDateTime=_at(r.period), endDateTime=_at(end)),
            sla=SlaRef(id=str(r.contract_id), href=f"{SLA_BASE}/{r.contract_id}", name=f"{r.reference} {r.name}"),
            relatedParty=_party(r.account_id, r.account_name),
            violation=Violation(rule=SlaRuleRef(id=str(r.rule_id), href=f"{SLA_BASE}/{r.contract_id}#rule-{r.rule_id}",
                                                description=r.description or METRICS.get(r.metric, ("", r.metric))[1]),
                                unit=r.unit, referenceValue=_num(r.reference_value), operator=OPERATORS.get(r.operator, r.operator),
                                actualValue=_num(r.actual_value), tolerance=_num(r.tolerance), violationAverage=_num(r.actual_value), comment=comment,
                                consequence=_consequence(r))))
    return out, int(total)


@router.get(SLA_BASE, response_model=list[selectable(SLA)], response_model_by_alias=True, response_model_exclude_none=True)
def list_slas(db: DB, principal: View, fields: Fields = None, offset: Offset = 0, limit: Limit = 100,
              relatedPartyId: Annotated[int | None, Query(alias="relatedParty.id", ge=1, le=2**53)] = None,
              state: Annotated[str | None, Query(pattern="^(active|ended)$")] = None) -> JSONResponse:
    """B2B contracts as SLAs with their rules, filtered by the customer (relatedParty.id) and state."""
    items, total = _slas(db, account_id=relatedPartyId, state=state, offset=offset, limit=limit)
    return list_response(items, fields=fields, total=total)


@router.get(SLA_BASE + "/{id}", response_model=selectable(SLA), response_model_by_alias=True, response_model_exclude_none=True)
def get_sla(id: ResourceId, db: DB, principal: View, fields: Fields = None) -> JSONResponse:
    items, _ = _slas(db, contract_ids=[id], limit=1)
    if not items:
        raise NotFound(f"SLA {id} not found", field="id")
    return item_response(items[0], fields=fields)


@router.get(VIOLATION_BASE, response_model=list[selectable(SLAViolation)], response_model_by_alias=True, response_model_exclude_none=True)
def list_violations(db: DB, principal: View, fields: Fields = None, offset: Offset = 0, limit: Limit = 100,
                    slaId: Annotated[int | None, Query(alias="sla.id", ge=1, le=2**53)] = None,
                    relatedPartyId: Annotated[int | None, Query(alias="relatedParty.id", ge=1, le=2**53)] = None,
                    period: Annotated[str | None, Query(pattern=r"^[1-9][0-9]{3}-(0[1-9]|1[0-2])$", description="The month measured, YYYY-MM")] = None) -> JSONResponse:
    """Measured violations, newest month first, filtered by SLA (sla.id), customer (relatedParty.id) and month."""
    items, total = _violations(db, contract_id=slaId, account_id=relatedPartyId, period=_month(period), offset=offset, limit=limit)
    return list_response(items, fields=fields, total=total)


@router.get(VIOLATION_BASE + "/{id}", response_model=selectable(SLAViolation), response_model_by_alias=True, response_model_exclude_none=True)
def get_violation(id: ResourceId, db: DB, principal: View, fields: Fields = None) -> JSONResponse:
    items, _ = _violations(db, violation_id=id, limit=1)
    if not items:
        raise NotFound(f"SLA violation {id} not found", field="id")
    return item_response(items[0], fields=fields)
