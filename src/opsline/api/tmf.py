"""Shared TM Forum Open API shapes and helpers (refs, money, time periods, paging headers)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from typing import Annotated

from fastapi import Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field


class TMFModel(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")


class Ref(TMFModel):
    id: str
    href: str | None = None
    name: str | None = None
    referred_type: str | None = Field(default=None, alias="@referredType")


class RelatedParty(TMFModel):
    id: str
    href: str | None = None
    name: str | None = None
    role: str | None = None
    referred_type: str | None = Field(default=None, alias="@referredType")


class TimePeriod(TMFModel):
    startDateTime: datetime | None = None
    endDateTime: datetime | None = None


class TMFMoney(TMFModel):
    unit: str
    value: float


class Characteristic(TMFModel):
    name: str
    value: Any = None
    valueType: str | None = None


class Note(TMFModel):
    id: str | None = None
    author: str | None = None
    date: datetime | None = None
    text: str


def page_headers(response: Response, *, count: int) -> None:
    response.headers["X-Result-Count"] = str(count)


def dump(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(by_alias=True, exclude_none=True, mode="json")


PAGE_LIMIT_MAX = 1000

# Shared parameter types: bounded so nonsense never reaches the database (SQLite INTEGER is 64-bit).
ResourceId = Annotated[int, Path(ge=1, le=2**53, description="Resource id")]
Offset = Annotated[int, Query(ge=0, le=10_000_000, description="Items to skip")]
Limit = Annotated[int, Query(ge=1, le=PAGE_LIMIT_MAX, description="Items per page")]
