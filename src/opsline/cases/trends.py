"""Trends for management: contact reasons (case categories) and channels per week, repeat contacts, top drivers by
product and region, FCR and SLA by queue and agent, sentiment recovered; the drill-down list and the xlsx workbook.
Every figure is one grouped query over the window (no row-by-row work)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from sqlalchemy import Integer, and_, case as sa_case, cast, func, literal, select
from sqlalchemy.orm import Session

from opsline.cases.models import CaseCategory, Queue, SupportCase
from opsline.cases.service import common as cm
from opsline.catalog.models import ProductOffering
from opsline.core.errors import InvalidInput
from opsline.core.events import Actor
from opsline.core.exports import Sheet
from opsline.customers.models import Site
from opsline.inventory.models import Product
from opsline.users.models import User

PALETTE = ["#2f6fde", "#e07b39", "#3aa17e", "#c94c4c", "#8e6cc9", "#d4a72c", "#4bb3c7", "#7a7a7a", "#b05d9e", "#5c8a3a", "#a0522d"]
MAX_WEEKS = 104


def window(*, now: datetime, weeks: int) -> tuple[datetime, list[date]]:
    """The first instant of the window (a Monday, 00:00 UTC) and the Mondays of its `weeks` weeks, the last one holding `now`."""
    if not 1 <= weeks <= MAX_WEEKS:
        raise InvalidInput(f"weeks must be between 1 and {MAX_WEEKS}", field="weeks")
    this_monday = now.astimezone(timezone.utc).date() - timedelta(days=now.astimezone(timezone.utc).weekday())
    first = this_monday - timedelta(weeks=weeks - 1)
    return datetime.combine(first, time(0), tzinfo=timezone.utc), [first + timedelta(weeks=k) for k in range(weeks)]


def _week(session: Session, col: Any, start: datetime) -> Any:
    """SQL: the 0-based week of `col` counted from `start` (portable: SQLite julianday, PostgreSQL epoch)."""
    if session.get_bind().dialect.name == "sqlite":
        return cast((func.julianday(col) - func.julianday(literal(start.replace(tzinfo=None).isoformat(sep=" ")))) / 7, Integer)
    return cast(func.floor(func.extract("epoch", col - literal(start, type_=SupportCase.__table__.c.opened_at.type)) / 604800), Integer)


def _rate(k: int, n: int) -> float | None:
    return round(k / n, 3) if n else None


def report(session: Session, *, now: datetime, weeks: int = 12) -> dict[str, Any]:
    """Everything on the trends page for the `weeks` weeks ending this week. Raises InvalidInput (weeks out of range)."""
    start, mondays = window(now=now, weeks=weeks)
    in_window = and_(SupportCase.opened_at >= start, SupportCase.opened_at <= now)
    wk = _week(session, SupportCase.opened_at, start)
    names = dict(session.execute(select(CaseCategory.code, CaseCategory.name)).all())

    by_cat: dict[str, list[int]] = {}
    for cat, w, n in session.execute(select(SupportCase.category_code, wk, func.count(SupportCase.id)).where(in_window)
                                     .group_by(SupportCase.category_code, wk)).all():
        if w is not None and 0 <= int(w) < weeks:
            by_cat.setdefault(cat, [0] * weeks)[int(w)] += int(n)
    by_channel: dict[str, list[int]] = {}
    for ch, w, n in session.execute(select(SupportCase.channel, wk, func.count(SupportCase.id)).where(in_window).group_by(SupportCase.channel, wk)).all():
        if w is not None and 0 <= int(w) < weeks:
            by_channel.setdefault(ch, [0] * weeks)[int(w)] += int(n)
    categories = sorted(({"code": c, "name": names.get(c, c), "weeks": v, "total": sum(v)} for c, v in by_cat.items()), key=lambda r: -r["total"])
    totals = [sum(r["weeks"][k] for r in categories) for k in range(weeks)]

    # repeat contacts: accounts with more than one case opened in the window
    per_acc = select(SupportCase.account_id, func.count(SupportCase.id).label("n")).where(in_window, SupportCase.account_id.is_not(None)) \
        .group_by(SupportCase.account_id).subquery()
    accounts, repeaters, repeat_cases = session.execute(select(func.count(), func.sum(sa_case((per_acc.c.n > 1, 1), else_=0)),
                                                               func.sum(sa_case((per_acc.c.n > 1, per_acc.c.n), else_=0)))).one()
    top_repeat = [{"account_id": int(a), "cases": int(n)} for a, n in session.execute(
        select(per_acc.c.account_id, per_acc.c.n).where(per_acc.c.n > 1).order_by(per_acc.c.n.desc(), per_acc.c.account_id).limit(10)).all()]

    # drivers: the product (the account's first live product) and the region (the account's first site's province)
    first_product = select(Product.account_id, func.min(Product.id).label("pid")).where(Product.state.in_(("active", "suspended"))) \
        .group_by(Product.account_id).subquery()
    by_product = [{"key": k or "(no product)", "cases": int(n)} for k, n in session.execute(
        select(ProductOffering.name, func.count(SupportCase.id)).select_from(SupportCase)
        .outerjoin(first_product, first_product.c.account_id == SupportCase.account_id).outerjoin(Product, Product.id == first_product.c.pid)
        .outerjoin(ProductOffering, ProductOffering.id == Product.offering_id).where(in_window)
        .group_by(ProductOffering.name).order_by(func.count(SupportCase.id).desc()).limit(10)).all()]
    first_site = select(Site.account_id, func.min(Site.id).label("sid")).group_by(Site.account_id).subquery()
    by_region = [{"key": k or "(no address)", "cases": int(n)} for k, n in session.execute(
        select(Site.province, func.count(SupportCase.id)).select_from(SupportCase)
        .outerjoin(first_site, first_site.c.account_id == SupportCase.account_id).outerjoin(Site, Site.id == first_site.c.sid)
        .where(in_window).group_by(Site.province).order_by(func.count(SupportCase.id).desc()).limit(10)).all()]

    # FCR (decided cases) and SLA (cases with a clock: breached or not) by queue and by agent
    fcr_yes = func.sum(sa_case((SupportCase.first_contact_resolution.is_(True), 1), else_=0))
    fcr_decided = func.sum(sa_case((SupportCase.first_contact_resolution.is_not(None), 1), else_=0))
    breached = func.sum(sa_case((SupportCase.sla_breached_at.is_not(None), 1), else_=0))
    with_sla = func.sum(sa_case((SupportCase.sla_state.is_not(None), 1), else_=0))
    recovered = func.sum(sa_case((SupportCase.sentiment_recovered.is_(True), 1), else_=0))
    judged = func.sum(sa_case((SupportCase.sentiment_recovered.is_not(None), 1), else_=0))

    def perf(key: Any, join: Any = None) -> list[dict[str, Any]]:
        q = select(key, func.count(SupportCase.id), fcr_yes, fcr_decided, breached, with_sla).select_from(SupportCase)
        if join is not None:
            q = q.outerjoin(*join)
        rows = []
        for k, n, fy, fd, b, ws in session.execute(q.where(in_window).group_by(key)).all():
            rows.append({"key": k or "(unassigned)", "cases": int(n), "fcr": int(fy or 0), "fcr_decided": int(fd or 0), "fcr_rate": _rate(int(fy or 0), int(fd or 0)),
                         "breached": int(b or 0), "with_sla": int(ws or 0), "sla_met_rate": _rate(int(ws or 0) - int(b or 0), int(ws or 0))})
        return sorted(rows, key=lambda r: (-r["cases"], r["key"]))

    by_queue = perf(Queue.name, (Queue, Queue.id == SupportCase.queue_id))
    by_agent = perf(User.username, (User, User.id == SupportCase.assignee_user_id))
    sentiment = [0] * weeks
    judged_w = [0] * weeks
    for w, r, j in session.execute(select(wk, recovered, judged).where(in_window).group_by(wk)).all():
        if w is not None and 0 <= int(w) < weeks:
            sentiment[int(w)], judged_w[int(w)] = int(r or 0), int(j or 0)
    labels = [m.isoformat() for m in mondays]
    chart = {"type": "bar", "data": {"labels": labels, "datasets": [
        {"label": r["name"], "data": r["weeks"], "backgroundColor": PALETTE[k % len(PALETTE)], "stack": "cases"} for k, r in enumerate(categories)]},
        "options": {"scales": {"x": {"stacked": True}, "y": {"stacked": True, "beginAtZero": True}}, "plugins": {"legend": {"position": "bottom"}}}}
    sent_chart = {"type": "line", "data": {"labels": labels, "datasets": [
        {"label": "Recovered", "data": sentiment, "borderColor": "#3aa17e"}, {"label": "Judged", "data": judged_w, "borderColor": "#7a7a7a"}]},
        "options": {"scales": {"y": {"beginAtZero": True}}}}
    return {"weeks": weeks, "start": start, "mondays": labels, "categories": categories, "totals": totals,
            "channels": sorted(({"channel": c, "weeks": v, "total": sum(v)} for c, v in by_channel.items()), key=lambda r: -r["total"]),
            "repeat": {"accounts": int(accounts or 0), "repeaters": int(repeaters or 0), "repeat_cases": int(repeat_cases or 0),
                       "share": _rate(int(repeaters or 0), int(accounts or 0)), "top": top_repeat},
            "by_product": by_product, "by_region": by_region, "by_queue": by_queue, "by_agent": by_agent,
            "sentiment": {"recovered": sentiment, "judged": judged_w, "rate": _rate(sum(sentiment), sum(judged_w))},
            "chart": chart, "sentiment_chart": sent_chart}


def drill(session: Session, *, now: datetime, weeks: int, week: int | None = None, category: str | None = None, channel: str | None = None,
          limit: int = 200) -> dict[str, Any]:
    """The cases behind one figure of the report (a week, a category, a channel, or their crossing).
    Raises InvalidInput (week outside the window)."""
    start, mondays = window(now=now, weeks=weeks)
    lo, hi = start, now
    if week is not None:
        if not 0 <= week < weeks:
            raise InvalidInput(f"week must be between 0 and {weeks - 1}", field="week")
        lo = start + timedelta(weeks=week)
        hi = min(now, lo + timedelta(weeks=1) - timedelta(microseconds=1))
    q = select(SupportCase.id, SupportCase.reference, SupportCase.subject, SupportCase.category_code, SupportCase.channel, SupportCase.state,
               SupportCase.opened_at, SupportCase.account_id).where(SupportCase.opened_at >= lo, SupportCase.opened_at <= hi)
    if category:
        q = q.where(SupportCase.category_code == category)
    if channel:
        q = q.where(SupportCase.channel == channel)
    rows = [dict(r._mapping) for r in session.execute(q.order_by(SupportCase.opened_at.desc()).limit(limit)).all()]
    return {"rows": rows, "from": lo, "to": hi, "week": week, "category": category, "channel": channel,
            "week_label": mondays[week].isoformat() if week is not None else None, "limit": limit}


def sheets(data: dict[str, Any]) -> list[Sheet]:
    """The report as workbook sheets (written by core.exports)."""
    wk = data["mondays"]
    return [
        Sheet("Reasons by week", ["Category", *wk, "Total"], [[r["name"], *r["weeks"], r["total"]] for r in data["categories"]] + [["All", *data["totals"], sum(data["totals"])]]),
        Sheet("Channels by week", ["Channel", *wk, "Total"], [[r["channel"], *r["weeks"], r["total"]] for r in data["channels"]]),
        Sheet("Repeat contacts", ["Account id", "Cases"], [[r["account_id"], r["cases"]] for r in data["repeat"]["top"]]),
        Sheet("Drivers by product", ["Product", "Cases"], [[r["key"], r["cases"]] for r in data["by_product"]]),
        Sheet("Drivers by region", ["Province", "Cases"], [[r["key"], r["cases"]] for r in data["by_region"]]),
        Sheet("FCR and SLA by queue", ["Queue", "Cases", "FCR", "FCR decided", "FCR rate", "SLA breached", "With SLA", "SLA met rate"],
              [[r["key"], r["cases"], r["fcr"], r["fcr_decided"], r["fcr_rate"], r["breached"], r["with_sla"], r["sla_met_rate"]] for r in data["by_queue"]]),
        Sheet("FCR and SLA by agent", ["Agent", "Cases", "FCR", "FCR decided", "FCR rate", "SLA breached", "With SLA", "SLA met rate"],
              [[r["key"], r["cases"], r["fcr"], r["fcr_decided"], r["fcr_rate"], r["breached"], r["with_sla"], r["sla_met_rate"]] for r in data["by_agent"]]),
        Sheet("Sentiment recovered", ["Week", "Recovered", "Judged"], [[w, r, j] for w, r, j in zip(wk, data["sentiment"]["recovered"], data["sentiment"]["judged"])]),
    ]


def set_sentiment(session: Session, *, case_id: int, recovered: bool | None, now: datetime, actor: Actor) -> None:
    """Record the case outcome 'sentiment recovered' (True/False, None to clear), audited on the case. Raises CaseNotFound."""
    c = cm.get_case(session, case_id=case_id, for_update=True)
    before = c.sentiment_recovered
    c.sentiment_recovered = recovered
    c.updated_at = now
    cm.audit(session, c, now=now, actor=actor, action="sentiment_recovered", after={"before": before, "after": recovered})
