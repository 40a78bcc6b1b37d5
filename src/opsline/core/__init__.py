"""Core building blocks shared by every area: money, calendars, audit events, jobs, errors."""
