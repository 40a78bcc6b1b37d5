"""Area discovery. Each business area declares what it plugs in (routers, jobs, seeds, demo steps, desks,
account-page panels, admin views, CLI commands, permissions, lifecycles, the domain events it publishes, its
subscribers to other areas' events, and the cards it puts on desk home pages) in `<area>/area.py` as `AREA = Area(...)`.
The app, worker, CLI and demo read this one list, so adding an area never means editing shared wiring."""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable

import opsline


@dataclass(frozen=True)
class Area:
    name: str
    order: int  # dependency order: seeds and demo steps run in ascending order
    routers: Callable[[], list[Any]] | None = None  # -> list[fastapi.APIRouter]
    register_jobs: Callable[[Any], None] | None = None  # (Registry) -> None
    seed: Callable[..., None] | None = None  # seed(session, *, now) -> None, idempotent
    demo_steps: tuple[tuple[str, Callable[[Any], None]], ...] = ()  # (name, fn(DemoContext))
    desks: tuple[tuple[str, str, str], ...] = ()  # (label, url, permission)
    panels: Callable[[], list[Any]] | None = None  # -> list[opsline.web.panels.Panel]
    admin_views: Callable[[], list[Any]] | None = None  # -> list[starlette_admin ModelView]
    cli: Callable[[Any], None] | None = None  # (typer.Typer) -> None: adds commands
    permissions: dict[str, set[str]] = field(default_factory=dict)  # permission -> role names
    lifecycles: tuple[Any, ...] = ()  # opsline.core.lifecycle.Lifecycle declarations (their events are declared too)
    events: tuple[str, ...] = ()  # other domain events this area publishes, e.g. "case.changed"
    subscribers: tuple[Any, ...] = ()  # opsline.core.domain_events.Subscriber
    home: Callable[..., list["HomeCard"]] | None = None  # home(session, *, now, actor, tz) -> cards for desk home pages
    # the desks (role names) `home`'s cards are ever for: a desk page runs only those areas' card queries (admin's runs all);
    # None means any desk. tests/functional/test_web_desks.py checks every card an area returns is within its declaration.
    home_desks: tuple[str, ...] | None = None
    # schedules(session, *, now, tz): enqueue the area's periodic jobs (idempotent: each run's job has a key per slot). Called by
    # `opsline migrate` (so a fresh install runs them) and never by the reference seed (a seeded test database has no jobs).
    schedules: Callable[..., None] | None = None


@dataclass(frozen=True)
class HomeCard:
    """One tile on a desk's home page: the work waiting, as a number that links to the list behind it.
    `desks` are role names (see users.roles.Role) whose home shows the card; admin sees every desk."""

    desks: tuple[str, ...]
    title: str
    count: int | str
    href: str  # the list behind the number (every number is a link)
    permission: str  # shown only to users who may open href
    hint: str = ""  # e.g. "oldest 3 d 4 h", "12 at risk"
    tone: str = "normal"  # normal | warn | danger
    chart: dict[str, Any] | None = None  # a Chart.js config {"type", "data": {"labels", "datasets"}, "options"}
    order: int = 100


@lru_cache(maxsize=1)
def load_areas() -> tuple[Area, ...]:
    """Every `opsline.<area>.area` and `opsline.<area>.<sub>.area` module's AREA, in order."""
    found: list[Area] = []
    for mod in pkgutil.walk_packages(opsline.__path__, prefix="opsline."):
        if mod.name.endswith(".area") and mod.name.count(".") in (2, 3):
            found.append(importlib.import_module(mod.name).AREA)
    return tuple(sorted(found, key=lambda a: (a.order, a.name)))
