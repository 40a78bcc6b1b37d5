"""Customers: parties, accounts (retail, B2B, wholesale), contacts, sites, segments, value tiers and memos."""
