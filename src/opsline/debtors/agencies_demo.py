"""Demo: debt handed over to both collection agencies and recovery files imported, so the placements desk and the
"Hand-over recoveries" report have figures. Accounts at the discontinuance / final-account stage go to MBD five weeks
ago (a small demo has none: MBD then gets half of the written-off accounts); written-off debt goes to CollectCo today
(when the demo has no posted write-off yet, a handful of chronic non-payers are written off first through the
write-off service: a clerk proposes, a manager approves). Each agency
then sends a recovery file in its own layout (CollectCo CSV, MBD xlsx): some accounts pay in part, a few in full.
Set-based throughout (a few statements whatever the demo size; the recovery files are as long as the placements)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import text

from opsline.billing.sql import dialect_of
from opsline.config import get_settings
from opsline.core.events import Actor
from opsline.core.exports import export_table
from opsline.core.localtime import local_date, zone
from opsline.db.session import make_sessionmaker
from opsline.debtors import agencies, agencies_recoveries, prescription, writeoffs

CLERK = Actor(name="debtors", roles=frozenset({"debtors_clerk"}))
MANAGER = Actor(name="debtorsmgr", roles=frozenset({"debtors_manager"}))
WRITE_OFFS_WHEN_NONE = 8
MBD_WEEKS_AGO = 5


def run(ctx: Any) -> None:
    factory = make_sessionmaker(ctx.engine)
    tz = zone(get_settings().timezone)
    today = local_date(ctx.now, tz)
    task = ctx.progress.add_task("debt hand-over", total=4)
    with factory.begin() as s:
        agencies.ensure_terms(s, now=ctx.now)
        posted = int(s.execute(text("SELECT COUNT(*) FROM write_off WHERE state = 'posted'")).scalar_one())
    if posted == 0:
        _write_off_chronic_non_payers(factory, today=today, now=ctx.now - timedelta(hours=3))
    ctx.progress.advance(task)
    mbd_on = today - timedelta(weeks=MBD_WEEKS_AGO)
    placed = {"mbd": _hand_over(factory, "mbd", "final_stage", today=mbd_on, now=ctx.now - timedelta(weeks=MBD_WEEKS_AGO))}
    if not placed["mbd"]:  # a small demo has no account at the final stage yet: MBD gets every other written-off account today
        mbd_on = today
        placed["mbd"] = _hand_over(factory, "mbd", "written_off", today=today, now=ctx.now - timedelta(hours=2), half=True)
    placed["collectco"] = _hand_over(factory, "collectco", "written_off", today=today, now=ctx.now - timedelta(hours=2))
    ctx.progress.advance(task)
    files = 0
    if placed["mbd"]:
        files += _recoveries(factory, "mbd", placed_on=mbd_on, today=today, now=ctx.now - timedelta(hours=1), every=2)
    if placed["collectco"]:
        files += _recoveries(factory, "collectco", placed_on=today, today=today, now=ctx.now - timedelta(minutes=30), every=2)
    ctx.progress.advance(task)
    with factory() as s:
        ctx.counts["agency_placements"] = int(s.execute(text("SELECT COUNT(*) FROM agency_placement")).scalar_one())
        ctx.counts["agency_recoveries"] = int(s.execute(text("SELECT COUNT(*) FROM agency_recovery")).scalar_one())
    ctx.counts["agency_recovery_files"] = files
    ctx.progress.advance(task)


def _write_off_chronic_non_payers(factory: Any, *, today: date, now: datetime) -> None:
    """A few accounts that paid nothing in 45 days, owing for longer (not prescribed, disputed, under an arrangement or held),
    written off with four eyes."""
    with factory() as s:
        pg = s.get_bind().dialect.name == "postgresql"
        cutoff, since = prescription.cutoff(today), today - timedelta(days=45)
        b = (lambda v: v) if pg else (lambda v: v.isoformat())
        ids = s.execute(text("""SELECT le.account_id FROM ledger_entry le
                                WHERE le.account_id NOT IN (SELECT account_id FROM billing_claim)
                                  AND le.account_id NOT IN (SELECT account_id FROM arrangement WHERE state IN ('proposed', 'active'))
                                  AND le.account_id NOT IN (SELECT account_id FROM dunning_hold WHERE state = 'active')
                                GROUP BY le.account_id
                                HAVING SUM(le.amount_minor) > 0
                                   AND MIN(CASE WHEN le.amount_minor > 0 THEN le.due_date END) < :since
                                   AND MIN(CASE WHEN le.amount_minor > 0 THEN le.due_date END) > :cutoff
                                   AND SUM(CASE WHEN le.amount_minor < 0 AND le.posted_at > :quiet THEN 1 ELSE 0 END) = 0
                                ORDER BY le.account_id LIMIT :n"""),
                        {"since": b(since), "cutoff": b(cutoff), "quiet": dialect_of(s).bind_ts(now - timedelta(days=45)), "n": WRITE_OFFS_WHEN_NONE}).scalars().all()
    for acc in ids:
        with factory.begin() as s:
            try:
                wo = writeoffs.propose(s, account_id=int(acc), amount=None, reason="Never paid; services ceased; uncollectable in-house",
                                       today=today, now=now, actor=CLERK)
                writeoffs.approve(s, write_off_id=wo.id, now=now + timedelta(minutes=20), actor=MANAGER)
            except writeoffs.UnableToWriteOff:
                s.rollback()


def _hand_over(factory: Any, agency: str, source: str, *, today: date, now: datetime, half: bool = False) -> int:
    with factory.begin() as s:
        numbers = ""
        if half:  # every other account that qualifies (a small demo: the dry run's sample holds them all)
            dry = agencies.dry_run(s, agency=agency, selection=agencies.parse_selection(source=source, accounts="", min_amount="", min_days="0",
                                                                                           currency="ZAR"), today=today, now=now)
            numbers = " ".join(r["account_number"] for r in dry["sample"] if not r["reason"])
            numbers = " ".join(numbers.split()[::2])
            if not numbers:
                return 0
        sel = agencies.parse_selection(source=source, accounts=numbers, min_amount="", min_days="0", currency="ZAR")
        try:
            return agencies.hand_over(s, agency=agency, selection=sel, today=today, now=now, actor=CLERK, idempotency_key=f"demo:{agency}").accounts
        except agencies.UnableToHandOver:
            s.rollback()
            return 0


def _recoveries(factory: Any, agency: str, *, placed_on: date, today: date, now: datetime, every: int) -> int:
    """The agency's recovery file in its layout: every `every`-th placement paid something since the hand-over (a third
    of what is outstanding; every other one of those in full), paid on a day between the hand-over and today."""
    with factory() as s:
        terms = agencies.get_terms(s, code=agency)
        rows = s.execute(text("""SELECT pl.id, a.account_number, pl.amount_minor - pl.recovered_minor AS outstanding FROM agency_placement pl
                                 JOIN account a ON a.id = pl.account_id
                                 WHERE pl.partner_code = :p AND pl.state = 'placed' ORDER BY pl.id"""), {"p": agency}).all()[::every]
    if not rows:
        return 0
    span = max(0, (today - placed_on).days)
    fmt = terms["recovery_date_format"]
    lines = []
    for n, r in enumerate(rows):
        full = n % 2 == 1
        amount = int(r.outstanding) if full else max(100, int(r.outstanding) // 3 // 100 * 100)
        if amount > int(r.outstanding) or amount <= 0:
            continue
        paid = placed_on + timedelta(days=(r.id * 7) % (span + 1))
        key = f"PL-{r.id}" if agency == "collectco" else r.account_number
        lines.append((key, Decimal(amount).scaleb(-2), paid.strftime(fmt), f"{agency.upper()}-{today:%y%m%d}-{r.id}"))
    cols = terms["recovery_columns"]
    header = [cols["account"], cols["amount"], cols["paid_on"], cols["agency_ref"]]
    _, _, data = export_table(terms["recovery_format"], name=f"{agency}-recoveries", header=header, rows=[list(x) for x in lines],
                              delimiter=terms["recovery_delimiter"] if terms["recovery_format"] == "csv" else ",")
    try:
        with factory.begin() as s:
            agencies_recoveries.import_recoveries(s, agency=agency, data=data, filename=f"{agency}-recoveries-{today:%Y%m%d}.{terms['recovery_format']}",
                                                  today=today, now=now, actor=CLERK)
    except agencies_recoveries.DuplicateRecoveryFile:  # the demo ran before on this database: imported once
        return 0
    return 1
