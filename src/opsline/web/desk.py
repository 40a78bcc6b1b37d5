"""Desk home pages: each role lands on its own desk, showing the work waiting for it as cards gathered from every
area's `home(session, *, now, actor, tz)`. An area whose cards fail is shown as unavailable (and logged); the rest of
the page still renders."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy.orm import Session

from opsline.areas import Area, HomeCard, load_areas
from opsline.core.errors import NotFound, PermissionDenied
from opsline.users.roles import ROLE_LABELS, Role
from opsline.web.deps import DB, Now, Principal, Tz, require
from opsline.web.templating import render

log = logging.getLogger("opsline.web.desk")
router = APIRouter(include_in_schema=False)

DESK_PERMISSION = "desks.view"
DESK_ORDER = [r.value for r in Role]  # the order desks are offered in (admin first)
LABELS = {r.value: label for r, label in ROLE_LABELS.items()}
TONES = {"normal", "warn", "danger"}


def default_desk(roles: frozenset[str]) -> str:
    """The desk a user lands on: admin's overview for administrators, else their first role in desk order."""
    for role in DESK_ORDER:
        if role in roles:
            return role
    raise PermissionDenied("your account has no desk; ask an administrator to give you a role")


def desks_for(principal: Principal) -> list[str]:
    """The desks a user may open: their own roles; every desk for an administrator."""
    if Role.ADMIN.value in principal.roles:
        return list(DESK_ORDER)
    return [r for r in DESK_ORDER if r in principal.roles]


@router.get("/", response_model=None)
def home(principal: Annotated[Principal, Depends(require(DESK_PERMISSION))]) -> RedirectResponse:
    return RedirectResponse(f"/desk/{default_desk(principal.roles)}", status_code=303)


@router.get("/desk", response_model=None)
def my_desk(principal: Annotated[Principal, Depends(require(DESK_PERMISSION))]) -> RedirectResponse:
    return RedirectResponse(f"/desk/{default_desk(principal.roles)}", status_code=303)


@router.get("/desk/{role}", response_class=HTMLResponse)
def desk_page(request: Request, role: str, db: DB, now: Now, tz: Tz, principal: Annotated[Principal, Depends(require(DESK_PERMISSION))]) -> HTMLResponse:
    """A desk's home page. Raises NotFound (no such desk) or PermissionDenied (not one of your desks)."""
    if role not in LABELS:
        raise NotFound(f"there is no '{role}' desk; desks are {', '.join(DESK_ORDER)}")
    mine = desks_for(principal)
    if role not in mine:
        raise PermissionDenied(f"the {LABELS[role]} desk is for that role; yours: {', '.join(LABELS[r] for r in mine)}")
    data = desk_cards(db, desk=role, principal=principal, now=now, tz=tz, areas=load_areas())
    switcher = [{"role": r, "label": LABELS[r], "active": r == role} for r in mine]
    return render(request, "desk.html", data | {"desk": role, "desk_label": LABELS[role], "switcher": switcher, "now": now}, principal=principal)


def desk_cards(session: Session, *, desk: str, principal: Principal, now: datetime, tz: ZoneInfo, areas: tuple[Area, ...]) -> dict[str, Any]:
    """The cards for one desk, as plain data: sections (admin's overview has one per desk), areas that failed, and
    whether any card has a chart (Chart.js is loaded only then). Each area runs in its own savepoint, so a failing
    area cannot spoil the transaction for the others."""
    gathered: list[dict[str, Any]] = []
    unavailable: list[dict[str, str]] = []
    for area in areas:
        if area.home is None or (desk != Role.ADMIN.value and area.home_desks is not None and desk not in area.home_desks):
            continue  # only the areas with cards for this desk run their queries
        try:
            with session.begin_nested():
                cards = [_card(c, area.name) for c in area.home(session, now=now, actor=principal.actor, tz=tz)]
        except Exception:  # one area's failure must not take the desk down; it is logged with its traceback
            log.exception("desk cards of area %r failed for desk %s", area.name, desk)
            unavailable.append({"area": area.name, "label": area.name.replace("_", " ").capitalize()})
            continue
        gathered.extend(c for c in cards if principal.can(c["permission"]))
    gathered.sort(key=lambda c: (c["order"], c["title"]))
    if desk == Role.ADMIN.value:
        sections = []
        for role in DESK_ORDER:
            cards = [c for c in gathered if c["desks"] and c["desks"][0] == role]
            if cards:
                sections.append({"role": role, "label": LABELS[role], "cards": cards})
        shown = [c for s in sections for c in s["cards"]]
        other = [c for c in gathered if c not in shown]
        if other:
            sections.append({"role": "", "label": "Other", "cards": other})
    else:
        cards = [c for c in gathered if desk in c["desks"]]
        sections = [{"role": desk, "label": LABELS[desk], "cards": cards}] if cards else []
    return {
        "sections": sections,
        "unavailable": unavailable,
        "card_count": sum(len(s["cards"]) for s in sections),
        "has_charts": any(c["chart"] for s in sections for c in s["cards"]),
    }


def _card(card: HomeCard, area: str) -> dict[str, Any]:
    if not isinstance(card, HomeCard):
        raise TypeError(f"area {area!r} returned {type(card).__name__}, not HomeCard")
    href = card.href if card.href.startswith("/") and not card.href.startswith("//") else ""
    count = f"{card.count:,}" if isinstance(card.count, int) and not isinstance(card.count, bool) else str(card.count)
    return {
        "area": area, "desks": tuple(card.desks), "title": card.title, "count": card.count, "count_text": count,
        "href": href, "permission": card.permission, "hint": card.hint, "tone": card.tone if card.tone in TONES else "normal",
        "chart": card.chart or None, "order": card.order,
    }
