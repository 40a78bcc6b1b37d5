"""Pydantic shapes for the SLA read API."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class CaseClock(BaseModel):
    caseId: int
    metric: str
    label: str
    team: str | None = None
    partner: str | None = None
    startedAt: datetime
    dueAt: datetime
    stoppedAt: datetime | None = None
    elapsedSeconds: int
    targetSeconds: int
    pausedSeconds: int
    percent: float
    state: str
    paused: bool


class Breach(BaseModel):
    id: int
    caseId: int
    caseReference: str | None = None
    metric: str
    team: str | None = None
    partner: str | None = None
    dueAt: datetime
    breachedAt: datetime
    overrunHours: float
    causeCode: str | None = None
    causeNote: str | None = None
    setBy: str | None = None
    setAt: datetime | None = None
