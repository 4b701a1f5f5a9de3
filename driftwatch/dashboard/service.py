"""What each dashboard page shows, shaped for its charts. Reads the stored runs and metrics only:
raw predictions are never scanned to draw a page."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from driftwatch.core.result import FeatureDrift
from driftwatch.core.vocabulary import ACCURACY_METRICS
from driftwatch.dashboard import repository
from driftwatch.dashboard.repository import Bucket
from driftwatch.models import MonitoredModel, Run
from driftwatch.models.base import iso
from driftwatch.models.monitoring import NO_TRAFFIC, WINDOW
from driftwatch.monitoring import repository as monitoring
from driftwatch.registry import service as registry
from driftwatch.stats import registry as stattests

RANGES = {
    "24h": timedelta(days=1), "7d": timedelta(days=7), "30d": timedelta(days=30),
    "90d": timedelta(days=90), "365d": timedelta(days=365),
}  # fmt: skip
DEFAULT_RANGE = "7d"
MAX_COLUMNS = 366  # heatmap columns and points per line, at most
MAX_INTENSITY = 3.0


@dataclass(frozen=True, slots=True)
class TimeRange:
    start: datetime
    end: datetime
    label: str  # "7d", ... or "custom"

    @property
    def span(self) -> timedelta:
        return self.end - self.start


def time_range(
    label: str | None, start: datetime | None, end: datetime | None, now: datetime
) -> TimeRange:
    if start is not None and end is not None and end > start:
        return TimeRange(start.astimezone(UTC), end.astimezone(UTC), "custom")
    chosen = label if label in RANGES else DEFAULT_RANGE
    return TimeRange(now - RANGES[chosen], now, chosen)


def bucket_seconds(window_seconds: int, span: timedelta) -> int:
    """Whole windows per bucket, as few as keep the columns under MAX_COLUMNS."""
    windows = max(1, math.ceil(span.total_seconds() / window_seconds / MAX_COLUMNS))
    return windows * window_seconds


def _bucket_time(index: int, seconds: int) -> str:
    return iso(datetime.fromtimestamp(index * seconds, UTC))


def status(last: Run | None, firing: int) -> str:
    """alerting (an alert fires), no data (no window with predictions computed yet), drifting
    (the dataset of the last window with data drifted) or healthy."""
    if firing:
        return "alerting"
    if last is None:
        return "no data"
    if last.result is not None and last.result.dataset.drifted:
        return "drifting"
    return "healthy"


def _moment(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S" if moment.second else "%Y-%m-%d %H:%M") + " UTC"


def traffic_note(session: Session, *, model: MonitoredModel, now: datetime) -> str | None:
    """Said next to the status: since when traffic stopped (the newest windows recorded held no
    predictions), or since when no window was recorded at all (no scheduler running, or no
    baseline)."""
    quiet = monitoring.no_traffic_since(session, model_id=model.id)
    if quiet is not None:
        return f"no traffic since {_moment(quiet)}"
    newest = repository.latest_runs(session, model_id=model.id, limit=1,
                                    kinds=(WINDOW, NO_TRAFFIC))  # fmt: skip
    stale = timedelta(seconds=model.window_seconds * 3) + timedelta(minutes=5)
    if newest and now - newest[0].window_end > stale:
        return f"no window computed since {_moment(newest[0].window_end)}"
    return None


# -- models --------------------------------------------------------------------------------------


def overview(session: Session, *, now: datetime) -> list[dict[str, Any]]:
    firing = repository.firing_counts(session)
    rows = []
    for model in repository.list_models(session):
        last = repository.last_window_with_data(session, model_id=model.id)
        day = repository.metric_totals(session, model_id=model.id, metrics=["rows"],
                                       since=now - timedelta(days=1))  # fmt: skip
        week = repository.metric_totals(session, model_id=model.id,
                                        metrics=["rows", "labeled_rows"],
                                        since=now - timedelta(days=7))  # fmt: skip
        trend = repository.metric_series(session, model_id=model.id,
                                         metric="dataset.drifted_share", limit=48)  # fmt: skip
        rows.append({
            "name": model.name, "task": model.task,
            "status": status(last, firing.get(model.id, 0)),
            "note": traffic_note(session, model=model, now=now),
            "firing": firing.get(model.id, 0),
            "last_run": None if last is None else {
                "id": last.id, "end": iso(last.window_end), "rows": last.rows,
                "drifted_share": last.result.dataset.drifted_share if last.result else None,
            },
            "predictions_per_day": int(day.get("rows", 0)),
            "labeled_share": (week["labeled_rows"] / week["rows"]
                              if week.get("rows") else None),
            "trend": [[iso(t), v] for t, v in trend],
        })  # fmt: skip
    return rows


# -- one model -----------------------------------------------------------------------------------


def _intensity(feature: FeatureDrift, bucket_low: float | None, bucket_high: float | None
               ) -> tuple[float | None, float | None]:  # fmt: skip
    """How far past its threshold a feature's worst score in a bucket is (1: at the
    threshold), comparable across tests; and that score."""
    test = stattests.STATTESTS.get(feature.stattest or "")
    threshold = feature.threshold
    if test is None or threshold is None or bucket_low is None or bucket_high is None:
        return None, None
    if test.pvalue:
        score = bucket_low
        if score <= 0:
            return MAX_INTENSITY, score
        if threshold >= 1:
            return 0.0, score
        value = math.log(min(score, 1.0)) / math.log(threshold)
    else:
        score = bucket_high
        value = score / threshold if threshold > 0 else MAX_INTENSITY
    return min(max(value, 0.0), MAX_INTENSITY), score


def heatmap(
    model: MonitoredModel, latest: Run | None, buckets: list[Bucket], seconds: int
) -> dict[str, Any]:
    features = [f.name for f in registry.feature_specs(model)]
    tests = {f.name: f for f in latest.result.features} if latest and latest.result else {}
    by_key = {(b.metric, b.index): b for b in buckets}
    indexes = sorted({b.index for b in buckets})
    cells = []
    for x, index in enumerate(indexes):
        for y, name in enumerate(features):
            scored = by_key.get((f"feature.{name}.score", index))
            if scored is None or name not in tests:
                continue
            intensity, score = _intensity(tests[name], scored.low, scored.high)
            if intensity is None:
                continue
            drifted = by_key.get((f"feature.{name}.drifted", index))
            cells.append([x, y, round(intensity, 4), score,
                          int(bool(drifted and drifted.high))])  # fmt: skip
    return {
        "times": [_bucket_time(i, seconds) for i in indexes],
        "features": features,
        "tests": {name: {"stattest": t.stattest, "threshold": t.threshold}
                  for name, t in tests.items()},
        "cells": cells,
        "max": MAX_INTENSITY,
    }  # fmt: skip


def _series(buckets: list[Bucket], metric: str, seconds: int, field: str = "mean") -> list[Any]:
    points = sorted((b.index, getattr(b, field)) for b in buckets if b.metric == metric)
    return [[_bucket_time(i, seconds), v] for i, v in points if v is not None]


def model_page(session: Session, *, model: MonitoredModel, span: TimeRange) -> dict[str, Any]:
    features = [f.name for f in registry.feature_specs(model)]
    seconds = bucket_seconds(model.window_seconds, span.span)
    accuracy_names = [f"accuracy.{m}" for m in ACCURACY_METRICS]  # the vocabulary's
    metrics = [*(f"feature.{n}.score" for n in features),
               *(f"feature.{n}.drifted" for n in features),
               "dataset.drifted_share", "rows", "labeled_rows", *accuracy_names]  # fmt: skip
    buckets = repository.bucketed(session, model_id=model.id, metrics=metrics,
                                  start=span.start, end=span.end,
                                  bucket_seconds=seconds)  # fmt: skip
    last = repository.last_window_with_data(session, model_id=model.id, before=span.end,
                                            with_distributions=True)  # fmt: skip
    rows = {b.index: b.total or 0 for b in buckets if b.metric == "rows"}
    labeled = {b.index: b.total or 0 for b in buckets if b.metric == "labeled_rows"}
    coverage = [[_bucket_time(i, seconds), labeled.get(i, 0) / total]
                for i, total in sorted(rows.items()) if total]  # fmt: skip
    accuracy = {name.split(".", 1)[1]: series for name in accuracy_names
                if (series := _series(buckets, name, seconds))}  # fmt: skip
    return {
        "bucket_seconds": seconds,
        "heatmap": heatmap(model, last, buckets, seconds),
        "drifted_share": {"mean": _series(buckets, "dataset.drifted_share", seconds),
                          "max": _series(buckets, "dataset.drifted_share", seconds, "high")},
        "accuracy": accuracy,
        "coverage": coverage,
        "rows": _series(buckets, "rows", seconds, "total"),
        "prediction": _prediction(last),
        "latest": None if last is None else run_summary(last),
    }  # fmt: skip


def run_summary(run: Run) -> dict[str, Any]:
    """A run for the pages' templates and scripts: its result as the API writes it."""
    result = run.result.stored() if run.result else {}
    return {
        "id": run.id, "start": iso(run.window_start), "end": iso(run.window_end),
        "rows": run.rows, "labeled_rows": run.labeled_rows,
        "dataset": result.get("dataset") or {}, "accuracy": result.get("accuracy") or {},
        "quality": result.get("quality") or {}, "prediction": result.get("prediction"),
        "features": result.get("features") or [],
    }  # fmt: skip


