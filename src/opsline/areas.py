"""Area discovery. Each business area declares what it plugs in (routers, jobs, seeds, demo steps, desks,
account-page panels, admin views, CLI commands, permissions) in `<area>/area.py` as `AREA = Area(...)`.
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


@lru_cache(maxsize=1)
def load_areas() -> tuple[Area, ...]:
    """Every `opsline.<area>.area` and `opsline.<area>.<sub>.area` module's AREA, in order."""
    found: list[Area] = []
    for mod in pkgutil.walk_packages(opsline.__path__, prefix="opsline."):
        if mod.name.endswith(".area") and mod.name.count(".") in (2, 3):
            found.append(importlib.import_module(mod.name).AREA)
    return tuple(sorted(found, key=lambda a: (a.order, a.name)))
