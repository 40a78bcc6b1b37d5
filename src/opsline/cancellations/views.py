"""Cancellations desk pages (filled in below)."""

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)
