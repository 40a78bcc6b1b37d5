"""catalog views routes."""

from fastapi import APIRouter

router = APIRouter()
