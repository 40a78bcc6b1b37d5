"""Notifications area wiring."""

from __future__ import annotations

from opsline.areas import Area
from opsline.notifications import models  # noqa: F401  (tables)

AREA = Area(
    name="notifications",
    order=15,  # before every area that sends messages
)
