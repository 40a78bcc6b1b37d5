"""Scheduled report subscriptions: any catalogued report emailed daily, weekly or monthly as xlsx or PDF."""
