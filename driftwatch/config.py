"""One typed settings object, read from ``DRIFTWATCH_*`` variables (CONTRACT section 1)."""

from __future__ import annotations

from datetime import timedelta
from functools import lru_cache
from typing import Annotated

from pydantic import (
    Field,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    SecretStr,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from driftwatch.core.retention import Retention
from driftwatch.core.time import UNITS, parse_duration


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
    # Most features a model may have (declared, added by PATCH, or inferred from a first batch).
    # Stored predictions are dense, 8 bytes per numerical feature per record whether sent or
    # not, and a run tests every feature: this bounds what one small record can cost. Wide
    # tabular models rarely pass a few hundred columns.
    max_features: PositiveInt = 500
    # How far back a prediction or label may be dated; an older record is rejected on its own.
    # Without it a batch dated back to year 1 makes a partition for each month it touches.
    # "365d", ISO 8601 or seconds. With a longer DRIFTWATCH_RETENTION, raise it to backfill.
    max_record_age: timedelta = timedelta(days=365)
    # Time partitions (Postgres) one prediction batch may create; a batch that needs more is
    # refused whole with 413, as a body too large is (the SDK splits it in halves and resends).
    # A year's backfill into an empty database without retention needs about 75.
    max_batch_partitions: PositiveInt = 100
    # Keep per-bucket column summaries of every stored batch (README, Summaries). Off only to
    # measure what they cost: windows whose rows retention removed then have nothing to read.
    summaries: bool = True
    # Seconds /metrics serves the database's gauges from this process's cache, whatever the
    # scrape rate (0: read at every scrape).
    metrics_cache_seconds: float = Field(default=5.0, ge=0)
    # Seconds a request body may take to arrive, counted from the request's start; a slower
    # body (a slow-loris upload) is answered 408 and its reading stops.
    body_timeout_seconds: PositiveFloat = 60.0
    # Requests one API key may have in progress at once, per process (0: no limit); beyond it
    # the request is answered 429 with Retry-After (the SDK waits and sends again).
    max_requests_per_key: int = 16
    # Largest baseline file (CSV or Parquet) once decoded: cells (rows x columns), and for
    # Parquet the uncompressed size its metadata declares, checked before decoding; larger
    # files are answered 413.
    max_baseline_cells: PositiveInt = 10_000_000
    max_baseline_decoded_bytes: PositiveInt = 1024 * 1024 * 1024
    # Seconds an API key lookup is cached in process; a revoked key stops working within this.
    key_cache_seconds: float = 5.0
    # Records a second one API key may send to the collector, per process (0: no limit); a
    # batch over it is answered 429 with Retry-After (the SDK waits and resends it).
    ingest_rate_limit: float = 100_000.0
    # Failed dashboard sign-ins a client address may make a minute, per process (0: no limit);
    # past it every sign-in from that address is answered 429 with Retry-After for a while.
    login_failures_per_minute: NonNegativeInt = 5
    # Database connection pool size per process (Postgres only), for requests.
    pool_size: PositiveInt = 10
    # Connections of the background workers (scheduler, dispatcher, retention), a pool of their
    # own so that requests can never take them (Postgres; SQLite files get an engine of their
    # own too).
    worker_pool_size: PositiveInt = 4

    # Seconds between scheduler ticks (each tick queues closed windows and computes runs).
    scheduler_interval_seconds: PositiveFloat = 10.0
    # Seconds a replica holds a run it computes; past that another replica may take it over.
    run_lease_seconds: PositiveFloat = 300.0
    # Seconds after a window closes before it is computed (predictions still in flight).
    window_grace_seconds: float = 5.0
    # How far back windows are recomputed when labels or predictions arrive late.
    label_horizon: timedelta = timedelta(days=30)
    # Most windows queued per model when catching up after downtime (the newest ones).
    max_catchup_windows: PositiveInt = 1000

    # Raw predictions, labels and rejected records older than this are removed, by whole UTC
    # days (on Postgres by dropping day partitions); runs, metrics, alerts and baselines stay.
    # "30d", ISO 8601 or seconds; unset, "0" or "off" keeps everything. At least one day.
    retention: timedelta | None = None
    # Seconds between retention passes (each also creates the coming days' partitions).
    retention_interval_seconds: PositiveFloat = 3600.0

    # Seconds a dispatcher waits between looks for due deliveries (a commit in the same process
    # that writes deliveries wakes it at once).
    dispatcher_interval_seconds: PositiveFloat = 0.5
    # Deliveries one process sends at the same time.
    dispatcher_concurrency: PositiveInt = 8
    # Seconds one notification attempt may take in all (connecting, sending, every byte of the
    # answer) before it is cut and counts as failed.
    delivery_timeout_seconds: PositiveFloat = 10.0
    # Seconds a replica holds a delivery it sends; past that another replica may send it again.
    # At least DELIVERY_LEASE_MARGIN_SECONDS longer than the timeout (checked at startup).
    delivery_lease_seconds: PositiveFloat = 60.0
    # Waits after each failed attempt (CONTRACT section 6); when they run out the delivery fails.
    # A comma-separated list of durations in the environment: "5s,5m,30m,2h".
    retry_schedule: Annotated[list[timedelta], NoDecode] = [
        timedelta(seconds=5), timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=2),
        timedelta(hours=5), timedelta(hours=10), timedelta(hours=14), timedelta(hours=20),
        timedelta(hours=24),
    ]  # fmt: skip
    # Failures in a row (network errors, timeouts, 5xx) that open an endpoint's circuit breaker.
    breaker_failures: PositiveInt = 2
    # Seconds between probes of an open breaker: one waiting delivery is sent, even ahead of its
    # retry time (a failed probe does not use up a retry).
    breaker_probe_seconds: PositiveFloat = 30.0

    @field_validator("retry_schedule", mode="before")
    @classmethod
    def _schedule(cls, value: object) -> object:
        if isinstance(value, str):
            return [_duration(part) for part in value.split(",") if part.strip()]
        return value

    @field_validator("delivery_lease_seconds")
    @classmethod
    def _lease_outlasts_the_deadline(cls, value: float, info: ValidationInfo) -> float:
        timeout = info.data.get("delivery_timeout_seconds")
        if timeout is not None and value < timeout + DELIVERY_LEASE_MARGIN_SECONDS:
            raise ValueError(
                f"must be at least {timeout + DELIVERY_LEASE_MARGIN_SECONDS:g} "
                f"({DELIVERY_LEASE_MARGIN_SECONDS:g} s longer than "
                f"DRIFTWATCH_DELIVERY_TIMEOUT_SECONDS, {timeout:g} s): a lease that ends while "
                "its attempt still runs lets another process send the same message again"
            )
        return value

    @field_validator("label_horizon", "max_record_age", mode="before")
    @classmethod
    def _horizon(cls, value: object) -> object:
        return _duration(value)

    @field_validator("retention", mode="before")
    @classmethod
    def _retention_text(cls, value: object) -> object:
        if value is None or (isinstance(value, str) and value.strip().lower() in _OFF):
            return None
        try:
            return _TIMEDELTA.validate_python(_duration(value))
        except (ValidationError, ValueError):
            raise ValueError(
                "expected a duration such as 30d, 12w, P30D or seconds, or off"
            ) from None

    @field_validator("retention")
    @classmethod
    def _retention_days(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value < timedelta(days=1):
            raise ValueError(
                "must be at least one day (raw data is removed by whole days), or unset"
            )
        if value is not None and value > MAX_RETENTION:
            raise ValueError(f"must be at most {MAX_RETENTION.days} days, or unset to keep all")
        return value

    @field_validator("max_record_age")
    @classmethod
    def _record_age(cls, value: timedelta) -> timedelta:
        if not timedelta(days=1) <= value <= MAX_RETENTION:
            raise ValueError(f"must be between one day and {MAX_RETENTION.days} days")
        return value

    def retention_policy(self) -> Retention:
        return Retention(self.retention)


# How much longer a delivery's lease lasts than its attempt may: time to claim, start and
# record the attempt.
DELIVERY_LEASE_MARGIN_SECONDS = 5.0
_TIMEDELTA = TypeAdapter(timedelta)
MAX_RETENTION = timedelta(days=36_500)
_OFF = frozenset({"", "0", "off", "none", "never", "forever"})


def _duration(value: object) -> object:
    """Also ``30d``, ``12h``, ``0.5s``: the way every other duration in driftwatch is written."""
    if isinstance(value, str):
        text = value.strip()
        try:
            return timedelta(seconds=float(text))
        except ValueError:
            pass
        if text[-1:] in UNITS:
            return parse_duration(text)
    return value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
