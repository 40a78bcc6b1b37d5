"""Debtors report pages and their CSV/xlsx exports: aged debtors, Top 10 / Top 60, collections effectiveness, suspense
ageing, each with the accounts behind every number. Thin: parse, call one query, render or export. Reading and
exporting both need `debtors.view`."""

from __future__ import annotations

from typing import Annotated, Any, Iterable, Sequence

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from opsline.core.errors import InvalidInput
from opsline.core.exports import download_headers, export_table
from opsline.core.localtime import local_date
from opsline.debtors.reports import queries
from opsline.debtors.reports.queries import BUCKET_LABELS, BUCKETS, major
from opsline.web.deps import DB, Now, Principal, Tz, require
from opsline.web.templating import render

PERMISSION = "debtors.view"
router = APIRouter(include_in_schema=False)
View = Annotated[Principal, Depends(require(PERMISSION))]
BASE = "/debtors/reports"


def _page(page: int) -> tuple[int, int]:
    if page < 1:
        raise InvalidInput("page must be 1 or more", field="page")
    return queries.PAGE, (page - 1) * queries.PAGE


def _pager(count: int, page: int) -> dict[str, Any]:
    pages = max(1, -(-count // queries.PAGE))
    return {"page": page, "pages": pages, "count": count}


def _download(fmt: str, *, name: str, header: Sequence[str], rows: Iterable[Sequence[Any]], money_cols: Iterable[int] = ()) -> Response:
    filename, media, body = export_table(fmt, name=name, header=header, rows=rows, money_cols=money_cols)
    return Response(body, media_type=media, headers=download_headers(filename))


def _money_cols(start: int, n: int) -> range:
    return range(start, start + n)


def _bucket_money(r: dict[str, Any]) -> list[Any]:
    return [major(r[b], r["currency"]) for b in (*BUCKETS, "total")]


BUCKET_HEADER = [BUCKET_LABELS[b] for b in BUCKETS] + ["Total"]


# --- index ------------------------------------------------------------------------------------------------------------

@router.get(BASE, response_class=HTMLResponse)
def index(request: Request, db: DB, now: Now, tz: Tz, principal: View) -> HTMLResponse:
    aged = queries.aged_debtors(db, now=now, tz=tz)
    return render(request, "debtors/reports/index.html", {"aged": aged, "tab": "index"}, principal=principal)


# --- aged debtors -----------------------------------------------------------------------------------------------------

@router.get(f"{BASE}/aged", response_class=HTMLResponse)
def aged(request: Request, db: DB, now: Now, tz: Tz, principal: View) -> HTMLResponse:
    return render(request, "debtors/reports/aged.html", {"aged": queries.aged_debtors(db, now=now, tz=tz), "tab": "aged"}, principal=principal)


@router.get(f"{BASE}/aged/export")
def aged_export(db: DB, now: Now, tz: Tz, principal: View, format: str = "xlsx") -> Response:
    data = queries.aged_debtors(db, now=now, tz=tz)
    rows = [[r["segment_name"], r["currency"], *_bucket_money(r), r["accounts"]] for r in data["rows"]]
    rows += [["All segments", t["currency"], *_bucket_money(t), t["accounts"]] for t in data["totals"]]
    rows += [["Accounts in credit", c["currency"], None, None, None, None, None, None, major(c["amount_minor"], c["currency"]), c["accounts"]]
             for c in data["credit"]]
    return _download(format, name=f"aged-debtors-{data['as_of']}", header=["Segment", "Currency", *BUCKET_HEADER, "Accounts"], rows=rows,
                     money_cols=_money_cols(2, len(BUCKETS) + 1))


@router.get(f"{BASE}/aged/accounts", response_class=HTMLResponse)
def aged_accounts(request: Request, db: DB, now: Now, tz: Tz, principal: View, segment: str = "", bucket: str = "", currency: str = "",
                  page: int = 1) -> HTMLResponse:
    limit, offset = _page(page)
    data = queries.aged_accounts(db, now=now, tz=tz, segment=segment, bucket=bucket, currency=currency, limit=limit, offset=offset)
    return render(request, "debtors/reports/aged_accounts.html", {"data": data, "segment": segment, "bucket": bucket, "currency": currency,
                                                                  "bucket_label": BUCKET_LABELS.get(bucket, "any age"), "pager": _pager(data["count"], page),
                                                                  "buckets": [{"key": b, "label": BUCKET_LABELS[b]} for b in BUCKETS], "tab": "aged"},
                  principal=principal)


@router.get(f"{BASE}/aged/accounts/export")
def aged_accounts_export(db: DB, now: Now, tz: Tz, principal: View, segment: str = "", bucket: str = "", currency: str = "",
                         format: str = "xlsx") -> Response:
    data = queries.aged_accounts(db, now=now, tz=tz, segment=segment, bucket=bucket, currency=currency, limit=None)
    rows = ([r["account_number"], r["name"], r["segment_code"], r["status"], r["currency"], *_bucket_money(r), r["oldest_due"]] for r in data["rows"])
    return _download(format, name=f"aged-debtors-accounts-{segment or 'all'}-{bucket or 'all'}",
                     header=["Account", "Name", "Segment", "Status", "Currency", *BUCKET_HEADER, "Oldest due"], rows=rows,
                     money_cols=_money_cols(5, len(BUCKETS) + 1))


# --- Top 10 / Top 60 --------------------------------------------------------------------------------------------------

@router.get(f"{BASE}/top", response_class=HTMLResponse)
def top(request: Request, db: DB, now: Now, tz: Tz, principal: View, n: int = 10, segment: str = "") -> HTMLResponse:
    data = queries.top_debtors(db, now=now, tz=tz, n=n, segment=segment)
    return render(request, "debtors/reports/top.html", {"data": data, "sizes": queries.TOP_SIZES, "tab": f"top{n}"}, principal=principal)


TOP_HEADER = ["Rank", "Account", "Name", "Segment", "Value tier", "Status", "Currency", "Balance", *[BUCKET_LABELS[b] for b in BUCKETS],
              "Oldest due", "Days past due", "Last payment on", "Last payment", "In dispute", "Owner", "Last action", "Last action at", "Next step"]


@router.get(f"{BASE}/top/export")
def top_export(db: DB, now: Now, tz: Tz, principal: View, n: int = 10, segment: str = "", format: str = "xlsx") -> Response:
    data = queries.top_debtors(db, now=now, tz=tz, n=n, segment=segment)

    def row(r: dict[str, Any]) -> list[Any]:
        cur = r["currency"]
        act = r["last_action"] or {}
        return [r["rank"], r["account_number"], r["name"], r["segment_code"], r["value_tier_code"], r["status"], cur, major(r["total"], cur),
                *[major(r[b], cur) for b in BUCKETS], r["oldest_due"], r["oldest_days"], r["last_payment_on"],
                None if r["last_payment_minor"] is None else major(r["last_payment_minor"], cur), major(r["dispute_minor"], cur), r["owner"],
                f"{act['what']} by {act['actor']}" if act else None, act.get("at"), r["next_step"]]

    money = [7, *range(8, 8 + len(BUCKETS)), 8 + len(BUCKETS) + 3, 8 + len(BUCKETS) + 4]
    return _download(format, name=f"top-{n}-debtors-{data['as_of']}", header=TOP_HEADER, rows=[row(r) for r in data["rows"]], money_cols=money)


# --- collections effectiveness ----------------------------------------------------------------------------------------

@router.get(f"{BASE}/collections", response_class=HTMLResponse)
def collections(request: Request, db: DB, now: Now, tz: Tz, principal: View, months: int = 12) -> HTMLResponse:
    data = queries.collections_effectiveness(db, now=now, tz=tz, months=months)
    return render(request, "debtors/reports/collections.html", {"data": data, "months": months, "tab": "collections"}, principal=principal)


@router.get(f"{BASE}/collections/export")
def collections_export(db: DB, now: Now, tz: Tz, principal: View, months: int = 12, format: str = "xlsx") -> Response:
    data = queries.collections_effectiveness(db, now=now, tz=tz, months=months)
    rows = [[m["month"], s["currency"], major(m["billed_minor"], s["currency"]), major(m["collected_minor"], s["currency"]),
             major(m["credited_minor"], s["currency"]), m["rate_pct"], major(m["closing_minor"], s["currency"]), m["dso_days"], m["days"]]
            for s in data["series"] for m in s["months"]]
    return _download(format, name=f"collections-effectiveness-{data['months'][-1]}",
                     header=["Month", "Currency", "Billed", "Collected", "Credited", "Collected % of billed", "Closing debtors", "DSO (days)", "Days"],
                     rows=rows, money_cols=(2, 3, 4, 6))


@router.get(f"{BASE}/collections/accounts", response_class=HTMLResponse)
def collections_accounts(request: Request, db: DB, now: Now, tz: Tz, principal: View, month: str, measure: str = "billed", currency: str = "",
                         page: int = 1) -> HTMLResponse:
    limit, offset = _page(page)
    data = queries.collections_accounts(db, now=now, tz=tz, month=month, measure=measure, currency=currency, limit=limit, offset=offset)
    return render(request, "debtors/reports/collections_accounts.html", {"data": data, "currency": currency, "pager": _pager(data["count"], page),
                                                                         "measures": queries.MEASURES, "tab": "collections"}, principal=principal)


@router.get(f"{BASE}/collections/accounts/export")
def collections_accounts_export(db: DB, now: Now, tz: Tz, principal: View, month: str, measure: str = "billed", currency: str = "",
                                format: str = "xlsx") -> Response:
    data = queries.collections_accounts(db, now=now, tz=tz, month=month, measure=measure, currency=currency, limit=None)
    rows = ([r["account_number"], r["name"], r["segment_code"], r["currency"], major(r["amount_minor"], r["currency"])] for r in data["rows"])
    return _download(format, name=f"{measure}-{month}-accounts", header=["Account", "Name", "Segment", "Currency", measure.capitalize()], rows=rows,
                     money_cols=(4,))


# --- suspense ageing --------------------------------------------------------------------------------------------------

SUSPENSE_EXPORT_LIMIT = 100_000


@router.get(f"{BASE}/suspense", response_class=HTMLResponse)
def suspense(request: Request, db: DB, now: Now, tz: Tz, principal: View) -> HTMLResponse:
    return render(request, "debtors/reports/suspense.html", {"data": queries.suspense_ageing(db, now=now, tz=tz), "tab": "suspense"},
                  principal=principal)


@router.get(f"{BASE}/suspense/export")
def suspense_export(db: DB, now: Now, tz: Tz, principal: View, format: str = "xlsx") -> Response:
    items = queries.suspense_items(db, now=now, limit=SUSPENSE_EXPORT_LIMIT)
    rows = ([f"S{i['id']}", i["payment_id"], i["received_on"], i["payer_name"], i["payer_account"], i["reference"], i["owner"], i["age_days"],
             major(i["amount_minor"], i["currency"]), i["currency"], i["opened_reason"]] for i in items)
    return _download(format, name=f"suspense-{local_date(now, tz)}", header=["Item", "Payment", "Received", "Payer", "Payer account", "Reference", "Owner",
                                                                     "Age (days)", "Amount", "Currency", "Why in suspense"], rows=rows, money_cols=(8,))

