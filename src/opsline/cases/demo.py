"""Demo data for cases: queue members and managers, and ~150 cases per 1000 accounts in every state with a
replayable case_event history (set-based: rows built in memory, loaded with COPY / executemany)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import select, text

from opsline.cases.jobs import schedule_autoclose
from opsline.cases.models import Queue, QueueMember
from opsline.db.bulk import copy_rows, next_id, reset_sequence
from opsline.db.session import make_sessionmaker
from opsline.users.models import User

# queue code -> [(username, skills)]
MEMBERS = {
    "billing": [("billing", ["billing"]), ("support", ["billing", "credit", "technical", "porting"]), ("support2", ["billing", "retention", "fraud"])],
    "credit_control": [("debtors", ["credit"]), ("debtorsmgr", ["credit"])],
    "retentions": [("cancel", ["retention"]), ("support2", ["billing", "retention", "fraud"])],
    "technical": [("support", ["billing", "credit", "technical", "network", "porting"]), ("support2", ["technical", "network"])],
    "porting": [("support", ["porting"])],
    "fraud": [("support2", ["fraud"])],
    "escalations": [("service", []), ("support", [])],
}
MANAGER = "service"

SUBJECTS = {
    "billing_account": ["Double debit order in October", "Invoice higher than quoted", "Pro-rata charge not explained", "Change billing email address",
                        "VAT number missing on invoice", "Debit order on wrong date"],
    "credit_control": ["Request payment arrangement", "Suspended although paid", "Dispute on arrears amount"],
    "collections": ["Letter of demand received in error", "Agency calling about settled account"],
    "sales": ["Wants faster fibre package", "Quote for business line", "Add a second mobile SIM"],
    "retentions": ["Wants to cancel: moving to a competitor", "Wants to cancel: too expensive", "Wants to cancel: emigrating"],
    "number_porting": ["Port in from another network stuck", "Port out request not released"],
    "network_coverage": ["Fibre line down since weekend", "Slow speeds in the evening", "Intermittent drops every few minutes", "No coverage at new address"],
    "fraud": ["SIM swap not requested by customer", "Unknown account opened in customer's name"],
    "device_technical": ["Router keeps rebooting", "ONT shows red LOS light", "Wi-Fi range poor upstairs"],
    "cancellations": ["Cancel account after relocation", "Cancel fibre, keep mobile"],
    "complaint": ["Complaint: technician missed appointment twice", "Complaint: rude agent on call", "ICASA complaint escalated"],
}
CATEGORY_WEIGHTS = {"billing_account": 22, "credit_control": 8, "collections": 3, "sales": 5, "retentions": 8, "number_porting": 4, "network_coverage": 20,
                    "fraud": 2, "device_technical": 14, "cancellations": 6, "complaint": 8}
STATES = ["acknowledged", "inProgress", "pending", "held", "resolved", "closed", "cancelled", "rejected"]
STATE_WEIGHTS = [10, 24, 9, 9, 12, 31, 3, 2]
NOTES_INTERNAL = ["Checked the account history; nothing unusual on the debit order file.", "Logged with the FNO; awaiting their technician slot.",
                  "Called the customer, no answer; left voicemail.", "Manager approved a goodwill credit."]
NOTES_CUSTOMER = ["Thank you for contacting us. We are looking into this and will update you within one business day.",
                  "We have logged a fault with the network operator and will let you know once a technician is booked.",
                  "Please send us a copy of your bank statement showing both debit orders."]
PENDING_REASONS = ["Waiting for bank statement", "Customer to confirm a suitable technician date", "Waiting for signed port form"]
PARTNERS = ["openserve", "vumatel"]


def setup_queues(ctx: Any) -> None:
    """Queue managers and members for the demo users (queues themselves are seeded reference data)."""
    factory = make_sessionmaker(ctx.engine)
    with factory.begin() as s:
        users = {u: i for u, i in s.execute(select(User.username, User.id))}
        queues = {q.code: q for q in s.execute(select(Queue)).scalars()}
        for code, members in MEMBERS.items():
            q = queues.get(code)
            if q is None:
                continue
            if q.manager_user_id is None and MANAGER in users:
                q.manager_user_id = users[MANAGER]
            have = set(s.execute(select(QueueMember.user_id).where(QueueMember.queue_id == q.id)).scalars())
            for username, skills in members:
                if username in users and users[username] not in have:
                    s.add(QueueMember(queue_id=q.id, user_id=users[username], skills=skills, active=True))
        ctx.counts["case_queues"] = len(queues)
        schedule_autoclose(s, now=ctx.now)


def _at(base: datetime, minutes: float) -> datetime:
    return base + timedelta(minutes=float(minutes))


def load_cases(ctx: Any) -> None:
    """~15% of accounts get a case (300 for 2000 accounts), with events, notes, retention offers and leads."""
    if ctx.accounts == 0 or len(ctx.account_ids) == 0:
        return
    rng = np.random.default_rng(int(ctx.rng.integers(0, 2**31)))
    now: datetime = ctx.now
    n = max(12, int(len(ctx.account_ids) * 0.15))
    with ctx.engine.begin() as conn:
        queues = {code: (qid, assignment) for qid, code, assignment in conn.execute(text("SELECT id, code, assignment FROM queue"))}
        members: dict[int, list[int]] = {}
        for qid, uid in conn.execute(text("SELECT queue_id, user_id FROM queue_member WHERE active = :t ORDER BY user_id"), {"t": True}):
            members.setdefault(qid, []).append(uid)
        cats = {c: (p, q) for c, p, q in conn.execute(text("SELECT code, default_priority, default_queue_code FROM case_category"))}
        users = {i: u for i, u in conn.execute(text("SELECT id, username FROM staff_user"))}
        lo, hi = int(ctx.account_ids.min()), int(ctx.account_ids.max())
        accounts = {i: (t, e) for i, t, e in conn.execute(text("SELECT id, value_tier_code, email FROM account WHERE id BETWEEN :lo AND :hi"), {"lo": lo, "hi": hi})}
        case_id0, ev_id, note_id, link_id, off_id, lead_id = (next_id(conn, t) for t in ("support_case", "case_event", "case_note", "case_link", "retention_offer", "sales_lead"))
    if "escalations" not in queues:
        return
    cat_codes = [c for c in CATEGORY_WEIGHTS if c in cats]
    w = np.array([CATEGORY_WEIGHTS[c] for c in cat_codes], dtype=float)
    cat_idx = rng.choice(len(cat_codes), n, p=w / w.sum())
    state_idx = rng.choice(len(STATES), n, p=np.array(STATE_WEIGHTS) / sum(STATE_WEIGHTS))
    acc_pick = rng.choice(ctx.account_ids, n, replace=len(ctx.account_ids) < n)
    age_days = rng.uniform(0.02, 2.5, n)  # open cases are recent
    old_days = rng.uniform(8, 45, n)  # finished cases are older
    r = rng.random((n, 8))
    channels = np.array(["call", "email", "web", "front_line_escalation", "campaign", "partner"])[rng.choice(6, n, p=[.42, .25, .12, .15, .03, .03])]
    rows_case, rows_ev, rows_note, rows_link, rows_off, rows_lead = [], [], [], [], [], []
    esc_qid = queues["escalations"][0]

    def ev(cid: int, acc: int, at: datetime, kind: str, frm: Any, to: Any, reason: str | None, actor: str, data: dict | None = None) -> None:
        nonlocal ev_id
        rows_ev.append((ev_id, cid, acc, at, kind, None if frm is None else str(frm), None if to is None else str(to), reason, actor, data))
        ev_id += 1

    def note(cid: int, acc: int, at: datetime, author: str, vis: str, body: str, direction: str = "out") -> None:
        nonlocal note_id
        rows_note.append((note_id, cid, acc, at, author, vis, direction, body, None))
        ev(cid, acc, at, "note", None, vis, None, author, {"note_id": note_id, "visibility": vis, "direction": direction})
        note_id += 1

    for k in range(n):
        cid = case_id0 + k
        ev_start, note_start = len(rows_ev), len(rows_note)
        acc = int(acc_pick[k])
        tier, email = accounts.get(acc, ("standard", None))
        cat = cat_codes[cat_idx[k]]
        state = STATES[state_idx[k]]
        default_prio, qcode = cats[cat]
        prio = default_prio - (1 if tier in ("vip", "influencer") else 0) - (1 if tier == "high_value" and cat in ("retentions", "cancellations") else 0)
        prio = max(1, min(4, prio))
        risky = cat == "complaint" and r[k, 0] < 0.35
        litig, brand = bool(risky and r[k, 1] < 0.5), bool(risky and r[k, 1] >= 0.5)
        dispute = cat == "billing_account" and r[k, 1] < 0.04  # disputes a contract term: messages wait for Legal
        qid = esc_qid if risky else queues.get(qcode or "billing", queues["billing"])[0]
        finished = state in ("resolved", "closed", "cancelled", "rejected")
        opened = now - timedelta(days=float(old_days[k] if finished else age_days[k]))
        opened = opened.replace(microsecond=0)
        team = members.get(qid, [])
        assignee = team[k % len(team)] if team and not (state == "acknowledged" and r[k, 2] < 0.5) else None
        agent = users.get(assignee) if assignee else "support"
        subject = SUBJECTS[cat][k % len(SUBJECTS[cat])]
        origin = "Lerato Mokoena <lerato.frontline@opsline.example>" if channels[k] == "front_line_escalation" else None
        ev(cid, acc, opened, "opened", None, "acknowledged", None, agent or "support",
           {"queue": next(c for c, v in queues.items() if v[0] == qid), "priority": prio, "channel": str(channels[k]), "category": cat, "assignee_user_id": assignee})
        if assignee:
            ev(cid, acc, opened, "assignee", None, assignee, f"{queues[next(c for c, v in queues.items() if v[0] == qid)][1]} assignment", agent)
        t = opened
        cur = "acknowledged"
        first_response = resolved_at = closed_at = None
        fcr_cand = False
        reopen = 0
        pending_reason = held_reason = partner = resolution = state_reason = None
        ever_pending = handed = False
        fcr_path = state == "closed" and r[k, 3] < 0.35 and not risky

        def move(to: str, minutes: float, reason: str | None = None, data: dict | None = None) -> None:
            nonlocal t, cur
            t = _at(t, minutes)
            ev(cid, acc, t, "state", cur, to, reason, agent or "support", data)
            cur = to

        if state == "rejected":
            move("rejected", rng.uniform(20, 300), "Duplicate of an existing case")
            state_reason = "Duplicate of an existing case"
        elif fcr_path:
            move("inProgress", 2)
            t = _at(t, 5)
            first_response = t
            ev(cid, acc, t, "first_response", None, "resolution", None, agent)
            resolution = "Explained on the call; customer satisfied."
            move("resolved", 10, resolution)
            resolved_at, fcr_cand = t, True
            move("closed", 7 * 24 * 60, "auto-closed 7 days after resolution")
            closed_at = t
        elif state != "acknowledged":
            move("inProgress", rng.uniform(10, 240))
            t = _at(t, rng.uniform(5, 90))
            note(cid, acc, t, agent or "support", "customer", NOTES_CUSTOMER[k % len(NOTES_CUSTOMER)])
            first_response = t
            ev(cid, acc, t, "first_response", None, "note", None, agent or "support")
            if r[k, 4] < 0.15 and not risky and qcode != "technical" and "technical" in queues:
                t = _at(t, rng.uniform(30, 300))
                to_q = queues["technical"][0]
                ev(cid, acc, t, "queue", qcode, "technical", "Needs the technical team", agent or "support", {"from_queue_id": qid, "to_queue_id": to_q})
                qid, handed = to_q, True
                tm = members.get(to_q, [])
                new_a = tm[(k + 1) % len(tm)] if tm else None
                ev(cid, acc, t, "assignee", assignee, new_a, "least_loaded assignment", agent or "support")
                assignee = new_a
                agent = users.get(new_a) if new_a else agent
            if state == "pending" or (finished and r[k, 5] < 0.25):
                pending_reason = PENDING_REASONS[k % len(PENDING_REASONS)]
                move("pending", rng.uniform(30, 600), pending_reason, {"reason": pending_reason})
                ever_pending = True
                if state != "pending":
                    move("inProgress", rng.uniform(60, 2000), "customer replied")
            if state == "held" or (finished and cat in ("network_coverage", "device_technical", "number_porting") and r[k, 5] < 0.5):
                partner = PARTNERS[k % 2]
                held_reason = f"Fault logged with {partner}"
                move("held", rng.uniform(30, 600), held_reason, {"partner_code": partner})
                if state != "held":
                    move("inProgress", rng.uniform(240, 4000), None, {"released_partner_code": partner})
            if r[k, 6] < 0.3 and state in ("inProgress", "pending", "held", "resolved", "closed"):
                t = _at(t, rng.uniform(5, 60))
                note(cid, acc, t, agent or "support", "internal", NOTES_INTERNAL[k % len(NOTES_INTERNAL)])
            if state in ("resolved", "closed"):
                resolution = "Refund processed." if cat == "billing_account" else "Fault cleared by the network operator." if partner else "Resolved with the customer."
                move("resolved", rng.uniform(60, 3000), resolution)
                resolved_at = t
                if r[k, 7] < 0.2:  # customer came back
                    t = _at(t, rng.uniform(600, 3000))
                    ev(cid, acc, t, "reopened", "resolved", "inProgress", "Customer says the problem is back", "inbound-email")
                    move("inProgress", 0, "Customer says the problem is back")
                    reopen = 1
                    move("resolved", rng.uniform(120, 2000), resolution)
                    resolved_at = t
                if state == "closed":
                    move("closed", 7 * 24 * 60, "auto-closed 7 days after resolution")
                    closed_at = t
            elif state == "cancelled":
                state_reason = "Customer withdrew the request"
                move("cancelled", rng.uniform(60, 3000), state_reason)
                closed_at = t
        if t > now:  # keep history in the past
            shift = t - now + timedelta(minutes=5)
            for i in range(ev_start, len(rows_ev)):
                e = rows_ev[i]
                rows_ev[i] = e[:3] + (e[3] - shift,) + e[4:]
            for i in range(note_start, len(rows_note)):
                e = rows_note[i]
                rows_note[i] = e[:3] + (e[3] - shift,) + e[4:]
            opened, t = opened - shift, t - shift
            first_response = first_response - shift if first_response else None
            resolved_at = resolved_at - shift if resolved_at else None
            closed_at = closed_at - shift if closed_at else None
        fcr = None
        if state == "closed" and resolved_at is not None and resolved_at <= now - timedelta(days=7):
            fcr = bool(fcr_cand and reopen == 0)
        if cat in ("retentions", "cancellations") and state != "acknowledged":
            outcome = ["offer_made", "accepted", "declined"][k % 3]
            rows_off.append((off_id, cid, acc, "3 months at 50% off" if k % 2 else "Free speed upgrade for 6 months", outcome, _at(opened, 30), agent or "cancel"))
            off_id += 1
            if outcome == "declined":
                rows_link.append((link_id, cid, acc, "cancellation", None, "requested", "Customer declined the retention offer; cancellation requested.",
                                  {"status": "requested", "account_id": acc}, _at(opened, 31), agent or "cancel"))
                link_id += 1
        if k % 11 == 0:
            rows_lead.append((lead_id, cid, acc, ["500 Mbps fibre upgrade", "Second mobile SIM", "Business fibre with static IP"][k % 3], None,
                              ["new", "qualified", "won", "lost"][k % 4], agent or "support", _at(opened, 20), _at(opened, 20)))
            lead_id += 1
        if cat == "billing_account" and k % 5 == 0:
            rows_link.append((link_id, cid, acc, "invoice", None, f"INV-2026-{10000 + k}", None, None, _at(opened, 3), agent or "support"))
            link_id += 1
        if partner and k % 2 == 0:
            rows_link.append((link_id, cid, acc, "partner_ticket", None, f"{partner.upper()[:3]}-{700000 + k}", f"{partner} fault ticket", None, _at(opened, 60), agent or "support"))
            link_id += 1
        rows_case.append((cid, f"CS{cid:08d}", acc, cat, str(channels[k]), subject, f"{subject}. Logged via {channels[k]}.", state, prio, tier, qid, assignee, origin,
                          email, None, litig, brand, dispute, opened, agent or "support", first_response, resolved_at, agent if resolved_at else None, closed_at, reopen,
                          fcr_cand, fcr, ever_pending, handed, pending_reason if state == "pending" else None, held_reason if state == "held" else None,
                          partner if state == "held" else partner, resolution, state_reason, None, t, 1))
    case_cols = ("id", "reference", "account_id", "category_code", "channel", "subject", "description", "state", "priority", "value_tier_code", "queue_id",
                 "assignee_user_id", "originating_agent", "contact_email", "contact_phone", "litigation_risk", "brand_risk", "contractual_dispute", "opened_at", "opened_by",
                 "first_response_at", "resolved_at", "resolved_by", "closed_at", "reopen_count", "fcr_candidate", "first_contact_resolution", "ever_pending",
                 "ever_handed_off", "pending_reason", "held_reason", "third_party_partner_code", "resolution", "state_reason", "sla_policy_id", "updated_at", "version")
    with ctx.engine.begin() as conn:
        copy_rows(conn, "support_case", case_cols, rows_case)
        copy_rows(conn, "case_event", ("id", "case_id", "account_id", "at", "kind", "from_value", "to_value", "reason", "actor", "data"), rows_ev)
        copy_rows(conn, "case_note", ("id", "case_id", "account_id", "at", "author", "visibility", "direction", "body", "email_message_id"), rows_note)
        copy_rows(conn, "case_link", ("id", "case_id", "account_id", "target_type", "target_id", "target_ref", "note", "data", "created_at", "created_by"), rows_link)
        copy_rows(conn, "retention_offer", ("id", "case_id", "account_id", "offer", "outcome", "at", "by"), rows_off)
        copy_rows(conn, "sales_lead", ("id", "case_id", "account_id", "product_interest", "notes", "state", "created_by", "created_at", "updated_at"), rows_lead)
        for tname in ("support_case", "case_event", "case_note", "case_link", "retention_offer", "sales_lead"):
            reset_sequence(conn, tname)
    ctx.counts["cases"] = len(rows_case)
    ctx.counts["case_events"] = len(rows_ev)
    ctx.counts["case_notes"] = len(rows_note)
