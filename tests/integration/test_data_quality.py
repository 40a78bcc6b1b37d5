"""Customer data quality: counts and worklists per check, the export, the fixes (E.164 phones, site coverage), and the
"confirm or update details" step that saves what changed and leaves a memo; bad input changes nothing."""

from datetime import timedelta

import pytest
from sqlalchemy import func, select, text

from opsline.core.errors import InvalidInput, StaleVersion
from opsline.core.events import Actor, AuditEvent
from opsline.core.exports import export_table
from opsline.customers import quality, service as customers
from opsline.customers.models import Account, Memo, Site
from opsline.customers.schemas import AccountIn, SiteIn

AGENT = Actor(name="agent.sipho", roles=frozenset({"second_line_agent"}))


def _acc(session, now, name, *, email=None, phone=None, coverage=("vumatel",)):  # type: ignore[no-untyped-def]
    acc = customers.create_account(session, data=AccountIn(name=name, email=email, phone=phone, sites=[SiteIn(line1="1 Main Road", city="Durban",
                                                                                                            fno_coverage=list(coverage))]),
                                   now=now, actor=AGENT)
    session.flush()
    return acc


def test_checks_count_and_list_missing_details_bad_phones_and_uncovered_sites(session, now):
    good = _acc(session, now, "Good Customer", email="good@example.co.za", phone="082 555 0101")
    no_email = _acc(session, now, "No Email", phone="+27825550102")
    no_phone = _acc(session, now, "No Phone", email="nophone@example.co.za", coverage=())
    spelled = _acc(session, now, "Spelled Phone", email="s@example.co.za", phone="+27825550103")
    broken = _acc(session, now, "Broken Phone", email="b@example.co.za", phone="+27825550104")
    # numbers typed in before validation existed (the bulk loader does not normalise)
    session.execute(text("UPDATE account SET phone = :p WHERE id = :a"), {"p": "082 555 0103", "a": spelled.id})
    session.execute(text("UPDATE account SET phone = :p WHERE id = :a"), {"p": "+2712345", "a": broken.id})
    closed = _acc(session, now, "Closed One")
    session.execute(text("UPDATE account SET status = 'closed' WHERE id = :a"), {"a": closed.id})
    c = quality.counts(session)
    assert c == {"missing_email": 1, "missing_phone": 1, "invalid_phone": 2, "site_no_coverage": 1}
    assert [r["account_id"] for r in quality.worklist(session, check="missing_email")] == [no_email.id]
    assert [r["account_id"] for r in quality.worklist(session, check="missing_phone")] == [no_phone.id]
    bad = {r["account_id"]: r for r in quality.worklist(session, check="invalid_phone")}
    assert bad[spelled.id]["fix"] == "+27825550103" and bad[spelled.id]["problem"] == "not in E.164 form"
    assert bad[broken.id]["fix"] is None and "not a valid number" in bad[broken.id]["problem"]
    (site_row,) = quality.worklist(session, check="site_no_coverage")
    assert site_row["account_id"] == no_phone.id and site_row["site_id"]
    assert good.id not in bad
    header, rows = quality.export_rows(session, check="invalid_phone")
    name, _, body = export_table("csv", name="dq", header=header, rows=rows)
    assert b"'+2712345" in body and b"not a valid number" in body  # through the safe writer: a leading + is neutralised
    cards = {card.title: card.count for card in quality.home(session, now=now, actor=AGENT, tz=None)}
    assert cards["Invalid phone numbers"] == 2 and cards["Sites without network coverage"] == 1
    with pytest.raises(quality.UnknownCheck):
        quality.worklist(session, check="vibes")


def test_fixes_rewrite_only_fixable_phones_and_record_site_coverage_with_audit(session, now):
    spelled = _acc(session, now, "Spelled Phone", email="s@example.co.za", phone="+27825550103")
    broken = _acc(session, now, "Broken Phone", email="b@example.co.za", phone="+27825550104")
    session.execute(text("UPDATE account SET phone = '082 555 0103' WHERE id = :a"), {"a": spelled.id})
    session.execute(text("UPDATE account SET phone = '+2712345' WHERE id = :a"), {"a": broken.id})
    session.expire_all()
    assert quality.normalise_phones(session, account_ids=None, now=now, actor=AGENT) == {"fixed": 1, "left": 1}
    assert session.get(Account, spelled.id).phone == "+27825550103" and session.get(Account, broken.id).phone == "+2712345"
    ev = session.execute(select(AuditEvent).where(AuditEvent.account_id == spelled.id, AuditEvent.action == "updated")).scalar_one()
    assert ev.before == {"phone": "082 555 0103"} and ev.after == {"phone": "+27825550103"}
    uncovered = _acc(session, now, "Rural", email="r@example.co.za", phone="+27825550105", coverage=())
    site_id = session.execute(select(Site.id).where(Site.account_id == uncovered.id)).scalar_one()
    with pytest.raises(InvalidInput, match="not a partner code"):
        quality.set_site_coverage(session, site_id=site_id, partners=["nonet"], now=now, actor=AGENT)
    with pytest.raises(InvalidInput, match="at least one"):
        quality.set_site_coverage(session, site_id=site_id, partners=[" "], now=now, actor=AGENT)
    assert session.get(Site, site_id).fno_coverage == []
    quality.set_site_coverage(session, site_id=site_id, partners=["Openserve"], now=now, actor=AGENT)
    assert session.get(Site, site_id).fno_coverage == ["openserve"] and quality.counts(session)["site_no_coverage"] == 0


def test_confirming_details_on_a_contact_saves_changes_and_writes_a_memo_of_what_changed(session, now):
    acc = _acc(session, now, "Lerato Dlamini", email="lerato@example.co.za", phone="+27825550106")
    res = quality.confirm_details(session, account_id=acc.id, version=acc.version, values={"email": "lerato@example.co.za", "phone": "083 555 0107"},
                                  contact="case C-000042", now=now, actor=AGENT)
    assert res["changed"] == {"phone": ["+27825550106", "+27835550107"]}
    memo = session.get(Memo, res["memo_id"])
    assert "case C-000042" in memo.body and "phone +27825550106 → +27835550107" in memo.body and memo.category == "support"
    acc = session.get(Account, acc.id)
    assert acc.phone == "+27835550107"
    res2 = quality.confirm_details(session, account_id=acc.id, version=acc.version, values={"email": "lerato@example.co.za", "phone": "+27835550107"},
                                   contact="call", now=now + timedelta(days=1), actor=AGENT)
    assert res2["changed"] == {} and "confirmed unchanged" in session.get(Memo, res2["memo_id"]).body
    memos = session.execute(select(func.count()).select_from(Memo).where(Memo.account_id == acc.id)).scalar_one()
    with pytest.raises(InvalidInput, match="email"):
        quality.confirm_details(session, account_id=acc.id, version=acc.version, values={"email": "not-an-email"}, contact="call", now=now, actor=AGENT)
    with pytest.raises(StaleVersion):
        quality.confirm_details(session, account_id=acc.id, version=acc.version - 1, values={"phone": "+27835550107"}, contact="call", now=now, actor=AGENT)
    with pytest.raises(InvalidInput, match="cannot be confirmed"):
        quality.confirm_details(session, account_id=acc.id, version=acc.version, values={"currency": "USD"}, contact="call", now=now, actor=AGENT)
    assert session.execute(select(func.count()).select_from(Memo).where(Memo.account_id == acc.id)).scalar_one() == memos
    assert session.get(Account, acc.id).phone == "+27835550107"
