"""What each dashboard page shows, shaped for its charts. Reads the stored runs and metrics only:
raw predictions are never scanned to draw a page."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from driftwatch.core import time as core_time
from driftwatch.core.time import iso, window_start
from driftwatch.core.vocabulary import ACCURACY_METRICS, ESTIMATED_METRICS
from driftwatch.dashboard import repository
from driftwatch.dashboard.repository import Bucket, TestedBucket
from driftwatch.models import MonitoredModel, Run
from driftwatch.models.monitoring import NO_TRAFFIC, WINDOW
from driftwatch.monitoring import repository as monitoring
from driftwatch.monitoring import spans
from driftwatch.registry import service as registry
from driftwatch.stats import embeddings as embedding_methods
from driftwatch.stats import registry as stattests
from driftwatch.stats.registry import StatTest

# the time ranges a model page offers, each "ending now"; a model is offered those that fit
# its window (see ``presets``)
PRESETS = {
    "5m": timedelta(minutes=5), "30m": timedelta(minutes=30), "1h": timedelta(hours=1),
    "6h": timedelta(hours=6), "24h": timedelta(days=1), "7d": timedelta(days=7),
    "30d": timedelta(days=30), "90d": timedelta(days=90), "365d": timedelta(days=365),
}  # fmt: skip
MAX_COLUMNS = 366  # heatmap columns and points per line, at most
MIN_PRESET_WINDOWS = 12  # a shorter preset shows too few windows to read a trend
# a range of more windows than this is offered only when its buckets are whole days (read from
# the daily sums): more would be summed up from every run's metrics at each page view
MAX_RAW_WINDOWS = 3000
DEFAULT_WINDOWS = (100, MAX_COLUMNS)  # the default range shows this many windows, one a column
MAX_INTENSITY = 3.0
DAY = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class TimeRange(core_time.TimeRange):
    """The range a page shows: the core's time range, with how it was chosen."""

    label: str = "custom"  # a preset ("7d", ...) or "custom"
    # the default range of a model whose traffic stopped: it ends at its newest window with
    # data, not now (a preset's link ends now)
    at_data: bool = False


# column lengths a chart of several windows a column rounds up to (a column of 8,617 ten-second
# windows, 86,170 s, reads as "a day" instead, starting at midnight)
READABLE_SECONDS = (60, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 604800)


def _fewest_windows(window_seconds: int, span: timedelta) -> int:
    """Whole windows per bucket, as few as keep the columns under MAX_COLUMNS (seconds)."""
    windows = max(1, math.ceil(span.total_seconds() / window_seconds / MAX_COLUMNS))
    return windows * window_seconds


def bucket_seconds(window_seconds: int, span: timedelta) -> int:
    """Whole windows per bucket, as few as keep the columns under MAX_COLUMNS; several
    windows a column round up to the next readable length that is whole windows (2h, 6h, a
    day), so that columns start at readable times."""
    seconds = _fewest_windows(window_seconds, span)
    if seconds == window_seconds:
        return seconds
    readable = (s for s in READABLE_SECONDS if s >= seconds and s % window_seconds == 0)
    return next(readable, seconds)


def presets(window_seconds: int) -> list[str]:
    """The presets that fit a window: at least MIN_PRESET_WINDOWS windows, and not more than
    MAX_RAW_WINDOWS unless drawn from the daily sums (10-second windows: 5m to 6h; hourly: 24h
    to 365d)."""
    fitting = []
    for name, length in PRESETS.items():
        windows = length.total_seconds() / window_seconds
        daily = _fewest_windows(window_seconds, length) % DAY.total_seconds() == 0
        if windows >= MIN_PRESET_WINDOWS and (windows <= MAX_RAW_WINDOWS or daily):
            fitting.append(name)
    return fitting or ["365d"]


def default_preset(window_seconds: int) -> str:
    """The shortest fitting preset of DEFAULT_WINDOWS windows (a column each), else the one
    nearest 200 windows."""
    fitting = presets(window_seconds)
    low, high = DEFAULT_WINDOWS
    counts = {name: PRESETS[name].total_seconds() / window_seconds for name in fitting}
    for name in fitting:
        if low <= counts[name] <= high:
            return name
    return min(fitting, key=lambda name: abs(math.log(counts[name] / 200)))


