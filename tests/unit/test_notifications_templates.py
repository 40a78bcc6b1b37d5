"""Template rendering without a database: strict variables, syntax errors, the sandbox; SMS gateway answers
classified as retry-later or refused-for-good; an email carries its attachments."""

from datetime import datetime, timezone

import httpx
import pytest

from opsline.notifications.channels import DeliveryFailed, HttpSmsGateway, OutgoingFile, build_email
from opsline.notifications.templates import TemplateRenderError, check_syntax, render_source


def test_a_missing_variable_names_the_variable_and_what_the_context_had():
    with pytest.raises(TemplateRenderError) as err:
        render_source(subject="Ref {{ reference }}", body="x", context={"summary": "s"})
    assert err.value.extra["missing"] == "reference" and "['summary']" in err.value.detail
    assert err.value.problem()["type"].endswith("/template-render-error") and err.value.status == 422


def test_a_missing_attribute_of_a_supplied_object_is_an_error_too():
    with pytest.raises(TemplateRenderError) as err:
        render_source(subject="", body="Dear {{ account.nickname }}", context={"account": {"name": "A"}})
    assert err.value.extra["missing"] == "nickname"


def test_optional_parts_use_is_defined_and_render_without_the_variable():
    s, b = render_source(subject=" Hi ", body="A{% if extra is defined %} {{ extra }}{% endif %}.", context={})
    assert (s, b) == ("Hi", "A.")
    assert render_source(subject="", body="A{% if extra is defined %} {{ extra }}{% endif %}.", context={"extra": "B"})[1] == "A B."


def test_a_syntax_error_is_reported_with_its_line():
    with pytest.raises(TemplateRenderError) as err:
        check_syntax(subject="ok", body="line one\n{% if x %}unclosed")
    assert "line" in err.value.detail and err.value.field == "body"


def test_the_sandbox_refuses_python_internals():
    with pytest.raises(TemplateRenderError):
        render_source(subject="", body="{{ ''.__class__.__mro__[1].__subclasses__() }}", context={})


@pytest.mark.parametrize(("status", "permanent"), [(400, True), (404, True), (422, True), (408, False), (429, False), (500, False), (503, False)])
def test_gateway_answers_are_refused_for_good_or_retried(status: int, permanent: bool):
    gw = HttpSmsGateway(url="https://sms.example/send", token="", transport=httpx.MockTransport(lambda r: httpx.Response(status, text="no")))
    with pytest.raises(DeliveryFailed) as err:
        gw.send(to="+27820000000", body="hi", reference="msg1")
    assert err.value.permanent is permanent and str(status) in str(err.value)


def test_an_unreachable_gateway_is_retried():
    def boom(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(DeliveryFailed) as err:
        HttpSmsGateway(url="https://sms.example/send", token="t", transport=httpx.MockTransport(boom)).send(to="+2782", body="b", reference="r")
    assert err.value.permanent is False


def test_an_email_carries_its_text_and_attachments():
    m = build_email(mail_from="care@isp.example", to="a@b.example", subject="Invoice INV-1", body="Attached.",
                    created_at=datetime(2026, 11, 23, 7, 0, tzinfo=timezone.utc),
                    files=[OutgoingFile("INV-1.pdf", "application/pdf", b"%PDF-1.7")], message_id="<m1@isp.example>")
    assert m["Subject"] == "Invoice INV-1" and m["Message-ID"] == "<m1@isp.example>"
    parts = [(p.get_filename(), p.get_content_type(), p.get_payload(decode=True)) for p in m.iter_attachments()]
    assert parts == [("INV-1.pdf", "application/pdf", b"%PDF-1.7")]
    assert m.get_body(("plain",)).get_content().strip() == "Attached."
