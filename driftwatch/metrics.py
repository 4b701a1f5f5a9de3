"""Prometheus metrics served at ``/metrics``."""

from __future__ import annotations

from prometheus_client import Counter

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
