"""Breach probability: Kaplan-Meier survival and its calibration on simulated cases (no database)."""

from __future__ import annotations

import numpy as np
import pytest

from opsline.sla.risk import Survival, breach_probability


def test_survival_without_censoring_is_the_empirical_share_still_running():
    s = Survival([10, 20, 30, 40])
    assert s(np.array([0, 10, 25, 40, 99])).tolist() == [1.0, 0.75, 0.5, 0.0, 0.0]


def test_open_cases_count_as_still_running_so_the_curve_is_not_biased_short():
    finished_only = Survival([10, 20])
    with_open = Survival([10, 20], censored=[50, 60, 70])
    assert with_open(np.array([30]))[0] > finished_only(np.array([30]))[0] == 0.0


def test_a_case_that_outlived_all_history_is_certain_to_breach_and_a_fresh_one_gets_the_base_rate():
    s = Survival([10, 20, 30, 40])
    p = breach_probability(s, np.array([45.0, 0.0]), np.array([50.0, 25.0]))
    assert p.tolist() == [1.0, 0.5]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_probabilities_are_calibrated_on_simulated_cases(seed):
    """Of the open cases given about p, about p breach: in every decile with enough cases, within sampling noise."""
    rng = np.random.default_rng(seed)
    # arrivals spread evenly over time; business seconds to resolve with a heavy right tail. The engine sees the
    # finished ones (observed) and the open ones (censored at what they have used so far), as it does in production.
    truth = rng.lognormal(mean=10.0, sigma=0.8, size=60000)
    elapsed = rng.uniform(0, np.exp(11.5), size=truth.size)
    finished = truth <= elapsed
    curve = Survival(truth[finished], censored=elapsed[~finished])
    truth, elapsed = truth[~finished], elapsed[~finished]
    target = np.exp(10.0) * rng.choice([0.5, 1.0, 2.0], size=truth.size)
    still_within = elapsed < target
    p = breach_probability(curve, elapsed[still_within], target[still_within])
    breached = truth[still_within] > target[still_within]
    bins = np.clip((p * 10).astype(int), 0, 9)
    checked = 0
    for b in range(10):
        sel = bins == b
        if sel.sum() >= 300:
            expected = p[sel].mean()
            noise = 3 * np.sqrt(expected * (1 - expected) / sel.sum())  # three binomial standard errors
            assert abs(expected - breached[sel].mean()) < noise + 0.01, (b, expected, breached[sel].mean(), sel.sum())
            checked += 1
    assert checked >= 5
    # and it separates: cases flagged at risk breach far more often than those that are not
    assert breached[p >= 0.5].mean() > 0.6 > 0.2 > breached[p < 0.2].mean()
