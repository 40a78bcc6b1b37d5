"""Debtors CLI commands (being built)."""

from __future__ import annotations

from typing import Any


def register(app: Any) -> None:
    return None
