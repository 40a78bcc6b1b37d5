"""Demo messages: reminders sent by SMS, formal replies waiting for Legal/Brand sign-off, a capped collections
contact scheduled for later, an opt-out, and one SMS the gateway would not take (so every desk card has work)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from opsline.core.events import Actor
from opsline.core.localtime import zone
from opsline.config import get_settings
from opsline.db.session import make_sessionmaker
from opsline.notifications import delivery, service
from opsline.notifications.channels import DeliveryFailed, LogOnlyGateway


class _Refusing:
    def send(self, *, to: str, body: str, reference: str) -> str:
        raise DeliveryFailed("gateway answered 400: number not reachable", permanent=True)


def load_messages(ctx: Any) -> None:
    if ctx.accounts == 0 or len(ctx.account_ids) == 0:
        return
    rng = ctx.rng
    ids = [int(i) for i in rng.choice(ctx.account_ids, size=min(len(ctx.account_ids), max(8, len(ctx.account_ids) // 30)), replace=False)]
    tz = zone(get_settings().timezone)
    agent = Actor(name="support", roles=frozenset({"second_line_agent"}))
    debtors = Actor(name="debtors", roles=frozenset({"debtors_clerk"}))
    system = Actor.system("demo")
    gw = LogOnlyGateway()
    factory = make_sessionmaker(ctx.engine)
    n = 0
    with factory.begin() as s:
        for k, acc in enumerate(ids):
            at = ctx.now - timedelta(days=int(rng.integers(0, 6)), hours=int(rng.integers(0, 6)))
            if k % 4 == 3:
                mid = service.send(s, event="generic.notice", account_id=acc, now=at, actor=agent, needs_approval=True, subject_ref="demo",
                                   context={"subject": "Our formal response to your complaint",
                                            "body": "We have investigated the outage you reported and our findings are set out below."})
            else:
                mid = service.send(s, event="generic.reminder", account_id=acc, now=at, actor=system, channel="sms", category="billing",
                                   context={"subject": "", "body": "your invoice is ready on the portal", "due_date": (at + timedelta(days=14)).date().isoformat()},
                                   tz=tz, idempotency_key=f"demo:reminder:{acc}")
                delivery.deliver_message(s, message_id=mid, now=at, gateway=gw)
            n += 1
        capped = ids[0]
        for d in range(4):  # the fourth collections contact this week waits for the cap
            service.send(s, event="generic.notice", account_id=capped, now=ctx.now - timedelta(days=3 - d), actor=debtors, channel="sms",
                         category="collections", context={"subject": "", "body": "Your account is in arrears; please call us."}, tz=tz)
            n += 1
        service.set_preference(s, account_id=ids[1], channel="sms", category="marketing", opted_out=True, now=ctx.now, actor=system,
                               reason="replied STOP")
        bad = service.send(s, event="generic.notice", account_id=ids[2], now=ctx.now - timedelta(hours=3), actor=system, channel="sms",
                           context={"subject": "", "body": "Your technician is on the way."}, tz=tz)
        delivery.deliver_message(s, message_id=bad, now=ctx.now - timedelta(hours=3), gateway=_Refusing(), max_attempts=1)
        n += 1
    ctx.counts["messages"] = n
