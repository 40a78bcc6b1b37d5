"""Tables for handing debt over to collection agencies: placements, recalls, recovery files and their lines."""

from __future__ import annotations

LIFECYCLES: tuple = ()
