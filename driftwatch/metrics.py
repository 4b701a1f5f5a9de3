"""Prometheus metrics served at ``/metrics``.

Counters and histograms count what this process did (Prometheus sums them over replicas).
What the models look like now (latest drift scores, accuracy, alert states) is read from the
database at scrape time (``driftwatch.monitoring.exporter``), so every replica reports the
same values.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from driftwatch.text import redact_url

INGESTED = Counter(
    "driftwatch_ingested_records", "Records stored by the collector", ["model", "kind"]
)
DUPLICATES = Counter(
    "driftwatch_duplicate_records", "Records received again and not stored twice", ["model", "kind"]
)
REJECTED = Counter(
    "driftwatch_rejected_records", "Records the collector refused", ["model", "kind"]
)


def record_ingest(model: str, kind: str, accepted: int, duplicates: int, rejected: int) -> None:
    INGESTED.labels(model, kind).inc(accepted)
    DUPLICATES.labels(model, kind).inc(duplicates)
    REJECTED.labels(model, kind).inc(rejected)


DELIVERY_ATTEMPTS = Counter(
    "driftwatch_delivery_attempts",
    "Notification attempts by channel type and outcome (delivered, retry, failed)",
    ["channel_type", "outcome"],
)
BREAKER_OPEN = Gauge(
    "driftwatch_endpoint_breaker_open",
    "1 while an endpoint's circuit breaker holds its deliveries (open or probing), else 0",
    ["endpoint"],
)


def record_delivery(channel_type: str, outcome: str) -> None:
    DELIVERY_ATTEMPTS.labels(channel_type, outcome).inc()


def set_breaker(endpoint: str, state: str) -> None:
    """``endpoint`` is labelled as ``redact_url`` shows it: /metrics needs no key."""
    BREAKER_OPEN.labels(redact_url(endpoint)).set(0 if state == "closed" else 1)


RUNS = Counter(
    "driftwatch_runs", "Windows computed, by outcome (done, failed)", ["model", "outcome"]
)
RUN_SECONDS = Histogram(
    "driftwatch_run_duration_seconds", "Time to compute one window", ["model"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)  # fmt: skip
ALERT_TRANSITIONS = Counter(
    "driftwatch_alert_transitions", "Alert transitions (pending, firing, repeat, resolved, "
    "cleared)", ["model", "rule", "event"],
)  # fmt: skip


def record_run(model: str, outcome: str, seconds: float | None = None) -> None:
    RUNS.labels(model, outcome).inc()
    if seconds is not None:
        RUN_SECONDS.labels(model).observe(seconds)


RETENTION_PASSES = Counter(
    "driftwatch_retention_passes", "Retention passes by outcome (done, skipped, failed)",
    ["outcome"],
)  # fmt: skip
RETENTION_REMOVED = Counter(
    "driftwatch_retention_removed_rows", "Raw rows removed by retention, by table", ["table"]
)
RETENTION_PARTITIONS = Counter(
    "driftwatch_retention_dropped_partitions", "Time partitions dropped by retention"
)
RETENTION_CUTOFF = Gauge(
    "driftwatch_retention_cutoff_timestamp_seconds",
    "Raw data before this time has been removed (by this process's last pass)",
)
