"""Notification tables: templates per event and language, the message log, contact preferences, caps, approvals."""

from __future__ import annotations
