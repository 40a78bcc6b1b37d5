"""Notification settings (environment, prefix OPSLINE_): the SMS gateway, the fallback language, delivery attempts."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class NotificationSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OPSLINE_", env_file=".env", extra="ignore")

    sms_gateway: Literal["log", "http"] = Field(default="log", description="log: write SMS to the log only; http: POST to sms_gateway_url")
    sms_gateway_url: str = ""
    sms_gateway_token: str = ""
    sms_gateway_timeout_seconds: float = 10.0
    notifications_default_language: str = "en"
    message_max_attempts: int = Field(default=30, ge=1, description="delivery attempts (2 s doubling to 1 h apart) before a message is undeliverable")


@lru_cache(maxsize=1)
def get_notification_settings() -> NotificationSettings:
    return NotificationSettings()
