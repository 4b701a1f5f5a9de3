"""Baselines (prepared reference data), runs (one monitoring window computed) and their metrics."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from driftwatch.core.result import RunResult
from driftwatch.models.base import Base, BigIntPK, Name, TypedJSON, UTCDateTime, utcnow


class Baseline(Base):
    __tablename__ = "baselines"
    __table_args__ = (Index("ix_baselines_model_id", "model_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(Integer, ForeignKey("models.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(Name)
    # "records", "window", "file"; or "trailing" / "lag" (CONTRACT section 8: a span of the
    # model's traffic relative to each run's window, merged from summaries for each run)
    source: Mapped[str] = mapped_column(String(20))
    rows: Mapped[int] = mapped_column(Integer)
    window_start: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    window_end: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # trailing / lag: the span's length, or how far back, in seconds (null for the others)
    span_seconds: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # which columns of its data were used, and which ignored (null before revision 0007):
    # {"features": [...], "prediction": name | null, "label": name | null, "ignored": [...]}
    columns: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    warnings: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)  # said when made
    # CONTRACT section 9, binary classification: the labeled (score, label) pairs as
    # little-endian float64, scores then labels; and the calibration check made on them
    # (null: a baseline without them, or made before revision 0011)
    labeled_scores: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    calibration: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # CONTRACT section 10: the segment features this baseline was prepared per value for
    # (``BaselineSegmentColumn``); null: none (made before the model had segments)
    segments: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # A deleted baseline loses its prepared columns but keeps this row: the runs computed
    # against it are history, and keep naming it.
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class BaselineColumn(Base):
    """One prepared column of a baseline: a feature, or the prediction (``name`` is null)."""

    __tablename__ = "baseline_columns"

    baseline_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("baselines.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)  # -1: the prediction
    name: Mapped[str | None] = mapped_column(Name, nullable=True)
    kind: Mapped[str] = mapped_column(String(20))
    rows: Mapped[int] = mapped_column(Integer)  # values, missing ones included
    missing: Mapped[int] = mapped_column(Integer)
    # numerical: the finite values, sorted, as little-endian float64
    sorted_values: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    # categorical: category names, and their counts as little-endian int64
    categories: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    counts: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    # drift.cluster_by: the cluster of each value as little-endian int32 (numerical: aligned
    # with sorted_values; categorical: each present value's category index, then its cluster)
    cluster_units: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    # embedding (CONTRACT section 11): a uniform sample of the vectors as little-endian float32,
    # row by row, and the mean of all of them as float64 (its length is the dimensions)
    vectors: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    vector_mean: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    # the joint row (position -2): the multivariate detectors' nulls measured on the baseline,
    # kept once a run first computed them (``MultivariateBaseline.prepared``)
    prepared: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class BaselineSegmentColumn(Base):
    """One prepared column of one segment of a baseline (the baseline's rows with
    ``segment_feature`` = ``segment_value``), prepared as ``BaselineColumn`` is, so that each
    segment of a run is compared with the same segment of the baseline."""

    __tablename__ = "baseline_segment_columns"

    baseline_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("baselines.id", ondelete="CASCADE"), primary_key=True
    )
    segment_feature: Mapped[str] = mapped_column(Name, primary_key=True)
    segment_value: Mapped[str] = mapped_column(Text, primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)  # -1: the prediction
    name: Mapped[str | None] = mapped_column(Name, nullable=True)
    kind: Mapped[str] = mapped_column(String(20))
    rows: Mapped[int] = mapped_column(Integer)  # the segment's rows, missing values included
    missing: Mapped[int] = mapped_column(Integer)
    sorted_values: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    categories: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    counts: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)


WINDOW, CUSTOM, NO_TRAFFIC = "window", "custom", "no_traffic"
SPAN = "span"  # several whole windows, computed from their summaries (monitoring.spans)
RUN_KINDS = (WINDOW, CUSTOM, NO_TRAFFIC, SPAN)


class Run(Base):
    """One monitoring window of a model computed against a baseline (``kind`` "window"); a span
    computed on demand that is not one window ("custom"); several whole windows, computed
    from their summaries ("span": on demand, and a day and a week for the dashboard's long
    ranges); or a stretch of consecutive windows
    that held no predictions, recorded as one row and never computed ("no_traffic").

    The model's window series (its charts, time series, status, rules) is made of its "window"
    runs, with its "no_traffic" stretches between them; "custom" and "span" runs stand apart from
    it."""

    __tablename__ = "runs"
    __table_args__ = (
        UniqueConstraint("model_id", "window_start", "window_end", "baseline_id"),
        Index("ix_runs_status_window_start", "status", "window_start"),
        Index("ix_runs_model_id_window_start", "model_id", "window_start"),
        # the newest windows of a model (its status, the stretch a new empty window extends)
        Index("ix_runs_model_id_window_end", "model_id", "window_end"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    model_id: Mapped[int] = mapped_column(Integer, ForeignKey("models.id", ondelete="CASCADE"))
    baseline_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("baselines.id", ondelete="CASCADE")
    )
    window_start: Mapped[datetime] = mapped_column(UTCDateTime)
    window_end: Mapped[datetime] = mapped_column(UTCDateTime)
    kind: Mapped[str] = mapped_column(String(20), default=WINDOW, server_default=WINDOW)
    # pending -> running -> done | failed; a done run goes back to pending when its window
    # receives labels or predictions later (within the label horizon).
    status: Mapped[str] = mapped_column(String(20), default="pending")
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    owner: Mapped[str | None] = mapped_column(String(200), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    computations: Mapped[int] = mapped_column(Integer, default=0)  # times it was computed
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    rows: Mapped[int | None] = mapped_column(Integer, nullable=True)
    labeled_rows: Mapped[int | None] = mapped_column(Integer, nullable=True)
    result: Mapped[RunResult | None] = mapped_column(TypedJSON(RunResult), nullable=True)
    # histograms of the baseline and the window per column, for the dashboard (not in listings)
    distributions: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True, deferred=True)
    duration_seconds: Mapped[float | None] = mapped_column(Float(53), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    computed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class RunMetric(Base):
    """A run's numbers, one row each, for time series (charts) and rules."""

    __tablename__ = "run_metrics"
    __table_args__ = (
        Index("ix_run_metrics_model_id_metric_window_start", "model_id", "metric", "window_start"),
    )

    run_id: Mapped[int] = mapped_column(
        BigIntPK, ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True
    )
    metric: Mapped[str] = mapped_column(String(300), primary_key=True)
    model_id: Mapped[int] = mapped_column(Integer)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime)
    value: Mapped[float | None] = mapped_column(Float(53), nullable=True)


class RunMetricDay(Base):
    """Each metric of a model summed up per UTC day of window starts, kept up to date as runs
    are computed: long time ranges are drawn from these (365 rows a metric for a year) rather
    than from every run's row."""

    __tablename__ = "run_metric_days"

    model_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("models.id", ondelete="CASCADE"), primary_key=True
    )
    metric: Mapped[str] = mapped_column(String(300), primary_key=True)
    day: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)  # midnight UTC
    low: Mapped[float | None] = mapped_column(Float(53), nullable=True)
    high: Mapped[float | None] = mapped_column(Float(53), nullable=True)
    total: Mapped[float | None] = mapped_column(Float(53), nullable=True)
    count: Mapped[int] = mapped_column(Integer)
