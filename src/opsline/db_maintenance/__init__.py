"""Database upkeep that is not any business area's: monthly partitions of usage records and the audit log on PostgreSQL."""