def time_range(
    label: str | None, start: datetime | None, end: datetime | None, now: datetime, *,
    window_seconds: int, newest: datetime | None,
) -> TimeRange:  # fmt: skip
    """The range asked for, else the model's default: its default preset, ending now, or at
    ``newest`` (the end of its newest window with data) when that lies further back than a
    tenth of the range, so that a model whose traffic stopped still shows its data."""
    if start is not None and end is not None and end > start:
        return TimeRange(start.astimezone(UTC), end.astimezone(UTC), "custom")
    if label in PRESETS:
        return TimeRange(now - PRESETS[label], now, label)
    chosen = default_preset(window_seconds)
    length = PRESETS[chosen]
    if newest is None or now - newest <= length / 10:
        return TimeRange(now - length, now, chosen)
    return TimeRange(newest - length, newest, chosen, at_data=True)


def _bucket_time(index: int, seconds: int) -> str:
    return iso(datetime.fromtimestamp(index * seconds, UTC))


def _first(buckets: list[Bucket], seconds: int) -> str | None:
    """The start of the range's first bucket with a run: the time charts start there, not at
    a range start months before a backfilled model's first window."""
    return _bucket_time(min(b.index for b in buckets), seconds) if buckets else None


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


def setup(
    session: Session, *, model: MonitoredModel, newest: datetime | None, now: datetime
) -> dict[str, Any] | None:
    """What a model still lacks before its pages can show anything (a baseline, predictions,
    a first closed window), or None once a window with data was computed."""
    if newest is not None and model.active_baseline_id is not None:
        return None
    first = None
    if newest is None:
        first = monitoring.first_prediction_time(session, model_id=model.id)
    length = timedelta(seconds=model.window_seconds)
    first_start = window_start(first, length) if first is not None else None
    first_end = first_start + length if first_start is not None else None
    if model.active_baseline_id is None:
        missing = "baseline"
    elif newest is None and first is None:
        missing = "predictions"
    else:
        missing = "first window"
    return {
        "missing": missing, "predictions": newest is not None or first is not None,
        "first_start": first_start, "first_end": first_end,
        "first_closed": first_end is not None and first_end <= now,
        "until": window_start(now, length) + length,  # the end of the window still open
        "precise": model.window_seconds < 60,
    }  # fmt: skip


# -- models --------------------------------------------------------------------------------------


def _day_of_rows(session: Session, model: MonitoredModel, now: datetime) -> int:
    """Predictions in the last day, from the windows that ended in it (a daily model's last
    window started more than a day ago, yet holds that day); a window longer than a day
    counts for its share of a day."""
    length = timedelta(seconds=model.window_seconds)
    day = timedelta(days=1)
    totals = repository.metric_totals(session, model_id=model.id, metrics=["rows"],
                                      since=now - day - length, strict=True)  # fmt: skip
    return round(totals.get("rows", 0) * min(1.0, day / length))


def overview(session: Session, *, now: datetime) -> list[dict[str, Any]]:
    firing = repository.firing_counts(session)
    rows = []
    for model in repository.list_models(session):
        last = repository.last_window_with_data(session, model_id=model.id)
        day = _day_of_rows(session, model, now)
        week = repository.metric_totals(session, model_id=model.id,
                                        metrics=["rows", "labeled_rows"],
                                        since=now - timedelta(days=7))  # fmt: skip
        trend = repository.metric_series(session, model_id=model.id,
                                         metric="dataset.drifted_share", limit=48)  # fmt: skip
        newest = last.window_end if last is not None else None
        rows.append({
            "name": model.name, "task": model.task, "precise": model.window_seconds < 60,
            "setup": setup(session, model=model, newest=newest, now=now),
            "status": status(last, firing.get(model.id, 0)),
            "note": traffic_note(session, model=model, now=now),
            "firing": firing.get(model.id, 0),
            "last_run": None if last is None else {
                "id": last.id, "end": iso(last.window_end), "rows": last.rows,
                "drifted_share": last.result.dataset.drifted_share if last.result else None,
            },
            "predictions_per_day": day,
            "labeled_share": (week["labeled_rows"] / week["rows"]
                              if week.get("rows") else None),
            "trend": [[iso(t), v] for t, v in trend],
        })  # fmt: skip
    return rows


def _test_of(name: str) -> StatTest | None:
    """A tabular test, or an embedding method (CONTRACT section 11)."""
    return stattests.STATTESTS.get(name) or embedding_methods.METHODS.get(name)


