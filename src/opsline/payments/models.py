"""Payment tables: statements, statement lines, matching rules, payments, allocations, suspense, refunds."""

from __future__ import annotations
