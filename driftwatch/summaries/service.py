"""Summaries kept at ingest, and a span's summary read back.

A model's summaries are kept per bucket of ``bucket_seconds(window)``: the greatest common
divisor of its window and an hour (the window itself where that is under a minute). Windows
start at multiples of their length since the epoch, so buckets tile every window exactly (15m
windows: 15-minute buckets; 1h, 1d, 7d windows: hourly ones), and hour-long buckets also let a
trailing or lagged span of any whole number of hours be merged from them. A batch's stored
rows are split by bucket and summarized per column (every feature, and the prediction as
``value`` when numeric, ``class`` when a class name); one row per (bucket, column) is appended
in the batch's transaction.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from driftwatch.core.specs import FeatureSpec
from driftwatch.core.time import EPOCH
from driftwatch.stats import summaries
from driftwatch.storage.columns import PredictionColumns
from driftwatch.summaries import repository
from driftwatch.summaries.repository import Part

log = logging.getLogger("driftwatch.summaries")
HOUR_SECONDS = 3600
FEATURE, PREDICTION = "feature", "prediction"
ColumnKey = tuple[str, str]  # (role, name)


def bucket_seconds(window_seconds: int) -> int:
    """The greatest common divisor of the window and an hour; the window itself where that
    is under a minute (a 7s or 3601s window: second-long buckets would make a part per
    second a batch spans)."""
    common = math.gcd(int(window_seconds), HOUR_SECONDS)
    return common if common >= 60 else int(window_seconds)


def _column_summaries(
    columns: PredictionColumns, features: Sequence[FeatureSpec], rows: list[int] | None
) -> list[tuple[ColumnKey, summaries.ColumnSummary]]:
    """Every column's summary of the rows at ``rows`` (all rows when None)."""

    def pick(values: list[str | None]) -> list[str | None]:
        return values if rows is None else [values[i] for i in rows]

    numbers = columns.num_values if rows is None else columns.num_values[rows]
    numerical = [f.name for f in features if f.kind == "numerical"]
    categorical = [f.name for f in features if f.kind == "categorical"]
    found: list[tuple[ColumnKey, summaries.ColumnSummary]] = [
        ((FEATURE, name), summaries.NumericalSummary.of(numbers[:, position]))
        for position, name in enumerate(numerical[: numbers.shape[1]])
    ]
    found.extend(
        ((FEATURE, name), summaries.CategoricalSummary.of(pick(values)))
        for name, values in zip(categorical, columns.cat_values, strict=False)
    )
    values = columns.prediction_values if rows is None else columns.prediction_values[rows]
    if not np.isnan(values).all():
        found.append(((PREDICTION, "value"), summaries.NumericalSummary.of(values)))
    classes = pick(columns.prediction_classes)
    if any(name is not None for name in classes):
        found.append(((PREDICTION, "class"), summaries.CategoricalSummary.of(classes)))
    return found


def batch_parts(
    columns: PredictionColumns, *, features: Sequence[FeatureSpec], window_seconds: int
) -> list[Part]:
    """A batch's summaries: per bucket its rows fall in, per column."""
    if not len(columns):
        return []
    seconds = bucket_seconds(window_seconds)
    buckets = columns.timestamps_us // (seconds * 1_000_000)
    first, last = int(buckets.min()), int(buckets.max())
    groups: list[tuple[int, list[int] | None]] = (
        [(first, None)] if first == last
        else [(int(b), np.flatnonzero(buckets == b).tolist()) for b in np.unique(buckets)]
    )  # fmt: skip
    return [
        Part(EPOCH + timedelta(seconds=bucket * seconds), seconds, role, name, summary)
        for bucket, rows in groups
        for (role, name), summary in _column_summaries(columns, features, rows)
    ]


def add_batch(
    session: Session, *, model_id: int, features: Sequence[FeatureSpec], window_seconds: int,
    stored: PredictionColumns,
) -> None:  # fmt: skip
    """Keep the summaries of a batch's stored rows (only those: duplicates left out), in the
    transaction that stores them."""
    parts = batch_parts(stored, features=features, window_seconds=window_seconds)
    repository.insert_parts(session, model_id=model_id, parts=parts)


@dataclass(slots=True)
class SpanSummary:
    """A span's merged summary: per column, and how it was made."""

    start: datetime
    end: datetime
    rows: int = 0  # predictions in the span's summarized buckets
    columns: dict[ColumnKey, summaries.ColumnSummary] = field(default_factory=dict)
    buckets: int = 0  # distinct buckets with data
    bucket_seconds: set[int] = field(default_factory=set)

    def feature(self, name: str) -> summaries.ColumnSummary | None:
        return self.columns.get((FEATURE, name))


def span_summary(
    session: Session, *, model_id: int, start: datetime, end: datetime,
    columns: Sequence[ColumnKey] | None = None,
) -> SpanSummary:  # fmt: skip
    """The merged summary of the model's buckets starting in [start, end): the span's rows
    when its bounds fall on bucket bounds (a window, or any whole number of buckets). Only
    the ``columns`` given ((role, name) pairs) when given; ``rows`` then counts theirs."""
    parts = repository.read_span(session, model_id=model_id, start=start, end=end,
                                 columns=columns)  # fmt: skip
    by_column: dict[ColumnKey, list[summaries.ColumnSummary]] = defaultdict(list)
    rows_by_bucket: dict[tuple[datetime, int], dict[ColumnKey, int]] = defaultdict(
        lambda: defaultdict(int)
    )
    for part in parts:
        key = (part.role, part.name)
        by_column[key].append(part.summary)
        rows_by_bucket[(part.bucket_start, part.bucket_seconds)][key] += part.summary.rows
    span = SpanSummary(start=start, end=end)
    span.columns = {key: summaries.merge(found) for key, found in by_column.items()}
    # Every column of a batch counts all its rows; a feature added later counts fewer.
    span.rows = sum(max(counts.values()) for counts in rows_by_bucket.values())
    span.buckets = len({bucket for bucket, _ in rows_by_bucket})
    span.bucket_seconds = {seconds for _, seconds in rows_by_bucket}
    return span


def first_bucket(session: Session, *, model_id: int) -> datetime | None:
    """When the model's summarized history starts (its first bucket), or None."""
    return repository.first_bucket(session, model_id=model_id)


def compact(engine: Engine, *, now: datetime, limit: int = 10_000) -> int:
    """Merge the rows of closed buckets (one per column and bucket), each group in its own
    savepoint; returns how many rows were merged. Safe to run in several replicas at once."""
    merged = 0
    with Session(engine) as session:
        groups = repository.groups_to_compact(session, closed_before=now, limit=limit)
        session.commit()
        for group in groups:  # one short transaction each: row locks held only for a group
            merged += repository.compact(session, group)
            session.commit()
    if merged:
        log.info("summaries: %d batch summaries merged into their buckets", merged)
    return merged