# What the score chart calls an embedding method's plotted value (CONTRACT section 11).
SCORE_LABELS = {"model": "model ROC AUC", "ratio": "ratio share drifted",
                "distance": "distance p-value", "mmd": "mmd p-value"}  # fmt: skip


def _as_scored(tested: list[TestedBucket]) -> list[TestedBucket]:
    """The embedding methods that decide by their permutation p-value (distance, mmd: their
    threshold is its level) are drawn by it, as p-value tests are; their score is a distance
    on another scale than the threshold."""
    out = []
    for entry in tested:
        method = embedding_methods.METHODS.get(entry.stattest)
        if method is not None and method.pvalue:
            entry = replace(entry, low=entry.p_value, high=entry.p_value)
        out.append(entry)
    return out


# -- one model -----------------------------------------------------------------------------------


def _deciding_threshold(tested: TestedBucket, pvalue: bool) -> float:
    """The threshold a run's score was judged by: under the calibrated verdict a p-value
    test's column drifts when its p-value passes the window's level (``detectable``, after
    Benjamini-Hochberg), not the test's nominal threshold (0.05 for ks); a distance keeps its
    threshold (its p-value decides apart)."""
    level = tested.detectable
    if pvalue and level is not None and 0 < level < 1:
        return level
    return tested.threshold


def _intensity(tested: TestedBucket) -> tuple[float, float] | None:
    """How far past its own threshold a run's score is (1: at the threshold), comparable across
    tests; and that score. For runs of one window alike, their worst."""
    test = _test_of(tested.stattest)
    threshold = _deciding_threshold(tested, bool(test is not None and test.pvalue))
    if test is None or tested.low is None or tested.high is None:
        return None
    if test.pvalue:
        score = tested.low
        if score <= 0:
            return MAX_INTENSITY, score
        if threshold >= 1:
            return 0.0, score
        value = math.log(min(score, 1.0)) / math.log(threshold)
    elif tested.stattest == "model":  # an embedding's ROC AUC: 0.5 is no drift at all
        score = tested.high
        value = (score - 0.5) / (threshold - 0.5) if threshold > 0.5 else MAX_INTENSITY
    else:
        score = tested.high
        value = score / threshold if threshold > 0 else MAX_INTENSITY
    return min(max(value, 0.0), MAX_INTENSITY), score


def _window_cells(
    features: list[str], tested: list[TestedBucket], column: dict[int, int]
) -> tuple[list[list[Any]], list[dict[str, Any]]]:
    """A cell per window and feature: its run's score against its run's own threshold;
    [x, y, intensity, score, drifted, test, insufficient, detectable, p-value, max_error]
    (insufficient, detectable and p-value from the calibrated verdict: 1 when the window had
    too few rows to tell, and null under Evidently's rule; max_error the bound on a score from
    summaries, null from rows)."""
    row = {name: y for y, name in enumerate(features)}
    tests: list[dict[str, Any]] = []
    test_ids: dict[tuple[str, float], int] = {}
    worst: dict[tuple[int, int], list[Any]] = {}
    for entry in tested:
        found = _intensity(entry)
        if found is None or entry.feature not in row:
            continue
        intensity, score = found
        key = (entry.stattest, entry.threshold)
        if key not in test_ids:
            test_ids[key] = len(tests)
            test = _test_of(entry.stattest)
            tests.append({"stattest": entry.stattest, "threshold": entry.threshold,
                          "pvalue": bool(test is not None and test.pvalue)})  # fmt: skip
        place = (column[entry.index], row[entry.feature])
        cell = worst.get(place)
        # a window compared with several baselines: its worst run, drifted if any run is
        if cell is None or intensity > cell[2]:
            drifted = bool(entry.drifted or (cell is not None and cell[4]))
            worst[place] = [*place, round(intensity, 4), score, int(drifted), test_ids[key],
                            int(entry.insufficient), entry.detectable, entry.p_value,
                            entry.max_error]  # fmt: skip
        elif entry.drifted:
            cell[4] = 1
    for cell in worst.values():
        if cell[4]:
            cell[6] = 0  # a window that drifted (by one run at least) told enough
    return sorted(worst.values()), tests


