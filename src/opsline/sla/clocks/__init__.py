"""SLA clocks replayed from a case's event history: pure functions, no database, scalar or vectorised maths.

The replay walks the events once and produces, per clock, the business-time *segments* during which that clock ran
(plain epoch seconds). Evaluation then measures the segments on a business calendar, one `between` per segment and
one `add` per clock, either with `BusinessCalendar` (scalar) or a prebuilt `CalendarIndex` (numpy, all clocks of
thousands of cases in two `searchsorted` calls). Both give the same whole-second answers, so recomputing from
history is exact and replayable. Rooms: model (events, targets, plans, clocks), replay (the walk), measure (maths).
"""

from opsline.sla.clocks.measure import CalendarOps, IndexOps, ScalarOps, compute_clocks, evaluate
from opsline.sla.clocks.model import (
    DEFAULT_WARN_PERCENTS, LABELS, METRICS, PAUSED_BY, STOPPED_STATES, Clock, ClockPlan, Event, PolicyTargets, epoch, from_epoch,
    is_customer_visible,
)
from opsline.sla.clocks.replay import replay

__all__ = [
    "DEFAULT_WARN_PERCENTS", "LABELS", "METRICS", "PAUSED_BY", "STOPPED_STATES", "CalendarOps", "Clock", "ClockPlan", "Event", "IndexOps",
    "PolicyTargets", "ScalarOps", "compute_clocks", "epoch", "evaluate", "from_epoch", "is_customer_visible", "replay",
]
