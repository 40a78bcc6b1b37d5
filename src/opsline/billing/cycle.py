"""One bill-run cycle end to end, as the `opsline billrun` command runs it: start (or continue) the run, drain its shards
through the job table in this process, read the review, and optionally approve (a second person) and finalise."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Callable

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from opsline.billing import billrun, review
from opsline.billing.models import BillRun, BillRunState
from opsline.core.errors import Conflict
from opsline.core.events import Actor

CONTINUABLE = (BillRunState.DRAFT_RUNNING, BillRunState.DRAFT, BillRunState.REVIEW, BillRunState.APPROVED)


class BillRunIncomplete(Conflict):
    title = "Bill run incomplete"
    type_slug = "bill-run-incomplete"


@dataclass
class CycleResult:
    bill_run_id: int
    continued: bool
    run: dict[str, Any]
    review: dict[str, Any]
    approved_by: str | None = None
    invoices_issued: int | None = None


def run_cycle(factory: sessionmaker[Session], *, cycle_date: date, now: datetime, starter: Actor, dry_run: bool = False,
              approver: Actor | None = None, finalise: bool = False, threads: int = 1, review_limit: int = 10,
              on_start: Callable[[int, int, int], None] | None = None, on_shard: Callable[[Any, bool], None] | None = None) -> CycleResult:
    """Run a cycle. A live run for the cycle is continued when asked to approve or finalise it. `on_start(run id,
    shards, done)` and `on_shard(job, ok)` report progress. Raises UnableToStartBillRun, BillRunIncomplete (shards
    left for the workers), and what approve/finalise raise (FourEyesRequired, BillRunActionNotAllowed ...)."""
    with factory.begin() as s:
        existing = s.execute(select(BillRun).where(BillRun.cycle_date == cycle_date, BillRun.state != BillRunState.ROLLED_BACK)).scalars().first()
        continued = existing is not None and (approver is not None or finalise) and existing.state in CONTINUABLE
        run = existing if continued else billrun.start_bill_run(s, cycle_date=cycle_date, now=now, actor=starter, dry_run=dry_run)
        rid, shards, done = run.id, run.shard_count, run.shards_done
    if on_start is not None:
        on_start(rid, shards, done)
    billrun.drain_shards(factory, now=now, threads=threads, on_shard=on_shard)
    with factory() as s:
        detail = billrun.bill_run_detail(s, bill_run_id=rid)
        if detail["state"] == BillRunState.DRAFT_RUNNING:
            raise BillRunIncomplete(f"bill run {rid} has shards that did not finish; see /jobs (the worker retries them)", field="cycle_date")
        rev = review.review(s, bill_run_id=rid, limit=review_limit)
    result = CycleResult(bill_run_id=rid, continued=continued, run=detail, review=rev)
    if approver is not None:
        with factory.begin() as s:
            if billrun.get_run(s, bill_run_id=rid).state == BillRunState.DRAFT:
                billrun.open_review(s, bill_run_id=rid, now=now, actor=approver)
            billrun.approve_bill_run(s, bill_run_id=rid, now=now, actor=approver)
        result.approved_by = approver.name
    if finalise:
        with factory.begin() as s:
            billrun.finalise_bill_run(s, bill_run_id=rid, now=now, actor=approver or starter)
            result.invoices_issued = billrun.invoice_count(s, bill_run_id=rid)
    return result
