"""Demo data: partner service-order history for existing wholesale lines, a few orders in flight, one stuck delivery."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import text

from opsline.core.ids import reference
from opsline.db.bulk import copy_rows, next_id, reset_sequence
from opsline.partners.simulator import partner_ref_for

SO_COLS = ("id", "partner_code", "account_id", "product_id", "order_item_id", "site_id", "action", "state", "external_ref", "partner_ref", "requested_date",
           "due_date", "confirmed_date", "state_reason", "reason", "attempts", "last_error", "delivered_at", "created_at", "updated_at")
MSG_COLS = ("id", "partner_code", "service_order_id", "account_id", "direction", "at", "kind", "outcome", "note", "body", "sequence")
JOB_COLS = ("id", "kind", "payload", "state", "priority", "run_at", "created_at", "finished_at", "attempts", "max_attempts", "idempotency_key", "serial_key", "last_error")


def _d(v: Any) -> date | None:
    if v is None:
        return None
    return v if isinstance(v, date) and not isinstance(v, datetime) else date.fromisoformat(str(v)[:10])


def _at(d: date, hour: int) -> datetime:
    return datetime(d.year, d.month, d.day, hour, tzinfo=timezone.utc)


def _messages(mid: int, so: tuple[Any, ...], *, final: str | None, final_date: date | None, reason: str | None) -> list[tuple[Any, ...]]:
    so_id, code, acc, ext, pref, created, delivered = so[0], so[1], so[2], so[8], so[9], so[18], so[17]
    rows = [
        (mid, code, so_id, acc, "out", delivered or created, "serviceOrder.create", "sent", None,
         {"externalId": ext, "serviceOrderItem": [{"id": "1", "action": so[6], "service": {"id": str(so[3])}}], "requestedCompletionDate": str(so[10])}, 1),
        (mid + 1, code, so_id, acc, "in", delivered or created, "serviceOrder.response", "applied", None, {"id": pref, "externalId": ext, "state": "acknowledged"}, 2),
    ]
    if final:
        so_body = {"id": pref, "externalId": ext, "state": final}
        if final_date:
            so_body["completionDate"] = final_date.isoformat()
        if reason:
            so_body["stateChangeReason"] = reason
        at = _at(final_date, 9) if final_date else (delivered or created) + timedelta(hours=6)
        rows.append((mid + 2, code, so_id, acc, "in", at, "ServiceOrderStateChangeEvent", "applied", reason, {"eventType": "ServiceOrderStateChangeEvent", "event": {"serviceOrder": so_body}}, 3))
    return rows


def load_partner_orders(ctx: Any, *, chunk: int = 50_000) -> None:
    """Completed activation (and deactivation) orders for every wholesale line already in inventory, loaded in bulk."""
    now: datetime = ctx.now
    today = now.date()
    with ctx.engine.begin() as conn:
        fnos = {r[0]: (r[1], r[2]) for r in conn.execute(text("SELECT code, activation_sla_days, deactivation_sla_days FROM partner WHERE kind = 'fno'"))}
        if not fnos:
            return
        so_id = next_id(conn, "partner_service_order")
        mid = next_id(conn, "partner_message")
        job_id = next_id(conn, "job")
        last = 0
        total = msgs_total = 0
        inflight_candidates: list[Any] = []
        while True:
            rows = conn.execute(text(
                "SELECT p.id, p.account_id, p.site_id, p.state, p.start_date, p.end_date, p.partner_code, p.created_at FROM product p "
                "WHERE p.id > :last AND p.partner_code IS NOT NULL "
                "AND NOT EXISTS (SELECT 1 FROM partner_service_order s WHERE s.product_id = p.id) ORDER BY p.id LIMIT :n"), {"last": last, "n": chunk}).all()
            if not rows:
                break
            last = rows[-1][0]
            sos: list[tuple[Any, ...]] = []
            msgs: list[tuple[Any, ...]] = []
            for r in rows:
                code = r.partner_code
                if code not in fnos:
                    continue
                start, end = _d(r.start_date), _d(r.end_date)
                if r.state in ("created", "pendingActive") or start is None or start > today:
                    inflight_candidates.append(r)
                    continue
                created = _at(start - timedelta(days=7), 8)
                ext = reference("OPS-SO-", so_id, width=6)
                so = (so_id, code, r.account_id, r.id, None, r.site_id, "add", "completed", ext, partner_ref_for(code, ext), start, start, start, None,
                      "new line", 1, None, created, created, _at(start, 9))
                sos.append(so)
                msgs += _messages(mid, so, final="completed", final_date=start, reason=None)
                mid += 3
                so_id += 1
                if end is not None and end <= today:
                    created = _at(end - timedelta(days=30), 8)
                    ext = reference("OPS-SO-", so_id, width=6)
                    so = (so_id, code, r.account_id, r.id, None, r.site_id, "delete", "completed", ext, partner_ref_for(code, ext), end, end, end, None,
                          "customer cancelled", 1, None, created, created, _at(end, 9))
                    sos.append(so)
                    msgs += _messages(mid, so, final="completed", final_date=end, reason=None)
                    mid += 3
                    so_id += 1
            copy_rows(conn, "partner_service_order", SO_COLS, sos)
            copy_rows(conn, "partner_message", MSG_COLS, msgs)
            total += len(sos)
            msgs_total += len(msgs)
        # In flight: orders the partner is working on (some past their SLA), one rejected, one retrying, one dead delivery.
        if not inflight_candidates:
            inflight_candidates = list(conn.execute(text(
                "SELECT p.id, p.account_id, p.site_id, p.state, p.start_date, p.end_date, p.partner_code, p.created_at FROM product p "
                "WHERE p.partner_code IS NOT NULL AND p.state = 'active' ORDER BY p.id DESC LIMIT 12")).all())
        sos, msgs, jobs_rows = [], [], []
        for k, r in enumerate(inflight_candidates[:12]):
            code = r.partner_code
            if code not in fnos:
                continue
            action = "add" if r.state in ("created", "pendingActive") else "modify"
            age = [1, 3, 9, 12, 2, 15, 0, 4, 6, 20, 1, 2][k]
            created = now - timedelta(days=age, hours=k)
            requested = created.date() + timedelta(days=2)
            due = max(requested, created.date() + timedelta(days=fnos[code][0] * 7 // 5))
            ext = reference("OPS-SO-", so_id, width=6)
            pref = partner_ref_for(code, ext)
            kind = ["inProgress", "acknowledged", "inProgress", "held", "inProgress", "inProgress", "dead", "retrying", "rejected", "inProgress", "inProgress", "acknowledged"][k]
            state = {"dead": "acknowledged", "retrying": "acknowledged"}.get(kind, kind)
            delivered = None if kind in ("dead", "retrying") else created + timedelta(minutes=2)
            reason_text = {"held": "awaiting wayleave approval from the body corporate", "rejected": "address not serviceable"}.get(kind)
            so = (so_id, code, r.account_id, r.id, None, r.site_id, action, state, ext, pref if delivered else None, requested, due, None, reason_text,
                  "new line" if action == "add" else "speed upgrade", 1, None, delivered, created, created + timedelta(hours=1))
            sos.append(so)
            if delivered:
                m = _messages(mid, so, final=None if state == "acknowledged" else state, final_date=None, reason=reason_text)
                msgs += m
                mid += len(m)
            else:
                err = ("AdapterUnavailable: partner answered HTTP 503: {'detail': 'Service Unavailable'}" if kind == "dead"
                       else "AdapterUnavailable: partner unreachable: ConnectTimeout: timed out")
                jobs_rows.append((job_id, "partners.deliver", {"service_order_id": so_id}, "dead" if kind == "dead" else "queued", 100,
                                  now + timedelta(minutes=30) if kind == "retrying" else created + timedelta(hours=2), created,
                                  created + timedelta(hours=3) if kind == "dead" else None, 8 if kind == "dead" else 3, 8, ext, f"product:{r.id}", err))
                job_id += 1
            so_id += 1
        copy_rows(conn, "partner_service_order", SO_COLS, sos)
        copy_rows(conn, "partner_message", MSG_COLS, msgs)
        copy_rows(conn, "job", JOB_COLS, jobs_rows)
        for t in ("partner_service_order", "partner_message", "job"):
            reset_sequence(conn, t)
    ctx.counts["partner_service_orders"] = total + len(sos)
    ctx.counts["partner_messages"] = msgs_total + len(msgs)
