"""Demo: twelve months of month-end ageing from the prior billing system (generated deterministically, sized to what the
demo bills per segment), imported through the history import as an operator would, a forward-looking adjustment, and
the provision of the last two month ends, so the provision page shows last month's figures and their movement."""

from __future__ import annotations

import csv
import io
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import numpy as np
from sqlalchemy import text

from opsline.billing.periods import add_months
from opsline.config import DEFAULT_CURRENCY, get_settings
from opsline.core.events import Actor
from opsline.core.localtime import zone
from opsline.core.money import Money
from opsline.db.session import make_sessionmaker
from opsline.debtors import provision
from opsline.debtors.provision_models import BUCKETS

HISTORY_MONTHS = 12
SEED = 20261130
MANAGER = Actor(name="debtorsmgr", roles=frozenset({"debtors_manager"}))
# Monthly roll rates current→1-30 … 91-120→120+, then of 120+: written off a month, still 120+ a month later.
PROFILES = {
    "consumer": ((0.17, 0.46, 0.63, 0.74, 0.82), 0.11, 0.81),
    "soho": ((0.14, 0.42, 0.58, 0.70, 0.78), 0.10, 0.82),
    "sme": ((0.12, 0.38, 0.55, 0.66, 0.76), 0.09, 0.83),
    "enterprise": ((0.06, 0.28, 0.45, 0.55, 0.66), 0.07, 0.86),
    "public": ((0.09, 0.35, 0.48, 0.58, 0.66), 0.05, 0.90),
    "wholesale": ((0.05, 0.24, 0.40, 0.50, 0.60), 0.06, 0.86),
}
DEFAULT_PROFILE = PROFILES["sme"]


def history_rows(*, billing_minor: dict[str, int], first: date, months: int = HISTORY_MONTHS, currency: str = DEFAULT_CURRENCY,
                 seed: int = SEED) -> list[dict[str, Any]]:
    """Month-end ageing per segment and bucket for `months` months from `first`, as a prior billing system would report
    it: balance, what of it rolled one bucket older by the next month end (120+: was written off) and, for 120+, what
    stayed. Starts from the steady state of each segment's roll rates on its monthly billing; the rates wobble a little
    month by month (same seed, same file). Amounts in minor units."""
    rng = np.random.default_rng(seed)
    out: list[dict[str, Any]] = []
    for seg in sorted(billing_minor):
        rolls, w, s = PROFILES.get(seg, DEFAULT_PROFILE)
        bill = billing_minor[seg]
        bal = [Decimal(bill)]
        for r in rolls:
            bal.append(bal[-1] * Decimal(str(r)))
        bal[-1] = bal[-2] * Decimal(str(rolls[-1])) / Decimal(str(1 - s))
        cur = [int(b.quantize(Decimal(1), rounding=ROUND_HALF_UP)) for b in bal]
        growth = 1.0
        written = 0  # written off in the month before (the first month has no month before in the file)
        for k in range(months):
            m = add_months(first, k)
            wob = 1 + rng.normal(0, 0.08, len(BUCKETS) + 1)
            rate = [min(0.95, max(0.0, rolls[i] * wob[i])) for i in range(len(rolls))]
            wr, st = min(0.5, max(0.0, w * wob[5])), min(0.95, max(0.0, s * wob[6]))
            rolled = [int(cur[i] * rate[i]) for i in range(len(rolls))] + [int(cur[5] * wr)]
            stayed = min(cur[5] - rolled[5], int(cur[5] * st))
            for i, b in enumerate(BUCKETS):
                out.append({"month": m, "segment": seg, "bucket": b, "balance": cur[i], "rolled": rolled[i], "stayed": stayed if b == BUCKETS[-1] else None,
                            "currency": currency})
            if k:
                out.append({"month": m, "segment": seg, "bucket": "written_off", "balance": written, "rolled": None, "stayed": None, "currency": currency})
            written = rolled[5]
            growth *= 1 + rng.normal(0.004, 0.01)
            cur = [int(bill * growth * (1 + rng.normal(0, 0.03)))] + rolled[:4] + [rolled[4] + stayed]
    return out


def history_csv(rows: list[dict[str, Any]]) -> bytes:
    """The rows as the CSV a finance team would upload (amounts in major units)."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["month", "segment", "bucket", "balance", "rolled", "stayed", "currency"])
    for r in rows:
        cur = r["currency"]

        def amt(v: int | None) -> str:
            return "" if v is None else format(Money.from_minor(v, cur).amount, "f")

        w.writerow([r["month"].strftime("%Y-%m"), r["segment"], r["bucket"], amt(r["balance"]), amt(r["rolled"]), amt(r["stayed"]), cur])
    return buf.getvalue().encode()


def run(ctx: Any) -> None:
    tz = zone(get_settings().timezone)
    factory = make_sessionmaker(ctx.engine)
    with factory.begin() as s:
        ledger = provision.ledger_months(s, now=ctx.now, tz=tz)
        if not ledger:
            return
        first = ledger[0]
        # the prior system's scale: what each segment owes not yet due at the ledger's latest month end (a month's
        # billing less what debit orders collect before the month ends)
        provision.ensure_snapshots(s, months=ledger, now=ctx.now, tz=tz)
        rows = s.execute(text("SELECT segment_code, SUM(balance_minor) AS bal FROM provision_ageing WHERE source = 'ledger' AND bucket = 'current' "
                              "AND month_end = :me GROUP BY segment_code"),
                         {"me": provision.last_day(ledger[-1]) if s.get_bind().dialect.name == "postgresql" else provision.last_day(ledger[-1]).isoformat()}).all()
        billing_minor = {r.segment_code: int(r.bal) for r in rows if r.bal}
    if not billing_minor:
        return
    task = ctx.progress.add_task("bad-debt provision", total=4)
    data = history_csv(history_rows(billing_minor=billing_minor, first=add_months(first, -HISTORY_MONTHS)))
    with factory.begin() as s:
        res = provision.import_history(s, data=data, filename="prior-system-ageing.csv", now=ctx.now, tz=tz, actor=MANAGER,
                                       default_currency=DEFAULT_CURRENCY)
    ctx.counts["provision_history_months"] = res["months"]
    ctx.progress.advance(task)
    last = provision.last_ended_month(now=ctx.now, tz=tz)
    with factory.begin() as s:
        provision.set_adjustment(s, month=add_months(last, -1), segment_code="", pct=Decimal("5"), now=ctx.now, tz=tz, actor=MANAGER,
                                 reason="Forward-looking: the repo rate stays high and household debt service costs rise (SARB outlook)")
        provision.set_adjustment(s, month=last, segment_code="consumer", pct=Decimal("8"), now=ctx.now, tz=tz, actor=MANAGER,
                                 reason="Consumer arrears rising after the fuel price increase; credit bureau outlook for retail is negative")
    ctx.progress.advance(task)
    for m in (add_months(last, -1), last):
        with factory.begin() as s:
            try:
                rep = provision.run_provision(s, month=m, now=ctx.now, tz=tz, actor=MANAGER)
            except provision.UnableToProvide:
                continue
        ctx.counts[f"provision_{m.strftime('%Y_%m')}_minor"] = sum(t["provision_minor"] for t in rep["totals"].values())
        ctx.progress.advance(task)
