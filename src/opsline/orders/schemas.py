"""Input shapes for product orders and quotes (shared by the web form, the TMF API and tests)."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, ConfigDict, Field

MAX_ID = 2**62


class OrderItemIn(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True, extra="forbid")
    action: str = Field(default="add", pattern="^(add|modify|delete|noChange)$")
    offering_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    product_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    site_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    quantity: int = Field(default=1, ge=1, le=100)
    # a delete of a product still in its fixed term carries an early-termination fee unless waived, with a reason
    waive_early_termination_fee: bool = False
    waiver_reason: str | None = Field(default=None, max_length=500)


class OrderIn(BaseModel):
    """A product order: `requested_start_date` is when the customer wants the change (defaults to today)."""

    model_config = ConfigDict(str_strip_whitespace=True, extra="forbid")
    account_id: int = Field(ge=1, le=MAX_ID)
    external_id: str | None = Field(default=None, max_length=80)
    requested_start_date: date | None = None
    requested_completion_date: date | None = None
    channel: str | None = Field(default=None, max_length=30)
    priority: int = Field(default=4, ge=0, le=9)
    description: str | None = Field(default=None, max_length=2000)
    items: list[OrderItemIn] = Field(min_length=1, max_length=50)
    # a delete of an FNO line waits (item held) for the cancellation journey to set its date, penalty and FNO order
    hold_terminations: bool = False


class QuoteIn(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True, extra="forbid")
    account_id: int = Field(ge=1, le=MAX_ID)
    external_id: str | None = Field(default=None, max_length=80)
    requested_start_date: date | None = None
    valid_until: date | None = None
    description: str | None = Field(default=None, max_length=2000)
    items: list[OrderItemIn] = Field(min_length=1, max_length=50)