def _share_cells(
    features: list[str], buckets: list[Bucket], column: dict[int, int]
) -> list[list[Any]]:
    """A cell per bucket of several windows and feature: the share of its windows whose run
    found the feature drifted (each by its own test, threshold and verdict), how many, drifted
    in one at least, and the share of them too small to tell (calibrated verdict; else null)."""
    row = {f"feature.{name}.drifted": y for y, name in enumerate(features)}
    insufficient = {
        (b.index, b.metric.removesuffix(".insufficient") + ".drifted"): b.mean
        for b in buckets if b.metric.endswith(".insufficient") and b.mean is not None
    }  # fmt: skip
    return sorted(
        [column[b.index], row[b.metric], round(b.mean, 4), b.count, int(bool(b.high)),
         insufficient.get((b.index, b.metric))]
        for b in buckets if b.metric in row and b.mean is not None
    )  # fmt: skip


def heatmap(
    features: list[str], buckets: list[Bucket], tested: list[TestedBucket], seconds: int,
    window_seconds: int,
) -> dict[str, Any]:  # fmt: skip
    indexes = sorted({b.index for b in buckets} | {t.index for t in tested})
    column = {index: x for x, index in enumerate(indexes)}
    out: dict[str, Any] = {"times": [_bucket_time(i, seconds) for i in indexes],
                           "features": features}  # fmt: skip
    if seconds == window_seconds:
        cells, tests = _window_cells(features, tested, column)
        return {**out, "mode": "windows", "cells": cells, "tests": tests, "max": MAX_INTENSITY}
    return {**out, "mode": "share", "cells": _share_cells(features, buckets, column),
            "tests": [], "max": 1.0}  # fmt: skip


def _series(buckets: list[Bucket], metric: str, seconds: int, field: str = "mean") -> list[Any]:
    points = sorted((b.index, getattr(b, field)) for b in buckets if b.metric == metric)
    return [[_bucket_time(i, seconds), v] for i, v in points if v is not None]


# CONTRACT section 11: both detectors' scores and thresholds over time
MULTIVARIATE_SERIES = tuple(
    f"multivariate.{detector}.{field}"
    for detector in ("classifier", "reconstruction")
    for field in ("score", "threshold", "drifted")
)


def _multivariate(buckets: list[Bucket], seconds: int) -> dict[str, Any]:
    """Per detector its score and threshold (a bucket of several windows: their means) and
    the windows it called drifted (a bucket: the share of them)."""
    return {
        detector: {field: _series(buckets, f"multivariate.{detector}.{field}", seconds)
                   for field in ("score", "threshold", "drifted")}
        for detector in ("classifier", "reconstruction")
    }  # fmt: skip


def point(window_seconds: int, seconds: int, spans_drawn: bool) -> dict[str, Any]:
    """What one point (heatmap column) of a page's charts is: a window, a span (a day or a
    week merged from its windows' summaries, each tested as one), or several windows whose
    runs are summed up."""
    kind = "window" if seconds == window_seconds else "span" if spans_drawn else "windows"
    name = {spans.DAY: "day", spans.WEEK: "week"}.get(seconds)
    return {"kind": kind, "seconds": seconds, "windows": seconds // window_seconds,
            "name": name}  # fmt: skip


def _span_seconds(session: Session, model: MonitoredModel, span: TimeRange) -> int | None:
    """The span a long range is drawn with, when the scheduler has computed such spans in it
    (else the range is drawn from its windows' metrics, several a column)."""
    seconds = spans.span_for_range(model.window_seconds, span.length)
    if seconds is None or not repository.span_runs_exist(
        session, model_id=model.id, start=span.start, end=span.end, seconds=seconds
    ):
        return None
    return seconds


