"""One typed settings object, read from ``DRIFTWATCH_*`` variables (CONTRACT section 1)."""

from __future__ import annotations

from datetime import timedelta
from functools import lru_cache

from pydantic import SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from driftwatch.durations import UNITS, parse_duration


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DRIFTWATCH_", extra="ignore")

    database_url: str = "sqlite:///./driftwatch.db"
    rules_dir: str = "./rules"
    admin_key: SecretStr | None = None
    slack_token: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"
    public_url: str = "http://127.0.0.1:8000"

    # Largest request body the collector reads, in bytes; larger bodies are answered 413.
    max_body_bytes: int = 64 * 1024 * 1024
    # Largest number of records in one ingest batch.
    max_batch_records: int = 50_000
    # Seconds an API key lookup is cached in process; a revoked key stops working within this.
    key_cache_seconds: float = 5.0
    # Database connection pool size per process (Postgres only).
    pool_size: int = 10

    # Seconds between scheduler ticks (each tick queues closed windows and computes runs).
    scheduler_interval_seconds: float = 10.0
    # Seconds a replica holds a run it computes; past that another replica may take it over.
    run_lease_seconds: float = 300.0
    # Seconds after a window closes before it is computed (predictions still in flight).
    window_grace_seconds: float = 5.0
    # How far back windows are recomputed when labels or predictions arrive late.
    label_horizon: timedelta = timedelta(days=30)
    # Most windows queued per model when catching up after downtime (the newest ones).
    max_catchup_windows: int = 1000

    @field_validator("label_horizon", mode="before")
    @classmethod
    def _duration(cls, value: object) -> object:
        """Also ``30d``, ``12h``: the way every other duration in driftwatch is written."""
        if isinstance(value, str):
            text = value.strip()
            if text.isdigit():
                return timedelta(seconds=int(text))
            if text[-1:] in UNITS:
                return parse_duration(text)
        return value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
