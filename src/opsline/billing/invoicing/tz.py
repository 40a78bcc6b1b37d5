"""The operator's timezone for invoicing: passed in where the caller has it (web `Tz`), else the configured
OPSLINE_TIMEZONE (PDF rendering and jobs, which have no request to take it from)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from opsline.config import get_settings
from opsline.core.localtime import zone


def local_zone(tz: str | ZoneInfo | None = None) -> ZoneInfo:
    if isinstance(tz, ZoneInfo):
        return tz
    return zone(tz or get_settings().timezone)
