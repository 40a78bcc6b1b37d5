"""Panels on the account 360 page. Each area contributes one: a loader (service query) and a template.

The page loads each panel separately (HTMX `hx-trigger="load"`), so one slow area never blocks the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from sqlalchemy.orm import Session


@dataclass(frozen=True)
class Panel:
    key: str
    title: str
    permission: str
    template: str
    loader: Callable[..., dict[str, Any]]  # loader(session, account_id=..., now=...) -> context


def account_panels() -> list[Panel]:
    """The panels in page order. Areas add theirs here."""
    panels: list[Panel] = []
    return panels