def _span_page(
    session: Session, *, model: MonitoredModel, span: TimeRange, seconds: int
) -> dict[str, Any]:  # fmt: skip
    """A long range drawn with spans: each column and point a span's own run (its test on
    the day's or week's merged data, its drifted share, its accuracy over its labeled rows);
    rows, label coverage and estimates summed up from its windows' metrics (daily sums)."""
    features = [f.name for f in registry.feature_specs(model)]
    estimated_names = [f"estimated.{m}{end}" for m in ESTIMATED_METRICS
                       for end in ("", ".lower", ".upper")]  # fmt: skip
    metrics = [
        "dataset.drifted_share",
        "rows",
        "labeled_rows",
        *estimated_names,
        *MULTIVARIATE_SERIES,
    ]
    buckets = repository.bucketed(session, model_id=model.id, metrics=metrics, start=span.start,
                                  end=span.end, bucket_seconds=seconds)  # fmt: skip
    tested = repository.feature_tests(session, model_id=model.id, start=span.start,
                                      end=span.end, bucket_seconds=seconds, span=True)  # fmt: skip
    runs = repository.span_runs(session, model_id=model.id, start=span.start, end=span.end,
                                seconds=seconds)  # fmt: skip
    last = repository.last_window_with_data(session, model_id=model.id, before=span.end,
                                            with_distributions=True)  # fmt: skip
    drifted: list[Any] = []
    accuracy: dict[str, list[Any]] = {}
    coverage: list[Any] = []
    for run in runs:
        assert run.result is not None
        moment = iso(run.window_start)
        if run.result.dataset.drifted_share is not None:
            drifted.append([moment, run.result.dataset.drifted_share])
        for name, realized in (run.result.accuracy or {}).items():
            accuracy.setdefault(name, []).append([moment, realized])
        if run.result.rows:
            coverage.append([moment, run.result.labeled_rows / run.result.rows])
    estimated = {
        metric: {"value": value,
                 "lower": _series(buckets, f"estimated.{metric}.lower", seconds),
                 "upper": _series(buckets, f"estimated.{metric}.upper", seconds)}
        for metric in ESTIMATED_METRICS
        if (value := _series(buckets, f"estimated.{metric}", seconds))
    }  # fmt: skip
    first = min(
        [b.index * seconds for b in buckets] + [int(r.window_start.timestamp()) for r in runs],
        default=None,
    )
    return {
        "bucket_seconds": seconds,
        "point": point(model.window_seconds, seconds, True),
        "first": None if first is None else _bucket_time(first, 1),
        "heatmap": {**heatmap(features, [], tested, seconds, seconds), "mode": "windows"},
        "drifted_share": {"mean": drifted,
                          "max": _series(buckets, "dataset.drifted_share", seconds, "high")},
        "accuracy": accuracy,
        "estimated": estimated,
        "coverage": coverage,
        "multivariate": _multivariate(buckets, seconds),
        "rows": _series(buckets, "rows", seconds, "total"),
        "prediction": _prediction(last),
        "latest": None if last is None else run_summary(last),
        "budget": budget(model),
        "detectable": detectable(last),
        "versions": versions_over_time(session, model=model, span=span, seconds=seconds),
    }  # fmt: skip


def model_page(session: Session, *, model: MonitoredModel, span: TimeRange) -> dict[str, Any]:
    seconds_of_spans = _span_seconds(session, model, span)
    if seconds_of_spans is not None:
        return _span_page(session, model=model, span=span, seconds=seconds_of_spans)
    # every feature a row of the heatmap, embeddings (CONTRACT section 11) among them
    features = [str(f["name"]) for f in model.features or []]
    seconds = bucket_seconds(model.window_seconds, span.length)
    windows = seconds == model.window_seconds  # a column a window, else several a column
    accuracy_names = [f"accuracy.{m}" for m in ACCURACY_METRICS]  # the vocabulary's
    estimated_names = [f"estimated.{m}{end}" for m in ESTIMATED_METRICS
                       for end in ("", ".lower", ".upper")]  # fmt: skip
    metrics = [*([] if windows else (f"feature.{n}.{m}" for n in features
                                     for m in ("drifted", "insufficient"))),
               "dataset.drifted_share", "rows", "labeled_rows", *accuracy_names,
               *estimated_names, *MULTIVARIATE_SERIES]  # fmt: skip
    buckets = repository.bucketed(session, model_id=model.id, metrics=metrics,
                                  start=span.start, end=span.end,
                                  bucket_seconds=seconds)  # fmt: skip
    tested = (
        _as_scored(repository.feature_tests(
            session, model_id=model.id, start=span.start, end=span.end, bucket_seconds=seconds
        ))
        if windows
        else []
    )  # fmt: skip
    last = repository.last_window_with_data(session, model_id=model.id, before=span.end,
                                            with_distributions=True)  # fmt: skip
    rows = {b.index: b.total or 0 for b in buckets if b.metric == "rows"}
    labeled = {b.index: b.total or 0 for b in buckets if b.metric == "labeled_rows"}
    coverage = [[_bucket_time(i, seconds), labeled.get(i, 0) / total]
                for i, total in sorted(rows.items()) if total]  # fmt: skip
    accuracy = {name.split(".", 1)[1]: series for name in accuracy_names
                if (series := _series(buckets, name, seconds))}  # fmt: skip
    # CONTRACT section 9: per estimated metric its value and band (a bucket of several
    # windows: the mean of each), drawn with the realized metric and the label coverage
    estimated = {
        metric: {"value": value,
                 "lower": _series(buckets, f"estimated.{metric}.lower", seconds),
                 "upper": _series(buckets, f"estimated.{metric}.upper", seconds)}
        for metric in ESTIMATED_METRICS
        if (value := _series(buckets, f"estimated.{metric}", seconds))
    }  # fmt: skip
    return {
        "bucket_seconds": seconds,
        "point": point(model.window_seconds, seconds, False),
        "first": _first(buckets, seconds),
        "heatmap": heatmap(features, buckets, tested, seconds, model.window_seconds),
        "drifted_share": {"mean": _series(buckets, "dataset.drifted_share", seconds),
                          "max": _series(buckets, "dataset.drifted_share", seconds, "high")},
        "accuracy": accuracy,
        "estimated": estimated,
        "coverage": coverage,
        "multivariate": _multivariate(buckets, seconds),
        "rows": _series(buckets, "rows", seconds, "total"),
        "prediction": _prediction(last),
        "latest": None if last is None else run_summary(last),
        "budget": budget(model),
        "detectable": detectable(last),
        "versions": versions_over_time(session, model=model, span=span, seconds=seconds),
    }  # fmt: skip


