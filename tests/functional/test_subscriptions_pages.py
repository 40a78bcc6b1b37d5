"""The report subscriptions page: a debtors manager sees only the reports they may read, an invalid address is shown
with its field and creates nothing, a good subscription is listed, sent now (a queued email with the file) and ended."""

from __future__ import annotations

from sqlalchemy import func, select

from opsline.notifications.models import Message, MessageAttachment
from opsline.subscriptions.models import ReportSubscription


def test_a_manager_subscribes_to_the_top_60_sends_it_now_and_ends_it(client_as, factory) -> None:
    c = client_as("debtors_manager")
    page = c.get("/reports/subscriptions")
    assert page.status_code == 200 and "Top 60 debtors" in page.text and "B2B SLA violations" not in page.text  # b2b.view is not theirs
    bad = c.post("/reports/subscriptions", data={"report": "debtors.top60", "frequency": "daily", "format": "xlsx", "recipients": "cfo@example.co.za, cfo@"})
    assert bad.status_code == 422 and "is not an email address" in bad.text and "cfo@example.co.za, cfo@" in bad.text
    with factory() as s:
        assert s.execute(select(func.count()).select_from(ReportSubscription)).scalar_one() == 0
    ok = c.post("/reports/subscriptions", data={"report": "debtors.top60", "frequency": "weekly", "format": "xlsx", "recipients": "cfo@example.co.za"},
                follow_redirects=False)
    assert ok.status_code == 303
    with factory() as s:
        sid = s.execute(select(ReportSubscription.id)).scalar_one()
    assert "cfo@example.co.za" in c.get("/reports/subscriptions").text
    sent = c.post(f"/reports/subscriptions/{sid}/send", follow_redirects=False)
    assert sent.status_code == 303 and "sent%2C+1+message" in sent.headers["location"]
    with factory() as s:
        msg = s.execute(select(Message)).scalar_one()
        assert msg.to_addr == "cfo@example.co.za" and msg.subject.startswith("Top 60 debtors")
        assert s.execute(select(MessageAttachment.filename)).scalar_one().endswith(".xlsx")
    assert c.post(f"/reports/subscriptions/{sid}/end", follow_redirects=False).status_code == 303
    with factory() as s:
        assert s.get(ReportSubscription, sid).active is False
    other = client_as("second_line_agent")
    assert other.post(f"/reports/subscriptions/{sid}/send").status_code == 404
