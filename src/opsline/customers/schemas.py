"""Pydantic shapes for customer input (web forms, API, CLI share them) and validators for email and phone."""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from phonenumbers.geocoder import _region_display_name  # the region names phonenumbers ships
from pydantic import AfterValidator, BaseModel, ConfigDict, Field


def normalise_email(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ValueError(f"'{value}' is not a valid email address: {exc}") from exc


def normalise_phone(value: str | None, region: str = "ZA") -> str | None:
    """E.164 form (+27821234567); local numbers are read as South African."""
    if value is None or value == "":
        return None
    try:
        num = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException as exc:
        raise ValueError(f"'{value}' is not a phone number") from exc
    if not phonenumbers.is_valid_number(num):
        raise ValueError(f"'{value}' is not a valid phone number")
    return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)


@lru_cache(maxsize=1)
def _countries() -> dict[str, str]:
    return {_region_display_name(r, "en").lower(): r for r in phonenumbers.SUPPORTED_REGIONS if _region_display_name(r, "en")}


def country_code(value: str) -> str:
    """ISO 3166 alpha-2 from a code ('fr') or an English country name ('France'). Raises ValueError."""
    v = value.strip()
    if len(v) == 2 and v.upper() in phonenumbers.SUPPORTED_REGIONS:
        return v.upper()
    code = _countries().get(v.lower())
    if code is None:
        raise ValueError(f"'{value}' is not a country")
    return code


Email = Annotated[str | None, AfterValidator(normalise_email)]
Phone = Annotated[str | None, AfterValidator(normalise_phone)]


class SiteIn(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True, extra="forbid")
    label: str = Field(default="Home", max_length=100)
    line1: str = Field(min_length=1, max_length=200)
    line2: str | None = Field(default=None, max_length=200)
    suburb: str | None = Field(default=None, max_length=100)
    city: str = Field(min_length=1, max_length=100)
    province: str | None = Field(default=None, max_length=60)
    postal_code: str | None = Field(default=None, max_length=10)
    country: str = Field(default="ZA", min_length=2, max_length=2)
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)
    fno_coverage: list[str] = Field(default_factory=list)


class ContactIn(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True, extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    role: str = Field(default="primary", max_length=60)
    email: Email = None
    phone: Phone = None
    is_primary: bool = False


class AccountIn(BaseModel):
    """A new customer account with its party, first site and contact."""

    model_config = ConfigDict(str_strip_whitespace=True, extra="forbid")
    party_kind: str = Field(default="person", pattern="^(person|organisation)$")
    name: str = Field(min_length=1, max_length=200)
    given_name: str | None = Field(default=None, max_length=100)
    family_name: str | None = Field(default=None, max_length=100)
    registration_number: str | None = Field(default=None, max_length=40)
    account_number: str | None = Field(default=None, pattern=r"^\d{6,20}$")
    kind: str = Field(default="retail", pattern="^(retail|b2b|wholesale)$")
    segment_code: str = "consumer"
    value_tier_code: str = "standard"
    currency: str | None = Field(default=None, min_length=3, max_length=3)
    email: Email = None
    phone: Phone = None
    billing_line1: str | None = Field(default=None, max_length=200)
    billing_line2: str | None = Field(default=None, max_length=200)
    billing_suburb: str | None = Field(default=None, max_length=100)
    billing_city: str | None = Field(default=None, max_length=100)
    billing_province: str | None = Field(default=None, max_length=60)
    billing_postal_code: str | None = Field(default=None, max_length=10)
    billing_country: str = Field(default="ZA", pattern="^[A-Z]{2}$")
    payment_terms_days: int = Field(default=30, ge=0, le=120)
    bill_cycle_day: int = Field(default=1, ge=1, le=28)
    vat_number: str | None = Field(default=None, max_length=20)
    sites: list[SiteIn] = Field(default_factory=list, max_length=50)
    contacts: list[ContactIn] = Field(default_factory=list, max_length=50)


class AccountUpdate(BaseModel):
    """Editable account fields; `version` must match the stored one (optimistic concurrency)."""

    model_config = ConfigDict(str_strip_whitespace=True, extra="forbid")
    version: int
    name: str | None = Field(default=None, min_length=1, max_length=200)
    segment_code: str | None = None
    value_tier_code: str | None = None
    email: Email = None
    phone: Phone = None
    billing_line1: str | None = Field(default=None, max_length=200)
    billing_line2: str | None = Field(default=None, max_length=200)
    billing_suburb: str | None = Field(default=None, max_length=100)
    billing_city: str | None = Field(default=None, max_length=100)
    billing_province: str | None = Field(default=None, max_length=60)
    billing_postal_code: str | None = Field(default=None, max_length=10)
    billing_country: str | None = Field(default=None, pattern="^[A-Z]{2}$")
    payment_terms_days: int | None = Field(default=None, ge=0, le=120)
    bill_cycle_day: int | None = Field(default=None, ge=1, le=28)
    reason: str | None = Field(default=None, max_length=500)


class MemoIn(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True, extra="forbid")
    body: str = Field(min_length=1, max_length=10_000)
    category: str = Field(default="general", pattern="^(general|debtors|support|billing|cancellations|sales|service)$")