VERSIONS_SHOWN = 8  # served versions, and shadow versions, drawn at most (the most rows)


def versions_over_time(
    session: Session, *, model: MonitoredModel, span: TimeRange, seconds: int
) -> dict[str, Any]:
    """The versions of the range (CONTRACT section 10), for the versions chart: each served
    version's share of a bucket's rows (a rollout), and each shadow version's difference from
    the served model in the headline metric, with its paired 95% band (a bucket of several
    windows: the mean of each)."""
    metric = "mae" if model.task == "regression" else "accuracy"
    totals = repository.version_metric_totals(session, model_id=model.id, start=span.start,
                                              end=span.end)  # fmt: skip
    shadows = {name.removesuffix(".agreement") for name in totals if name.endswith("].agreement")}
    rows = {name.removesuffix(".rows"): total for name, total in totals.items()
            if name.endswith("].rows")}  # fmt: skip
    largest = sorted(rows, key=lambda prefix: (-rows[prefix], prefix))
    served = [p for p in largest if p not in shadows][:VERSIONS_SHOWN]
    shadow = [p for p in largest if p in shadows][:VERSIONS_SHOWN]
    if not served and not shadow:
        return {"metric": metric, "served": {}, "shadow": {}}
    delta = [f"{p}.delta.{metric}{end}" for p in shadow for end in ("", ".lower", ".upper")]
    buckets = repository.bucketed(session, model_id=model.id, start=span.start, end=span.end,
                                  metrics=["rows", *(f"{p}.rows" for p in served), *delta],
                                  bucket_seconds=seconds)  # fmt: skip
    every = {b.index: b.total or 0 for b in buckets if b.metric == "rows"}
    shares: dict[str, list[Any]] = {}
    for prefix in served:
        own = {b.index: b.total or 0 for b in buckets if b.metric == f"{prefix}.rows"}
        shares[_version_name(prefix)] = [
            [_bucket_time(i, seconds), own.get(i, 0) / total]
            for i, total in sorted(every.items()) if total
        ]  # fmt: skip
    return {
        "metric": metric,
        "served": shares,
        "shadow": {_version_name(p): {
            "value": _series(buckets, f"{p}.delta.{metric}", seconds),
            "lower": _series(buckets, f"{p}.delta.{metric}.lower", seconds),
            "upper": _series(buckets, f"{p}.delta.{metric}.upper", seconds),
        } for p in shadow},
    }  # fmt: skip


def _version_name(prefix: str) -> str:
    return prefix.removeprefix("version[").removesuffix("]")


# -- segments (CONTRACT section 10) -------------------------------------------------------------

SEGMENT_METRICS = ("score", "drifted", "p_value", "missing_share")  # the matrix may show


