"""Panels on the account 360 page. Each area contributes one: a loader (service query) and a template.

The page loads each panel separately (HTMX `hx-trigger="load"`), so one slow area never blocks the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class Panel:
    key: str
    title: str
    permission: str
    template: str
    loader: Callable[..., dict[str, Any]]  # loader(session, account_id=..., now=...) -> context


def account_panels() -> list[Panel]:
    """Every area's panels, in area order."""
    from opsline.areas import load_areas

    return [p for a in load_areas() if a.panels for p in a.panels()]
