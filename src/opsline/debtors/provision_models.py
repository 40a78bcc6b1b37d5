"""Tables for the IFRS 9 bad-debt provision: month-end ageing snapshots, forward-looking adjustments, provision runs."""

from __future__ import annotations

LIFECYCLES: tuple = ()