def segment_heatmap(
    session: Session, *, model: MonitoredModel, span: TimeRange, segment: str
) -> dict[str, Any]:
    """The drift heatmap of one segment ("feature=value"): per window (or bucket of windows)
    and feature, the share of its windows whose segment drifted, from the runs' stored
    ``segment[...]`` metrics (one window a column: 1 or 0)."""
    own = segment.split("=", 1)[0]  # the segment's feature: one value in it, never tested
    features = [f.name for f in registry.feature_specs(model) if f.name != own]
    seconds = bucket_seconds(model.window_seconds, span.length)
    prefix = f"segment[{segment}]."
    names = [f"{prefix}feature.{n}.{m}" for n in features for m in ("drifted", "insufficient")]
    buckets = repository.bucketed(session, model_id=model.id, metrics=names, start=span.start,
                                  end=span.end, bucket_seconds=seconds)  # fmt: skip
    unprefixed = [Bucket(b.metric.removeprefix(prefix), b.index, b.low, b.high, b.mean, b.total,
                         b.count) for b in buckets]  # fmt: skip
    indexes = sorted({b.index for b in unprefixed})
    column = {index: x for x, index in enumerate(indexes)}
    return {"times": [_bucket_time(i, seconds) for i in indexes], "features": features,
            "mode": "share", "segment": segment,
            "cells": _share_cells(features, unprefixed, column), "tests": [],
            "max": 1.0}  # fmt: skip


def segment_matrix(run: Run | None, metric: str) -> dict[str, Any] | None:
    """The last window's segments against its features for one ``metric`` of the features'
    entries (``SEGMENT_METRICS``): cells [feature, segment, value, drifted], and each
    segment's rows and dataset share; None without segments."""
    if run is None or run.result is None or not run.result.segments:
        return None
    segments = run.result.segments
    features = [f.name for f in run.result.features]
    cells = []
    for y, segment in enumerate(segments):
        for entry in segment.features:
            if entry.name not in features:
                continue
            raw = getattr(entry, metric)
            value = _entry_intensity(entry) if metric == "score" else raw
            if isinstance(value, bool):
                value = float(value)
            cells.append([features.index(entry.name), y, value, int(bool(entry.drifted)),
                          raw, entry.stattest, entry.threshold,
                          int(entry.verdict == "insufficient")])  # fmt: skip
    # a column no segment tested (a segment feature's own, say) says nothing: left out
    shown = sorted({c[0] for c in cells if c[2] is not None})
    position = {old: new for new, old in enumerate(shown)}
    cells = [[position[c[0]], *c[1:]] for c in cells if c[0] in position]
    features = [features[i] for i in shown]
    return {
        "metric": metric, "features": features,
        "segments": [f"{s.feature}={s.value}" for s in segments],
        "rows": [s.rows for s in segments],
        "drifted_share": [s.dataset.drifted_share for s in segments],
        "baseline": [s.baseline for s in segments],
        "cells": cells, "run_id": run.id, "end": iso(run.window_end), "max": MAX_INTENSITY,
    }  # fmt: skip


def _entry_intensity(entry: Any) -> float | None:
    """A feature entry's score against its own threshold, as the heatmap colours a window's
    (1: at the threshold), so that p-values and distances share one scale."""
    if entry.score is None or entry.threshold is None or entry.stattest is None:
        return None
    found = _intensity(TestedBucket(
        feature=entry.name, index=0, stattest=entry.stattest, threshold=entry.threshold,
        low=entry.score, high=entry.score, drifted=bool(entry.drifted), runs=1,
    ))  # fmt: skip
    return None if found is None else round(found[0], 4)


def segment_options(model: MonitoredModel, run: Run | None) -> list[str]:
    """The segments the picker offers: the last window's (largest first)."""
    if run is None or run.result is None:
        return []
    return [f"{s.feature}={s.value}" for s in run.result.segments]


def budget(model: MonitoredModel) -> dict[str, Any]:
    """The model's verdict and false-alarm budget, as the API reports them."""
    return registry.drift_out(model).model_dump(
        include={"verdict", "false_alarms_per_month", "alpha_per_window",
                 "expected_false_alarms_per_month", "cluster_by"}
    )  # fmt: skip


def detectable(run: Run | None) -> list[dict[str, Any]]:
    """Per tested column of the run (the features, then the prediction): how small a change
    its traffic can tell from noise (the calibrated verdict's ``detectable``: for a distance,
    the smallest score it calls drift; for a p-value test, the largest p-value), its verdict
    and p-value. Empty under Evidently's rule (no column has a detectable)."""
    if run is None or run.result is None:
        return []
    columns = [*run.result.features, *([run.result.prediction] if run.result.prediction else [])]
    out = []
    for column in columns:
        if column.detectable is None:
            continue
        test = _test_of(column.stattest or "")
        out.append({
            "name": getattr(column, "name", None), "stattest": column.stattest,
            "pvalue": bool(test is not None and test.pvalue), "threshold": column.threshold,
            "score": column.score, "p_value": column.p_value, "verdict": column.verdict,
            "detectable": column.detectable,
        })  # fmt: skip
    return out


