"""Prometheus metrics served at ``/metrics``."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

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
    BREAKER_OPEN.labels(endpoint).set(0 if state == "closed" else 1)
