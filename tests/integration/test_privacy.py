"""POPIA: a person's data export holds their rows and nobody else's; erasure needs a second person, is refused while
money or work is open (saying why), replaces the personal data in the customer tables and keeps the financial records."""

from __future__ import annotations

import json
import zipfile
from datetime import date, timedelta
from io import BytesIO

import pytest
from sqlalchemy import func, select

from opsline.billing.invoicing.samples import make_finalised_invoice
from opsline.billing.models import Invoice, LedgerEntry
from opsline.core.errors import Conflict, InvalidInput
from opsline.core.events import Actor, AuditEvent
from opsline.core.lifecycle import ActionNotPermitted, FourEyesRequired
from opsline.customers import privacy, service
from opsline.customers.models import Account, Contact, Memo, Party, Site
from opsline.customers.schemas import AccountIn, ContactIn, MemoIn, SiteIn

CLERK = Actor(name="sipho", roles=frozenset({"second_line_agent"}))
MANAGER = Actor(name="naledi", roles=frozenset({"service_manager"}))
PERSONAL = ("Ayesha Pillay", "ayesha@example.co.za", "+27834445555", "7 Acacia Road", "8001015009087")


def _person(session, now, *, name: str, email: str, phone: str, street: str, id_number: str | None = None) -> int:  # type: ignore[no-untyped-def]
    acc = service.create_account(session, data=AccountIn(
        name=name, given_name=name.split()[0], family_name=name.split()[-1], email=email, phone=phone, billing_line1=street, billing_city="Durban",
        sites=[SiteIn(line1=street, city="Durban", latitude=-29.85, longitude=31.02)],
        contacts=[ContactIn(name=name, email=email, phone=phone, is_primary=True)]), now=now, actor=CLERK)
    session.get(Party, acc.party_id).id_number = id_number
    service.add_memo(session, account_id=acc.id, data=MemoIn(body=f"{name} called about the router"), now=now, actor=CLERK)
    inv = make_finalised_invoice(session, account_id=acc.id, now=now, period_start=date(2026, 10, 1), period_end=date(2026, 10, 31),
                                 lines=[{"description": "Fibre 100", "amount_minor": 60000, "kind": "recurring"}])
    total = session.get(Invoice, inv).total_minor
    session.add(LedgerEntry(account_id=acc.id, kind="payment", ref_type="payment", ref_id=inv, amount_minor=-total, currency="ZAR", posted_at=now,
                            description="EFT"))
    session.flush()
    return acc.id


@pytest.fixture
def people(session, now):  # type: ignore[no-untyped-def]
    ayesha = _person(session, now, name=PERSONAL[0], email=PERSONAL[1], phone=PERSONAL[2], street=PERSONAL[3], id_number=PERSONAL[4])
    other = _person(session, now, name="Johan Botha", email="johan@example.co.za", phone="+27825550000", street="9 Kloof Street")
    session.commit()
    return {"ayesha": ayesha, "other": other}


def test_the_export_holds_the_persons_rows_and_nothing_of_another_customer(session, now, people):
    data = privacy.collect(session, account_id=people["ayesha"])
    text = json.dumps(data, default=str)
    for value in PERSONAL:
        assert value in text, value
    assert "Johan" not in text and "johan@example.co.za" not in text and "Kloof" not in text
    sections = data["sections"]
    assert len(sections["Accounts"]["rows"]) == 1 and len(sections["Contacts"]["rows"]) == 1 and len(sections["Sites"]["rows"]) == 1
    assert len(sections["Invoices"]["rows"]) == 1 and len(sections["Memos"]["rows"]) == 1