def run_summary(run: Run) -> dict[str, Any]:
    """A run for the pages' templates and scripts: its result as the API writes it."""
    result = run.result.stored() if run.result else {}
    return {
        "id": run.id, "start": iso(run.window_start), "end": iso(run.window_end),
        "rows": run.rows, "labeled_rows": run.labeled_rows,
        "dataset": result.get("dataset") or {}, "accuracy": result.get("accuracy") or {},
        "quality": result.get("quality") or {}, "prediction": result.get("prediction"),
        "features": result.get("features") or [],
        "versions": result.get("versions") or [],
    }  # fmt: skip


def _prediction(run: Run | None) -> dict[str, Any] | None:
    if run is None or not run.distributions:
        return None
    return run.distributions.get("prediction")


# -- one feature ---------------------------------------------------------------------------------


def _score_series(tested: list[TestedBucket], seconds: int) -> list[dict[str, Any]]:
    """One series per test the feature's runs used: each window's score and its run's own
    threshold and verdict (a window compared with several baselines: its worst run)."""
    series: dict[str, dict[int, list[Any]]] = {}
    for entry in sorted(tested, key=lambda t: (t.index, t.threshold)):
        test = _test_of(entry.stattest)
        pvalue = bool(test is not None and test.pvalue)
        score = entry.low if pvalue else entry.high
        if score is None:
            continue
        points = series.setdefault(entry.stattest, {})
        point = points.get(entry.index)
        if point is None or (score < point[1] if pvalue else score > point[1]):
            points[entry.index] = [_bucket_time(entry.index, seconds), score,
                                   _deciding_threshold(entry, pvalue),
                                   int(entry.drifted or bool(point and point[3])),
                                   int(entry.insufficient)]  # fmt: skip
        elif entry.drifted:
            point[3] = 1
    for points in series.values():
        for point in points.values():
            if point[3]:
                point[4] = 0  # drifted (by one run at least): not "too few rows to tell"
    out = []
    for name, points in series.items():
        test = _test_of(name)
        out.append({"stattest": name, "pvalue": bool(test is not None and test.pvalue),
                    "label": SCORE_LABELS.get(name),
                    "points": [points[i] for i in sorted(points)]})  # fmt: skip
    return out


def feature_page(
    session: Session, *, model: MonitoredModel, feature: str, span: TimeRange,
    run: Run | None,
) -> dict[str, Any]:  # fmt: skip
    seconds_of_spans = _span_seconds(session, model, span)
    seconds = seconds_of_spans or bucket_seconds(model.window_seconds, span.length)
    # a point a window, or a span's own test (else: the share of a bucket's windows drifted)
    windows = seconds == model.window_seconds or seconds_of_spans is not None
    names = [f"feature.{feature}.drifted", f"feature.{feature}.missing_share"]
    buckets = repository.bucketed(session, model_id=model.id, metrics=names, start=span.start,
                                  end=span.end, bucket_seconds=seconds)  # fmt: skip
    tested = _as_scored(repository.feature_tests(
        session, model_id=model.id, start=span.start, end=span.end, bucket_seconds=seconds,
        feature=feature, span=seconds_of_spans is not None,
    )) if windows else []  # fmt: skip
    found = run.result.feature(feature) if run and run.result else None
    entry = found.model_dump(mode="json") if found else None
    test = _test_of(found.stattest or "") if found else None
    return {
        "pvalue": bool(test is not None and test.pvalue),  # the entry's test gives p-values
        "bucket_seconds": seconds,
        "point": point(model.window_seconds, seconds, seconds_of_spans is not None),
        "first": _first(buckets, seconds),
        "mode": "windows" if windows else "share",
        "scores": _score_series(tested, seconds),
        "drifted_share": [
            [_bucket_time(b.index, seconds), b.mean, b.count]
            for b in sorted(buckets, key=lambda b: b.index)
            if b.metric == names[0] and b.mean is not None
        ],
        "missing_share": _series(buckets, names[1], seconds, "high"),
        "entry": entry,
        "distribution": ((run.distributions or {}).get("features") or {}).get(feature)
        if run
        else None,
        "run": None if run is None else run_summary(run),
    }
