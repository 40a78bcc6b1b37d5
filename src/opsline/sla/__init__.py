"""SLA policies, business calendars, clocks (per metric, per team, third party), warnings, breaches."""
