"""Process configuration from environment variables (prefix OPSLINE_) and an optional .env file.

Secrets come only from the environment: the development secret key is refused when OPSLINE_ENV=production."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


# The operator's business timezone when nothing more specific (site, queue calendar) applies.
DEFAULT_TIMEZONE = "Africa/Johannesburg"
# The operator's default currency for new accounts (OPSLINE_CURRENCY); every amount carries its own currency.
DEFAULT_CURRENCY = "ZAR"
# The secret key a laptop runs with; never good enough for production (see Settings._refuse_development_secrets).
DEVELOPMENT_SECRET_KEY = "change-me-in-production-opsline-secret"


class InsecureProductionSettings(ValueError):
    """OPSLINE_ENV=production with a secret left at its development value (or too short)."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OPSLINE_", env_file=".env", extra="ignore")

    env: Literal["development", "test", "production"] = Field(default="development", description="production refuses development secrets")
    database_url: str = Field(default="sqlite:///opsline.db", description="SQLAlchemy URL; postgresql+psycopg://... in production")
    migration_database_url: str | None = Field(default=None, description="the owner role's URL for `opsline migrate`/`db-roles` when the app connects as a restricted role")
    app_role: str = Field(default="", description="PostgreSQL role the application connects as; `opsline migrate` re-applies its grants (db/roles.py)")
    secret_key: str = Field(default=DEVELOPMENT_SECRET_KEY, min_length=16)
    timezone: str = DEFAULT_TIMEZONE
    currency: str = Field(default=DEFAULT_CURRENCY, min_length=3, max_length=3)
    session_max_age_seconds: int = 8 * 3600
    cookie_secure: Literal["auto", "true", "false"] = Field(
        default="auto", description="Secure flag on the session cookie: auto = when the request came over https (directly or per a trusted proxy)")
    trusted_proxies: str = Field(default="", description="comma-separated addresses of reverse proxies whose X-Forwarded-Proto is believed")
    metrics_token: str = Field(default="", description="bearer token Prometheus sends to /metrics; empty = only signed-in users with jobs.view")
    max_request_bytes: int = 1_000_000
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 8025
    mail_from: str = "support@opsline.example"
    inbound_smtp_port: int = 2525
    worker_in_process: bool = Field(default=True, description="Run a worker thread inside the web process (SQLite default)")
    web_threads: int = Field(default=20, ge=2, le=200, description="threads a web process runs request handlers on (anyio's default is 40)")
    web_max_inflight: int = Field(default=16, ge=1, le=1000, description="requests a web process works on at once; the rest wait in order. "
                                                                        "Keep it below the database pool (10 + 10 overflow): each holds a connection")
    web_max_wait_seconds: float = Field(default=20.0, gt=0, le=300, description="how long a request may wait for a slot before it is answered 503 "
                                                                                "with Retry-After (load shedding)")
    log_level: str = "INFO"

    @model_validator(mode="after")
    def _refuse_development_secrets(self) -> "Settings":
        if self.env == "production":
            if self.secret_key == DEVELOPMENT_SECRET_KEY or len(self.secret_key) < 32:
                raise InsecureProductionSettings(
                    "OPSLINE_SECRET_KEY is the development value or shorter than 32 characters; set a long random value "
                    "in the environment (OPSLINE_ENV=production refuses to start otherwise)")
            if self.metrics_token and len(self.metrics_token) < 24:
                raise InsecureProductionSettings("OPSLINE_METRICS_TOKEN must be at least 24 characters in production")
        return self

    def trusted_proxy_addresses(self) -> frozenset[str]:
        return frozenset(a.strip() for a in self.trusted_proxies.split(",") if a.strip())


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
