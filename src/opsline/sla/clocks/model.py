"""What SLA clocks are made of: events, targets, plans (running segments) and measured clocks; epoch seconds."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

METRICS = ("first_response", "next_update", "resolution", "team", "third_party")
LABELS = {
    "first_response": "First response",
    "next_update": "Next update",
    "resolution": "Resolution",
    "team": "Team (OLA)",
    "third_party": "Third party",
}
STOPPED_STATES = frozenset({"resolved", "closed", "cancelled", "rejected"})
PAUSED_BY = {
    # state -> metrics it pauses
    "pending": frozenset({"resolution", "next_update", "team"}),
    "held": frozenset({"first_response", "resolution", "next_update", "team"}),
}
DEFAULT_WARN_PERCENTS = (50, 75, 100)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Event(NamedTuple):
    """One `case_event` row, as the replay needs it (values are strings as stored). A named tuple: a batch makes
    one per history row, and a frozen dataclass took twice as long to build."""

    at: datetime
    kind: str
    from_value: str | None = None
    to_value: str | None = None
    data: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class PolicyTargets:
    """Targets (business seconds) the clocks are measured against; a None target means no clock."""

    policy_id: int | None = None
    first_response_seconds: int | None = None
    next_update_seconds: int | None = None
    resolution_seconds: int | None = None
    team_seconds: int | None = None  # default OLA for every queue
    team_seconds_by_queue: Mapping[str, int] = field(default_factory=dict)
    third_party_seconds_by_partner: Mapping[str, int] = field(default_factory=dict)
    third_party_seconds: int | None = None  # default for partners without their own target
    warn_percents: tuple[int, ...] = DEFAULT_WARN_PERCENTS


@dataclass
class ClockPlan:
    """What the replay found for one clock: when it ran (segments), before any calendar maths."""

    metric: str
    key: str  # distinguishes clocks of one metric on one case: queue id, partner#episode, window number
    target_seconds: int
    started_s: int
    segments: list[tuple[int, int]]  # [start, end) epoch seconds while running; last may end at now
    stopped_s: int | None = None
    paused: bool = False
    queue: str | None = None
    partner: str | None = None


@dataclass(frozen=True)
class Clock:
    metric: str
    key: str
    label: str
    team: str | None
    queue: str | None
    partner: str | None
    started_at: datetime
    due_at: datetime
    stopped_at: datetime | None
    breached_at: datetime | None
    elapsed_seconds: int
    target_seconds: int
    paused_seconds: int
    percent: float
    state: str  # running | paused | met | breached
    paused: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric, "key": self.key, "label": self.label, "team": self.team, "queue": self.queue,
            "partner": self.partner, "started_at": self.started_at, "due_at": self.due_at, "stopped_at": self.stopped_at,
            "breached_at": self.breached_at, "elapsed_seconds": self.elapsed_seconds, "target_seconds": self.target_seconds,
            "percent": self.percent, "state": self.state, "paused_seconds": self.paused_seconds, "paused": self.paused,
        }


def epoch(value: datetime) -> int:
    """Whole epoch seconds (floored), the unit every clock works in."""
    d = value - _EPOCH  # days and 0 <= seconds < 86400 (microseconds dropped): exactly the floor, without a division
    return d.days * 86400 + d.seconds


def from_epoch(seconds: int) -> datetime:
    return datetime.fromtimestamp(int(seconds), UTC)  # exact for whole seconds, and twice as fast as adding a timedelta


def is_customer_visible(data: Mapping[str, Any] | None) -> bool:
    """Notes are customer-visible updates unless their data says otherwise (`internal`, `visibility`, `customer_visible`,
    or `direction` "in", i.e. from the customer)."""
    if not data:
        return True
    if data.get("internal") is True or data.get("direction") == "in":
        return False
    if "customer_visible" in data:
        return bool(data["customer_visible"])
    if "visible_to_customer" in data:
        return bool(data["visible_to_customer"])
    visibility = data.get("visibility")
    return visibility is None or str(visibility).lower() in ("customer", "public", "external")


