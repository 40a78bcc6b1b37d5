"""Pydantic shapes for opening and changing cases (forms and API)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Channel = Literal["call", "email", "web", "campaign", "front_line_escalation", "partner"]
Visibility = Literal["internal", "customer", "originating_agent"]


class CaseIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    account_id: int | None = None
    category_code: str = Field(min_length=1, max_length=40)
    channel: Channel = "call"
    subject: str = Field(min_length=1, max_length=300)
    description: str | None = Field(default=None, max_length=20_000)
    queue_code: str | None = Field(default=None, max_length=40)
    priority: int | None = Field(default=None, ge=1, le=4)
    originating_agent: str | None = Field(default=None, max_length=200)
    contact_email: str | None = Field(default=None, max_length=200)
    contact_phone: str | None = Field(default=None, max_length=30)
    litigation_risk: bool = False
    brand_risk: bool = False
    contractual_dispute: bool = False
    assignee_user_id: int | None = None

    @field_validator("contact_email")
    @classmethod
    def _email(cls, v: str | None) -> str | None:
        if v and ("@" not in v or " " in v):
            raise ValueError("not an email address")
        return v or None


class NoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    body: str = Field(min_length=1, max_length=20_000)
    visibility: Visibility = "internal"


class LeadIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    product_interest: str = Field(min_length=1, max_length=200)
    notes: str | None = Field(default=None, max_length=5000)
