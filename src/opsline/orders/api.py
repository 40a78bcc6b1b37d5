"""orders api routes."""

from fastapi import APIRouter

router = APIRouter()
