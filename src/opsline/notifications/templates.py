"""Message templates as data: Jinja2 text in a sandbox with strict undefined, chosen by event, channel and language."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from datetime import datetime
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateSyntaxError, UndefinedError
from jinja2.sandbox import SandboxedEnvironment, SecurityError
from sqlalchemy import select
from sqlalchemy.orm import Session

from opsline.core import events
from opsline.core.errors import Conflict, InvalidInput, NotFound, StaleVersion
from opsline.core.events import Actor
from opsline.notifications.models import CHANNELS, MessageTemplate

# Text messages, not HTML: no autoescaping; the sandbox keeps operator-edited templates away from Python internals.
_ENV = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False, trim_blocks=True,
                            lstrip_blocks=True)
_ENV.filters["money"] = lambda v: v.format() if hasattr(v, "format") else str(v)


class TemplateRenderError(InvalidInput):
    """A template does not render: unknown variable, syntax error or a forbidden operation."""

    title = "Template does not render"
    type_slug = "template-render-error"


class NoTemplate(InvalidInput):
    title = "No template for this message"
    type_slug = "no-template"


@dataclass(frozen=True)
class Rendered:
    subject: str
    body: str
    template_id: int
    template_version: int
    language: str


@lru_cache(maxsize=512)
def _compiled(source: str) -> Template:
    # Compiling is most of the cost of a render; a template's text is its cache key, so an edit is a new entry.
    return _ENV.from_string(source)


def _render_text(source: str, context: dict[str, Any], *, where: str) -> str:
    try:
        return _compiled(source).render(**context)
    except UndefinedError as exc:
        raise TemplateRenderError(f"{where}: {exc.message}; the context supplies {sorted(context) or 'nothing'}",
                                  field="context", extra={"missing": _missing_name(exc.message)}) from exc
    except TemplateSyntaxError as exc:
        raise TemplateRenderError(f"{where}: syntax error on line {exc.lineno}: {exc.message}", field="body") from exc
    except SecurityError as exc:
        raise TemplateRenderError(f"{where}: not allowed in a template: {exc}", field="body") from exc


def _missing_name(message: str | None) -> str | None:
    # Jinja says "'reference' is undefined" or "'dict object' has no attribute 'x'"
    if not message:
        return None
    parts = message.split("'")
    return parts[-2] if len(parts) >= 3 else None


def render_source(*, subject: str, body: str, context: dict[str, Any], where: str = "template") -> tuple[str, str]:
    """Render a subject and body pair. Raises TemplateRenderError."""
    return (_render_text(subject or "", context, where=f"{where} subject").strip(),
            _render_text(body, context, where=f"{where} body"))


def check_syntax(*, subject: str, body: str) -> None:
    """Raises TemplateRenderError when either part does not parse."""
    for part, src in (("subject", subject or ""), ("body", body)):
        try:
            _ENV.parse(src)
        except TemplateSyntaxError as exc:
            raise TemplateRenderError(f"{part}: syntax error on line {exc.lineno}: {exc.message}", field=part) from exc


def find_template(session: Session, *, event: str, channel: str, language: str, fallback_language: str) -> MessageTemplate:
    """The template for the language asked, else the fallback language. Raises NoTemplate."""
    rows = session.execute(select(MessageTemplate).where(
        MessageTemplate.event == event, MessageTemplate.channel == channel,
        MessageTemplate.language.in_({language, fallback_language}))).scalars().all()
    by_lang = {r.language: r for r in rows}
    tpl = by_lang.get(language) or by_lang.get(fallback_language)
    if tpl is None:
        raise NoTemplate(f"no {channel} template for event '{event}' in '{language}' or '{fallback_language}'",
                         field="event", extra={"event": event, "channel": channel})
    return tpl


def render(session: Session, *, event: str, channel: str, language: str, context: dict[str, Any],
           fallback_language: str = "en") -> Rendered:
    """Render the stored template for (event, channel, language) with `context`.
    Raises NoTemplate, TemplateRenderError (e.g. the template refers to a variable the context lacks)."""
    tpl = find_template(session, event=event, channel=channel, language=language, fallback_language=fallback_language)
    subject, body = render_source(subject=tpl.subject, body=tpl.body, context=context,
                                  where=f"template {tpl.event}/{tpl.channel}/{tpl.language}")
    return Rendered(subject=subject, body=body, template_id=tpl.id, template_version=tpl.version, language=tpl.language)


def ensure_template(session: Session, *, event: str, channel: str, language: str, subject: str, body: str, now: datetime,
                    description: str = "", sample_context: dict[str, Any] | None = None) -> int:
    """Create the template for (event, channel, language) if it does not exist yet (idempotent: an operator's edits
    are kept). Returns its id. Raises InvalidInput for an unknown channel, TemplateRenderError for a syntax error."""
    if channel not in CHANNELS:
        raise InvalidInput(f"unknown channel '{channel}' (one of {', '.join(CHANNELS)})", field="channel")
    check_syntax(subject=subject, body=body)
    tpl = session.execute(select(MessageTemplate).where(
        MessageTemplate.event == event, MessageTemplate.channel == channel, MessageTemplate.language == language)).scalar_one_or_none()
    if tpl is not None:
        if sample_context and not tpl.sample_context:
            tpl.sample_context = dict(sample_context)
        return tpl.id
    tpl = MessageTemplate(event=event, channel=channel, language=language, subject=subject, body=body, description=description,
                          sample_context=dict(sample_context or {}), version=1, created_at=now, updated_at=now,
                          updated_by="system:seed")
    session.add(tpl)
    session.flush()
    return tpl.id


def get_template(session: Session, *, template_id: int) -> MessageTemplate:
    tpl = session.get(MessageTemplate, template_id)
    if tpl is None:
        raise NotFound(f"template {template_id} not found")
    return tpl


def template_dict(t: MessageTemplate) -> dict[str, Any]:
    return {"id": t.id, "event": t.event, "channel": t.channel, "language": t.language, "subject": t.subject, "body": t.body,
            "description": t.description, "sample_context": t.sample_context or {}, "version": t.version,
            "updated_at": t.updated_at, "updated_by": t.updated_by}


def list_templates(session: Session, *, event: str | None = None) -> list[dict[str, Any]]:
    q = select(MessageTemplate).order_by(MessageTemplate.event, MessageTemplate.channel, MessageTemplate.language)
    if event:
        q = q.where(MessageTemplate.event.like(f"{event}%"))
    return [template_dict(t) for t in session.execute(q).scalars()]


def update_template(session: Session, *, template_id: int, subject: str, body: str, sample_context: dict[str, Any] | None,
                    version: int, now: datetime, actor: Actor) -> MessageTemplate:
    """Save an operator's edit. The new text must render with the sample context (so a template that refers to a
    variable no caller supplies is refused before anything is sent with it).
    Raises NotFound, StaleVersion (edited by someone else meanwhile), TemplateRenderError; nothing is saved then."""
    tpl = get_template(session, template_id=template_id)
    if tpl.version != version:
        raise StaleVersion(f"template {tpl.event}/{tpl.channel}/{tpl.language} was changed by {tpl.updated_by}; reload it",
                           extra={"version": tpl.version})
    if not body.strip():
        raise InvalidInput("the body must not be empty", field="body")
    if tpl.channel == "email" and not subject.strip():
        raise InvalidInput("an email template needs a subject", field="subject")
    ctx = dict(sample_context if sample_context is not None else tpl.sample_context or {})
    render_source(subject=subject, body=body, context=ctx, where="the edited template")
    before = {"subject": tpl.subject, "body": tpl.body, "version": tpl.version}
    tpl.subject, tpl.body, tpl.sample_context = subject, body, ctx
    tpl.version += 1
    tpl.updated_at, tpl.updated_by = now, actor.name
    events.record(session, now=now, actor=actor, entity_type="message_template", entity_id=tpl.id, action="edit",
                  before=before, after={"subject": subject, "body": body, "version": tpl.version})
    return tpl


def add_language(session: Session, *, template_id: int, language: str, now: datetime, actor: Actor) -> int:
    """Start a translation: a copy of the template for another language, to be edited. Returns the new id.
    Raises NotFound, InvalidInput (malformed language code), Conflict (that language exists already)."""
    tpl = get_template(session, template_id=template_id)
    language = (language or "").strip().lower()
    if not (2 <= len(language) <= 10) or not language.replace("-", "").isalpha():
        raise InvalidInput(f"'{language}' is not a language code (e.g. af, zu, xh)", field="language")
    exists = session.execute(select(MessageTemplate.id).where(MessageTemplate.event == tpl.event, MessageTemplate.channel == tpl.channel,
                                                              MessageTemplate.language == language)).scalar_one_or_none()
    if exists is not None:
        raise Conflict(f"{tpl.event}/{tpl.channel} already has a '{language}' template", field="language", extra={"template_id": exists})
    new = MessageTemplate(event=tpl.event, channel=tpl.channel, language=language, subject=tpl.subject, body=tpl.body,
                          description=tpl.description, sample_context=dict(tpl.sample_context or {}), version=1, created_at=now,
                          updated_at=now, updated_by=actor.name)
    session.add(new)
    session.flush()
    events.record(session, now=now, actor=actor, entity_type="message_template", entity_id=new.id, action="add_language",
                  after={"event": new.event, "channel": new.channel, "language": language, "copied_from": tpl.id})
    return new.id


def preview(session: Session, *, template_id: int, subject: str | None = None, body: str | None = None,
            context: dict[str, Any] | None = None) -> dict[str, Any]:
    """Render a stored template (or unsaved edited text) with a sample context. Never sends anything.
    Returns {"ok", "subject", "body", "error"}: a template that does not render is reported, not raised."""
    tpl = get_template(session, template_id=template_id)
    ctx = dict(context if context is not None else tpl.sample_context or {})
    try:
        s, b = render_source(subject=tpl.subject if subject is None else subject, body=tpl.body if body is None else body,
                             context=ctx, where="preview")
    except TemplateRenderError as exc:
        return {"ok": False, "subject": "", "body": "", "error": exc.detail}
    return {"ok": True, "subject": s, "body": b, "error": None}
