"""Jinja2 environment, formatting filters, and the render helper every page uses."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, select_autoescape

from opsline.config import DEFAULT_TIMEZONE
from opsline.core.money import Money
from opsline.users.roles import ROLE_LABELS, Role, allowed
from opsline.web.timeline import display_money, present_event

TEMPLATES_DIR = Path(__file__).parent / "templates"
_DICT_ATTRIBUTES = frozenset(dir(dict))


class PageEnvironment(Environment):
    """Jinja's environment for the pages, with one change: `row.name` on a plain dict (most page rows are dicts)
    looks the key up directly. Jinja's own lookup tries the attribute first and raises and catches an
    AttributeError for every such access, which was the largest single cost of rendering the work queue.
    The answer is the same: a dict attribute (`items`, `get`, ...) still wins over a key of the same name."""

    def getattr(self, obj: Any, attribute: str) -> Any:
        if type(obj) is dict and attribute not in _DICT_ATTRIBUTES:
            try:
                return obj[attribute]
            except KeyError:
                return self.undefined(obj=obj, name=attribute)
        return super().getattr(obj, attribute)


# Templates ship inside the package and change only with a new release (restart the server after editing one):
# no file-modification check on every render.
templates = Jinja2Templates(env=PageEnvironment(loader=FileSystemLoader(str(TEMPLATES_DIR)), autoescape=select_autoescape(), auto_reload=False))

def desks() -> list[tuple[str, str, str]]:
    """Desks (label, url, permission) from every area, then the background-work page."""
    from opsline.areas import load_areas

    return [d for a in load_areas() for d in a.desks] + [("Background work", "/jobs", "jobs.view")]


def fmt_dt(value: Any, tz: str = DEFAULT_TIMEZONE) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime):
        return value.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def fmt_money(value: Any, currency: str | None = None) -> str:
    if value is None:
        return ""
    if isinstance(value, Money):
        return str(value)
    if isinstance(value, int) and currency:
        return str(Money.from_minor(value, currency))
    if isinstance(value, (Decimal, str)) and currency:
        return str(Money.of(value, currency))
    return str(value)


templates.env.filters["dt"] = fmt_dt
def fmt_money_display(value: Any, currency: str | None = None) -> str:
    """Money for people: `R 5,175.00` from a Money or from minor units with their currency."""
    if value is None or value == "":
        return ""
    if isinstance(value, Money):
        return display_money(value)
    if isinstance(value, int) and currency:
        return display_money(Money.from_minor(value, currency))
    return fmt_money(value, currency)


def timeline_entry(event: dict[str, Any], currency: str | None = None) -> dict[str, Any]:
    return present_event(event, currency=currency)


templates.env.filters["money"] = fmt_money
templates.env.filters["money_display"] = fmt_money_display
templates.env.filters["timeline_entry"] = timeline_entry
templates.env.globals["ROLE_LABELS"] = {r.value: label for r, label in ROLE_LABELS.items()}


def render(request: Request, template: str, context: dict[str, Any], *, status_code: int = 200, principal: Any = None) -> HTMLResponse:
    tz = request.app.state.settings.timezone
    nav = []
    if principal is not None:
        nav = [{"label": label, "url": url, "active": request.url.path.startswith(url)} for label, url, perm in desks() if allowed(principal.roles, perm)]
        if Role.ADMIN.value in principal.roles:
            nav.append({"label": "Admin", "url": "/admin/", "active": False})
        nav.insert(0, {"label": "My desk", "url": "/desk", "active": request.url.path.startswith("/desk")})
    csrf = getattr(principal, "csrf_token", None) or getattr(request.state, "csrf_token", "") or ""
    ctx = {"request": request, "principal": principal, "desks": nav, "tz": tz, "csrf_token": csrf}
    ctx.update(context)
    return templates.TemplateResponse(request, template, ctx, status_code=status_code)


def render_error(request: Request, status: int, title: str, detail: str) -> HTMLResponse:
    return templates.TemplateResponse(request, "error.html", {"request": request, "principal": None, "desks": [], "tz": request.app.state.settings.timezone,
                                                              "status": status, "title": title, "detail": detail, "csrf_token": ""}, status_code=status)
