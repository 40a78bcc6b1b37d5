"""Debtors demo step (being built)."""

from __future__ import annotations

from typing import Any


def run(ctx: Any) -> None:
    return None
