"""Debtors reports: aged debtors, Top 10 / Top 60, collections effectiveness and suspense ageing (pages, charts, exports)."""
