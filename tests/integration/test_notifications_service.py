"""Notifications service: rendering from stored templates, strict variables, opt-outs, caps and quiet hours,
approval with four eyes, and the account timeline entry with the message text."""

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from opsline.core.events import Actor, AuditEvent
from opsline.core.jobs import Job
from opsline.core.lifecycle import ActionNotPermitted, FourEyesRequired, ReasonRequired
from opsline.core.localtime import zone
from opsline.customers import service as customers
from opsline.customers.schemas import AccountIn
from opsline.notifications import service
from opsline.notifications.models import Message, MessageState

TZ = zone("Africa/Johannesburg")


def _account(session, now, actor, **kw):  # type: ignore[no-untyped-def]
    data = {"name": "Thandi Nkosi", "email": "thandi@example.co.za", "phone": "082 555 1234", "billing_line1": "1 Main Road",
            "billing_city": "Johannesburg", "billing_postal_code": "2196"} | kw
    acc = customers.create_account(session, data=AccountIn(**data), now=now, actor=actor)
    session.flush()
    return acc


def _count(session, model) -> int:  # type: ignore[no-untyped-def]
    return session.execute(select(func.count()).select_from(model)).scalar_one()


def test_acknowledgement_is_rendered_from_the_stored_template_and_queued_with_a_delivery_job(session, now, actor):
    acc = _account(session, now, actor)
    mid = service.send(session, event="case.acknowledged", account_id=acc.id, context={"reference": "CS-000042", "summary": "No sync"},
                       now=now, actor=actor, subject_ref="case:42", tz=TZ)
    msg = session.get(Message, mid)
    assert msg.state == MessageState.QUEUED and msg.to_addr == "thandi@example.co.za"
    assert msg.subject == "We have received your complaint (CS-000042)"
    assert "Dear Thandi Nkosi" in msg.body and "CS-000042" in msg.body and "14 days" in msg.body
    job = session.execute(select(Job).where(Job.kind == "notifications.deliver")).scalar_one()
    assert job.payload == {"message_id": mid} and job.run_at == now


def test_a_template_referring_to_an_unknown_variable_is_a_clear_error_and_nothing_is_written(session, now, actor):
    acc = _account(session, now, actor)
    before = (_count(session, Message), _count(session, Job), _count(session, AuditEvent))
    with pytest.raises(service.TemplateRenderError) as err:
        service.send(session, event="case.acknowledged", account_id=acc.id, context={"summary": "no reference given"}, now=now, actor=actor)
    assert "'reference' is undefined" in err.value.detail and err.value.status == 422
    assert (_count(session, Message), _count(session, Job), _count(session, AuditEvent)) == before
