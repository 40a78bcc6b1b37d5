"""Breach probability of open SLA clocks: pure numpy, no database.

The time a case takes (business seconds on its resolution clock) is estimated per group (queue and category) with
the Kaplan-Meier estimator over finished cases (observed) AND the group's open cases (censored at what they have used
so far), so long-running open cases are not left out and the estimate is not biased short. For an open clock that has
used `e` of its target `t`, the probability of breaching is P(T > t | T > e) = S(t) / S(e). With enough history this
is calibrated: of the cases given 30 %, about 30 % breach (tests/unit/test_sla_risk.py checks it on simulated data).
A clock already past its target is not a probability: it is breached, and the caller says by how long.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

MIN_HISTORY = 10  # finished cases a group needs before its estimate is trusted (else: its queue, then everything)


class Survival:
    """A Kaplan-Meier survival curve S(x) = P(T > x), as step arrays."""

    def __init__(self, observed: Sequence[float], censored: Sequence[float] = ()) -> None:
        obs = np.asarray(observed, dtype=np.float64)
        cen = np.asarray(censored, dtype=np.float64)
        self.events = len(obs)
        times = np.concatenate([obs, cen])
        if not len(obs):
            self._t = np.zeros(0)
            self._s = np.zeros(0)
            return
        event_times, deaths = np.unique(obs, return_counts=True)
        everything = np.sort(times)
        at_risk = len(everything) - np.searchsorted(everything, event_times, side="left")  # still running just before t
        self._t = event_times
        self._s = np.cumprod(1.0 - deaths / at_risk)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """S(x) for each x (1 before the first observed end)."""
        x = np.asarray(x, dtype=np.float64)
        if not len(self._t):
            return np.ones_like(x)
        i = np.searchsorted(self._t, x, side="right") - 1
        return np.where(i >= 0, self._s[np.maximum(i, 0)], 1.0)


def breach_probability(curve: Survival, elapsed: np.ndarray, target: np.ndarray) -> np.ndarray:
    """P(T > target | T > elapsed) for clocks still within target (elapsed < target). Where the curve has no mass
    left beyond `elapsed` (the case already outlived every finished case), the case is treated as certain to breach."""
    s_e = curve(elapsed)
    s_t = curve(target)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(s_e > 0, s_t / np.where(s_e > 0, s_e, 1.0), 1.0)
    return np.clip(p, 0.0, 1.0)