def test_the_export_comes_as_json_or_a_workbook_and_is_audited(session, now, people):
    name, media, body = privacy.export_person(session, account_id=people["ayesha"], fmt="json", now=now, actor=CLERK)
    assert media == "application/json" and name.endswith(".json") and PERSONAL[1] in json.loads(body)["sections"]["Accounts"]["rows"][0]
    name, media, body = privacy.export_person(session, account_id=people["ayesha"], fmt="xlsx", now=now, actor=CLERK)
    with zipfile.ZipFile(BytesIO(body)) as z:
        workbook, strings = z.read("xl/workbook.xml").decode(), z.read("xl/sharedStrings.xml").decode()
    assert all(f'name="{t}"' in workbook for t in ("Party", "Accounts", "Contacts", "Sites", "Invoices", "Memos"))
    assert PERSONAL[1] in strings and "johan@example.co.za" not in strings
    with pytest.raises(InvalidInput) as exc:
        privacy.export_person(session, account_id=people["ayesha"], fmt="pdf", now=now, actor=CLERK)
    assert exc.value.field == "format"
    exported = session.scalars(select(AuditEvent.actor).where(AuditEvent.action == "privacy_exported")).all()
    assert exported == ["sipho", "sipho"]


def test_erasure_needs_a_second_person_with_the_permission(session, now, people):
    req = privacy.request_erasure(session, account_id=people["ayesha"], reason="email of 20 Nov, ref POPIA-7", now=now, actor=CLERK)
    session.commit()
    with pytest.raises(FourEyesRequired):
        privacy.approve_erasure(session, request_id=req.id, now=now, actor=Actor(name="sipho", roles=frozenset({"service_manager"})))
    session.rollback()
    with pytest.raises(ActionNotPermitted):
        privacy.approve_erasure(session, request_id=req.id, now=now, actor=Actor(name="thandi", roles=frozenset({"billing_analyst"})))
    session.rollback()
    assert session.get(Account, people["ayesha"]).email == PERSONAL[1]
    assert privacy.get_request(session, request_id=req.id).state == "requested"


def test_erasure_replaces_the_personal_data_and_keeps_invoices_ledger_and_audit(session, now, people):
    acc_id = people["ayesha"]
    party_id = session.get(Account, acc_id).party_id
    invoices_before = session.execute(select(Invoice.id, Invoice.number, Invoice.total_minor).where(Invoice.account_id == acc_id)).all()
    ledger_before = session.execute(select(LedgerEntry.id, LedgerEntry.amount_minor, LedgerEntry.posted_at).where(LedgerEntry.account_id == acc_id)).all()
    audit_before = session.scalar(select(func.count()).select_from(AuditEvent))
    req = privacy.request_erasure(session, account_id=acc_id, reason="letter of 21 Nov", now=now, actor=CLERK)
    counts = privacy.approve_erasure(session, request_id=req.id, now=now + timedelta(hours=1), actor=MANAGER)
    session.commit()
    assert counts == {"party": 1, "account": 1, "contact": 1, "site": 1, "memo": 1}
    rows = [session.get(Party, party_id), session.get(Account, acc_id), *session.scalars(select(Contact).where(Contact.account_id == acc_id)),
            *session.scalars(select(Site).where(Site.account_id == acc_id)), *session.scalars(select(Memo).where(Memo.account_id == acc_id))]
    dump = " ".join(str({c.key: getattr(r, c.key) for c in r.__mapper__.column_attrs}) for r in rows)
    for value in PERSONAL + ("Ayesha", "Pillay", "-29.85"):
        assert value not in dump, value
    assert f"erased-{req.id}" in dump
    acc = session.get(Account, acc_id)
    assert acc.account_number and acc.currency == "ZAR" and acc.version == 2
    assert session.execute(select(Invoice.id, Invoice.number, Invoice.total_minor).where(Invoice.account_id == acc_id)).all() == invoices_before
    assert session.execute(select(LedgerEntry.id, LedgerEntry.amount_minor, LedgerEntry.posted_at).where(LedgerEntry.account_id == acc_id)).all() == ledger_before
    assert session.scalar(select(func.count()).select_from(AuditEvent)) > audit_before
    other = session.get(Account, people["other"])
    assert other.email == "johan@example.co.za" and other.name == "Johan Botha"
    done = privacy.get_request(session, request_id=req.id)
    assert (done.state, done.decided_by, done.erased) == ("erased", "naledi", counts)
    erased_audit = session.scalars(select(AuditEvent).where(AuditEvent.action == "erased")).one()
    assert PERSONAL[1] not in json.dumps(erased_audit.after) and erased_audit.actor == "naledi"
    with pytest.raises(Conflict, match="already erased"):
        privacy.request_erasure(session, account_id=acc_id, reason="again", now=now, actor=CLERK)


