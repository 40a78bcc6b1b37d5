"""Process configuration from environment variables (prefix OPSLINE_) and an optional .env file."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


# The operator's business timezone when nothing more specific (site, queue calendar) applies.
DEFAULT_TIMEZONE = "Africa/Johannesburg"
# The operator's default currency for new accounts (OPSLINE_CURRENCY); every amount carries its own currency.
DEFAULT_CURRENCY = "ZAR"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OPSLINE_", env_file=".env", extra="ignore")

    database_url: str = Field(default="sqlite:///opsline.db", description="SQLAlchemy URL; postgresql+psycopg://... in production")
    secret_key: str = Field(default="change-me-in-production-opsline-secret", min_length=16)
    timezone: str = DEFAULT_TIMEZONE
    currency: str = Field(default=DEFAULT_CURRENCY, min_length=3, max_length=3)
    session_max_age_seconds: int = 8 * 3600
    max_request_bytes: int = 1_000_000
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 8025
    mail_from: str = "support@opsline.example"
    inbound_smtp_port: int = 2525
    worker_in_process: bool = Field(default=True, description="Run a worker thread inside the web process (SQLite default)")
    log_level: str = "INFO"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
