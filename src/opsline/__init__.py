"""Opsline: order-to-cash and customer operations for telecom operators and ISPs."""

__version__ = "0.1.0"