def test_erasure_is_refused_while_money_is_owed_naming_the_balance_and_nothing_changes(session, now, people):
    acc_id = people["ayesha"]
    session.add(LedgerEntry(account_id=acc_id, kind="adjustment", ref_type="adjustment", ref_id=1, amount_minor=12345, currency="ZAR", posted_at=now, description="fee"))
    session.commit()
    with pytest.raises(privacy.UnableToErase) as exc:
        privacy.request_erasure(session, account_id=acc_id, reason="phone call", now=now, actor=CLERK)
    session.rollback()
    assert "ZAR 123.45" in exc.value.detail and "owed by the customer" in exc.value.detail and exc.value.status == 409
    assert session.scalar(select(func.count()).select_from(privacy.PrivacyRequest)) == 0


def test_erasure_is_refused_while_a_case_is_open_even_at_approval(session, now, people, actor):
    from opsline.cases import service as cases
    from opsline.cases.models import CaseCategory
    from opsline.cases.schemas import CaseIn

    acc_id = people["ayesha"]
    req = privacy.request_erasure(session, account_id=acc_id, reason="web form", now=now, actor=CLERK)
    category = session.scalars(select(CaseCategory.code)).first()
    cases.open_case(session, data=CaseIn(account_id=acc_id, category_code=category, subject="router"), now=now, actor=actor)
    session.commit()
    with pytest.raises(privacy.UnableToErase, match="1 case"):
        privacy.approve_erasure(session, request_id=req.id, now=now, actor=MANAGER)
    session.rollback()
    assert session.get(Account, acc_id).email == PERSONAL[1]
    assert privacy.get_request(session, request_id=req.id).state == "requested"


def test_a_request_needs_a_reason_and_only_one_may_wait(session, now, people):
    with pytest.raises(InvalidInput) as exc:
        privacy.request_erasure(session, account_id=people["ayesha"], reason="  ", now=now, actor=CLERK)
    assert exc.value.field == "reason"
    privacy.request_erasure(session, account_id=people["ayesha"], reason="email", now=now, actor=CLERK)
    with pytest.raises(Conflict, match="already waiting"):
        privacy.request_erasure(session, account_id=people["ayesha"], reason="email again", now=now, actor=CLERK)


def test_erasure_redacts_memo_bodies_while_memos_stay_append_only(session, now, people):
    from sqlalchemy import delete, update
    from sqlalchemy.exc import DBAPIError

    acc_id = people["ayesha"]
    req = privacy.request_erasure(session, account_id=acc_id, reason="email", now=now, actor=CLERK)
    assert privacy.approve_erasure(session, request_id=req.id, now=now, actor=MANAGER)["memo"] == 1
    session.commit()
    memo = session.scalars(select(Memo).where(Memo.account_id == acc_id)).one()
    assert memo.body == f"[erased under privacy request {req.id}]" and memo.author == "sipho"
    assert session.scalars(select(Memo.body).where(Memo.account_id == people["other"])).one() == "Johan Botha called about the router"
    for stmt in (update(Memo).where(Memo.id == memo.id).values(body="rewritten history"),
                 update(Memo).where(Memo.id == memo.id).values(body="[erased but the author changed]", author="someone"),
                 delete(Memo).where(Memo.id == memo.id)):
        with pytest.raises(DBAPIError, match="never edited or deleted"):
            session.execute(stmt)
        session.rollback()
