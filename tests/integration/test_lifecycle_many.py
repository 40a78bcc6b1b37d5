"""`lifecycle.transition_many` on real invoice rows (SQLite and PostgreSQL): the declared lifecycle decides which rows move,
one audit event per moved row, ONE batch domain event, the same rules as `transition()`; and billing's batch subscriber
of `payments.invoices_settled` settles a statement import's invoices set-based."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import func, select

from opsline.billing.invoicing.invoices import InvoiceTransitionNotAllowed
from opsline.billing.invoicing.samples import make_account, make_finalised_invoice
from opsline.billing.models import BILL_RUN, INVOICE, Invoice, InvoiceState
from opsline.core import domain_events
from opsline.core.errors import NotFound, TransitionNotAllowed
from opsline.core.events import Actor, AuditEvent
from opsline.core.lifecycle import ActionNotPermitted, FourEyesRequired, Lifecycle, ReasonRequired, transition_many

SYSTEM = Actor.system("payments")
PERSON = Actor(name="tester", roles=frozenset({"admin"}))


@pytest.fixture
def delivered(monkeypatch):  # type: ignore[no-untyped-def]
    """The domain events delivered (still handed to their subscribers)."""
    seen: list[tuple[str, dict]] = []
    real = domain_events._deliver

    def spy(session, ev):  # type: ignore[no-untyped-def]
        seen.append((ev.name, ev.payload))
        real(session, ev)

    monkeypatch.setattr(domain_events, "_deliver", spy)
    return seen


@pytest.fixture
def invoices(session, now):  # type: ignore[no-untyped-def]
    """Five invoices of five accounts, one in each of these states: new, sent, onHold, draft, paid."""
    out: dict[str, tuple[int, int]] = {}
    for k, state in enumerate(("new", "sent", "onHold", "draft", "paid")):
        acc = make_account(session, now=now, name=f"Customer {k}", email=f"c{k}@example.test")
        inv = make_finalised_invoice(session, account_id=acc, now=now, period_start=date(2026, 11, 1), period_end=date(2026, 12, 1),
                                     lines=[{"description": "Fibre 100/100 Mbps", "amount_minor": 80000}])
        session.get(Invoice, inv).state = state
        out[state] = (inv, acc)
    session.commit()
    return out


def _states(session, ids):  # type: ignore[no-untyped-def]
    return dict(session.execute(select(Invoice.id, Invoice.state).where(Invoice.id.in_(ids))).all())


def _audits(session, action):  # type: ignore[no-untyped-def]
    return session.execute(select(AuditEvent).where(AuditEvent.entity_type == "invoice", AuditEvent.action == action)
                           .order_by(AuditEvent.entity_id)).scalars().all()


def test_settles_the_rows_whose_state_allows_it_audits_each_and_publishes_one_batch_event(session, now, invoices, delivered):  # type: ignore[no-untyped-def]
    ids = [inv for inv, _ in invoices.values()]
    loaded = session.get(Invoice, invoices["sent"][0])  # an object already in the session must not keep its old state
    assert loaded.state == "sent"
    changed = transition_many(session, INVOICE, Invoice, ids + [invoices["new"][0]], "settle", now=now, actor=SYSTEM, reason="statement 7")
    movable = sorted(invoices[s][0] for s in ("new", "sent", "onHold"))
    assert changed == movable
    assert loaded.state == "paid"
    session.commit()
    states = _states(session, ids)
    assert {states[invoices[s][0]] for s in ("new", "sent", "onHold")} == {"paid"}
    assert states[invoices["draft"][0]] == "draft"  # settle is not allowed from draft: left alone, not returned
    audits = _audits(session, "settle")
    assert sorted(int(a.entity_id) for a in audits) == movable  # one per moved row, none for the paid or the draft one
    by_id = {int(a.entity_id): a for a in audits}
    for state in ("new", "sent", "onHold"):
        inv, acc = invoices[state]
        a = by_id[inv]
        assert (a.before, a.after, a.account_id, a.actor, a.reason) == ({"state": state}, {"state": "paid"}, acc, SYSTEM.name, "statement 7")
        assert a.occurred_at == now
    batches = [p for name, p in delivered if name == "invoice.paid"]
    assert batches == [{"ids": movable, "batch": True, "action": "settle",
                        "from": [_states_before(invoices, i) for i in movable], "to": "paid", "reason": "statement 7"}]


def _states_before(invoices, inv_id):  # type: ignore[no-untyped-def]
    return next(s for s, (i, _) in invoices.items() if i == inv_id)


def test_nothing_to_move_changes_nothing_and_publishes_nothing(session, now, invoices, delivered):  # type: ignore[no-untyped-def]
    before = session.execute(select(func.count(AuditEvent.id))).scalar_one()
    assert transition_many(session, INVOICE, Invoice, [invoices["draft"][0], invoices["paid"][0], 10**9], "settle", now=now, actor=SYSTEM) == []
    assert transition_many(session, INVOICE, Invoice, [], "settle", now=now, actor=SYSTEM) == []
    assert session.execute(select(func.count(AuditEvent.id))).scalar_one() == before
    assert not [n for n, _ in delivered if n.startswith("invoice.")]


def test_a_long_id_list_stays_within_parameter_limits(session, now, invoices):  # type: ignore[no-untyped-def]
    ids = list(range(10**8, 10**8 + 40_000)) + [invoices["new"][0]]  # far past SQLite's bound-parameter limit
    assert transition_many(session, INVOICE, Invoice.__table__, ids, "settle", now=now, actor=SYSTEM) == [invoices["new"][0]]
    assert _states(session, [invoices["new"][0]]) == {invoices["new"][0]: "paid"}


def test_the_same_rules_as_transition_and_nothing_changes_when_refused(session, now, invoices):  # type: ignore[no-untyped-def]
    ids = [inv for inv, _ in invoices.values()]
    before = _states(session, ids)
    with pytest.raises(TransitionNotAllowed, match="done by the system, not by a person"):
        transition_many(session, INVOICE, Invoice, ids, "settle", now=now, actor=PERSON)
    with pytest.raises(TransitionNotAllowed, match="not an action"):
        transition_many(session, INVOICE, Invoice, ids, "explode", now=now, actor=SYSTEM)
    with pytest.raises(ActionNotPermitted, match="billing.approve"):
        transition_many(session, INVOICE, Invoice, ids, "hold", now=now, actor=Actor(name="agent", roles=frozenset({"second_line_agent"})))
    needs_reason = Lifecycle(name="invoice", states=InvoiceState, transitions=INVOICE.transitions, needs_reason={"hold"})
    with pytest.raises(ReasonRequired):
        transition_many(session, needs_reason, Invoice, ids, "hold", now=now, actor=PERSON, reason="  ")
    with pytest.raises(FourEyesRequired, match="cannot be done in bulk"):
        transition_many(session, BILL_RUN, "bill_run", [1], "approve", now=now, actor=PERSON)
    assert _states(session, ids) == before
    assert _audits(session, "settle") == [] and _audits(session, "hold") == []


def test_a_person_with_the_permission_moves_many_at_once(session, now, invoices):  # type: ignore[no-untyped-def]
    ids = [invoices["new"][0], invoices["sent"][0]]
    assert transition_many(session, INVOICE, Invoice, ids, "hold", now=now, actor=PERSON, reason="disputed") == [invoices["new"][0]]
    assert _states(session, ids) == {invoices["new"][0]: "onHold", invoices["sent"][0]: "sent"}  # hold is not allowed from sent


def test_billing_settles_a_payments_batch_set_based_and_a_repeat_changes_nothing(session, now, invoices, delivered):  # type: ignore[no-untyped-def]
    ids = [invoices[s][0] for s in ("new", "sent", "paid")]
    payload = {"ids": ids, "account_ids": [invoices[s][1] for s in ("new", "sent", "paid")]}
    domain_events.publish(session, "payments.invoices_settled", payload, now=now, actor=SYSTEM)
    assert set(_states(session, ids).values()) == {"paid"}
    domain_events.publish(session, "payments.invoices_settled", payload, now=now, actor=SYSTEM)  # a repeat changes nothing
    session.commit()
    assert sorted(int(a.entity_id) for a in _audits(session, "settle")) == sorted(ids[:2])
    assert [p["ids"] for n, p in delivered if n == "invoice.paid"] == [sorted(ids[:2])]


def test_billing_refuses_a_batch_with_a_draft_invoice_and_the_payment_rolls_back(session, now, invoices):  # type: ignore[no-untyped-def]
    ids = [invoices[s][0] for s in ("new", "draft")]
    with pytest.raises(InvoiceTransitionNotAllowed, match="while it is draft"):
        domain_events.publish(session, "payments.invoices_settled", {"ids": ids, "account_ids": [invoices[s][1] for s in ("new", "draft")]},
                              now=now, actor=SYSTEM)
    session.rollback()
    assert _states(session, ids) == {invoices["new"][0]: "new", invoices["draft"][0]: "draft"}
    assert _audits(session, "settle") == []


def test_billing_refuses_a_batch_naming_an_invoice_that_does_not_exist(session, now, invoices):  # type: ignore[no-untyped-def]
    with pytest.raises(NotFound, match="does not exist"):
        domain_events.publish(session, "payments.invoices_settled", {"ids": [invoices["new"][0], 10**9], "account_ids": [invoices["new"][1], 1]},
                              now=now, actor=SYSTEM)
    session.rollback()
    assert _states(session, [invoices["new"][0]]) == {invoices["new"][0]: "new"}


def test_a_statement_import_announces_its_settled_invoices_once_and_billing_moves_them_to_paid(factory, now, delivered):  # type: ignore[no-untyped-def]
    from opsline.payments import imports
    from payments_helpers import account_with_invoices, mt940

    with factory.begin() as s:
        t = account_with_invoices(s, now=now, name="Thabo Nkosi", amounts=[59900, 59900])
        l = account_with_invoices(s, now=now, name="Lerato Mokoena", amounts=[79900])
    clerk = Actor(name="clerk", roles=frozenset({"debtors_clerk"}))
    with factory.begin() as s:
        imports.import_statement(s, data=mt940(lines=[("261120", 59900, "B1", f"/REMI/{t['invoice_numbers'][0]}"),
                                                      ("261120", 79900, "B2", f"/REMI/{l['invoice_numbers'][0]}")]),
                                 filename="st.sta", now=now, actor=clerk)
    settled = sorted([t["invoices"][0], l["invoices"][0]])
    batches = [p for n, p in delivered if n == "payments.invoices_settled"]
    assert [b["ids"] for b in batches] == [settled]
    assert dict(zip(batches[0]["ids"], batches[0]["account_ids"])) == {t["invoices"][0]: t["id"], l["invoices"][0]: l["id"]}
    assert not [n for n, _ in delivered if n == "payments.invoice_settled"]
    with factory() as s:
        assert _states(s, settled + [t["invoices"][1]]) == {settled[0]: "paid", settled[1]: "paid", t["invoices"][1]: "new"}
        assert sorted(int(a.entity_id) for a in _audits(s, "settle")) == settled