def _prediction(run: Run | None) -> dict[str, Any] | None:
    if run is None or not run.distributions:
        return None
    return run.distributions.get("prediction")


# -- one feature ---------------------------------------------------------------------------------


def feature_page(
    session: Session, *, model: MonitoredModel, feature: str, span: TimeRange,
    run: Run | None,
) -> dict[str, Any]:  # fmt: skip
    seconds = bucket_seconds(model.window_seconds, span.span)
    names = [f"feature.{feature}.score", f"feature.{feature}.drifted",
             f"feature.{feature}.missing_share"]  # fmt: skip
    buckets = repository.bucketed(session, model_id=model.id, metrics=names, start=span.start,
                                  end=span.end, bucket_seconds=seconds)  # fmt: skip
    found = run.result.feature(feature) if run and run.result else None
    entry = found.model_dump(mode="json") if found else None
    test = stattests.STATTESTS.get(found.stattest or "") if found else None
    worst = "low" if test is not None and test.pvalue else "high"
    drifted = {b.index for b in buckets if b.metric == names[1] and b.high}
    return {
        "bucket_seconds": seconds,
        "score": _series(buckets, names[0], seconds, worst),
        "drifted_times": [_bucket_time(i, seconds) for i in sorted(drifted)],
        "missing_share": _series(buckets, names[2], seconds, "high"),
        "entry": entry,
        "pvalue": bool(test is not None and test.pvalue),
        "distribution": ((run.distributions or {}).get("features") or {}).get(feature)
        if run
        else None,
        "run": None if run is None else run_summary(run),
    }
