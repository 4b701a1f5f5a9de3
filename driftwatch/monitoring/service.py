"""Baselines and runs: what the API, the CLI and the scheduler call."""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import Connection
from sqlalchemy.orm import Session

from driftwatch import metrics
from driftwatch.alerting import service as alerts
from driftwatch.alerting.service import AlertingContext
from driftwatch.core.result import BaselineSpan, RunResult, VersionSlice
from driftwatch.core.retention import KEEP_EVERYTHING, Retention, describe
from driftwatch.core.settings import DriftSettings, PerformanceSettings
from driftwatch.core.specs import FeatureSpec
from driftwatch.core.status import RunStatus
from driftwatch.core.time import (
    is_window,
    iso,
    parse_duration,
    utcnow,
    window_start,
)
from driftwatch.errors import BadRequest, Conflict, InvalidPayload, NotFound, ServiceUnavailable
from driftwatch.ingest import repository as ingest_repository
from driftwatch.ingest import service as ingest
from driftwatch.ingest.validation import (
    BINARY,
    MULTICLASS,
    REGRESSION,
    RawColumns,
    ValidPredictions,
    columns_from_records,
    infer_features,
    label_value,
    validate_columns,
)
from driftwatch.models import Baseline, MonitoredModel, Run
from driftwatch.models.monitoring import CUSTOM, NO_TRAFFIC, SPAN, WINDOW
from driftwatch.monitoring import (
    accuracy,
    columns,
    compute,
    embedding_drift,
    estimation,
    estimation_multiclass,
    estimation_regression,
    files,
    from_summaries,
    moving,
    profiles,
    repository,
    segments,
    spans,
    versions,
)
from driftwatch.monitoring.estimation import LabeledScores
from driftwatch.monitoring.estimation_multiclass import LabeledProbabilities
from driftwatch.monitoring.estimation_regression import LabeledRegression
from driftwatch.monitoring.schemas import BaselineRef, RunOut, WindowOut
from driftwatch.registry import service as registry
from driftwatch.stats import from_summary
from driftwatch.stats import registry as stattests
from driftwatch.storage import chunks
from driftwatch.summaries import service as summary_service
from driftwatch.summaries.service import SpanSummary

MAX_ERRORS_SHOWN = 20
DEFAULT_EXACT_MAX_ROWS = 200_000  # DRIFTWATCH_EXACT_MAX_ROWS
RUN_WAIT_SECONDS = 30.0  # how long a request waits for another process computing its window
DEFAULT_LABEL_HORIZON = timedelta(days=30)  # as DRIFTWATCH_LABEL_HORIZON's default


class RawDataGone(Conflict):
    """A computed window now holds fewer predictions than when it was computed: raw data was
    removed (by a retention policy, perhaps another process's). Its earlier result stays."""


class BaselineDeleted(RawDataGone):
    """A computed run's baseline was deleted since: its prepared data is gone, so the run keeps
    the result it was computed with (as when its raw data is gone)."""


class ProfileCache:
    """Prepared baselines kept in memory: runs of a model reuse its baseline's sorted arrays.

    Keyed by database, id and creation time: SQLite reuses the id of a deleted row, and one
    process may talk to several databases (the tests do)."""

    def __init__(self, max_bytes: int = 1 << 30) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple[str, int, str], profiles.BaselineProfile] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, session: Session, baseline: Baseline) -> profiles.BaselineProfile:
        if baseline.deleted_at is not None:
            raise NotFound(
                f"baseline {baseline.id} ({baseline.name!r}) was deleted: its data is gone"
            )
        bind = session.get_bind()
        url = bind.engine.url if isinstance(bind, Connection) else bind.url
        key = (str(url), baseline.id, baseline.created_at.isoformat())
        with self._lock:
            cached = self._items.get(key)
            if cached is not None:
                self._items.move_to_end(key)
                return cached
        profile = repository.load_profile(session, baseline=baseline)
        with self._lock:
            self._items[key] = profile
            while len(self._items) > 1 and sum(p.nbytes for p in self._items.values()) > (
                self.max_bytes
            ):
                self._items.popitem(last=False)
        return profile


PROFILES = ProfileCache()


class SegmentProfileCache:
    """A baseline's prepared segments kept in memory as its profile is (``ProfileCache``):
    read once per baseline and process, not once per run."""

    def __init__(self, max_bytes: int = 1 << 30) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple[str, int, str], segments.SegmentProfiles | None] = (
            OrderedDict()
        )
        self._lock = threading.Lock()

    @staticmethod
    def _size(prepared: segments.SegmentProfiles | None) -> int:
        return sum(p.nbytes for values in (prepared or {}).values() for p in values.values())

    def get(self, session: Session, baseline: Baseline) -> segments.SegmentProfiles | None:
        bind = session.get_bind()
        url = bind.engine.url if isinstance(bind, Connection) else bind.url
        key = (str(url), baseline.id, baseline.created_at.isoformat())
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        prepared = repository.load_segment_profiles(session, baseline=baseline)
        with self._lock:
            self._items[key] = prepared
            while (
                len(self._items) > 1
                and sum(self._size(p) for p in self._items.values()) > self.max_bytes
            ):
                self._items.popitem(last=False)
        return prepared


SEGMENT_PROFILES = SegmentProfileCache()


def _prepare_segments(
    session: Session, *, model: MonitoredModel, baseline: Baseline, window: chunks.WindowColumns,
    features: list[FeatureSpec],
) -> None:  # fmt: skip
    """A new baseline of a model with segments: each segment feature's values prepared as
    baselines of their own (CONTRACT section 10), once."""
    names, min_rows = registry.segment_settings(model)
    names = [n for n in names if any(f.name == n and f.kind == "categorical" for f in features)]
    if not names:
        return
    prepared = segments.baseline_profiles(window, features, names, min_rows=min_rows)
    repository.insert_segment_profiles(session, baseline=baseline, prepared=prepared)


# -- baselines ---------------------------------------------------------------------------------


def _features_for(
    session: Session, model: MonitoredModel, raw: RawColumns, use: columns.ColumnUse,
    max_features: int,
) -> list[FeatureSpec]:  # fmt: skip
    """The model's features that the data holds; a model without any takes them from its
    first baseline."""
    if not model.features:
        inferred = infer_features(raw)
        if not inferred:
            raise InvalidPayload("the baseline has no features, and the model declares none")
        model = registry.adopt_inferred_features(
            session, name=model.name, inferred=inferred, max_features=max_features
        )
    used = set(use.features)
    features = [f for f in registry.feature_specs(model) if f.name in used]
    embedded = any(e.name in used for e in registry.embedding_specs(model))
    if not features and not embedded:  # another request gave the model other features
        names = ", ".join(f.name for f in registry.feature_specs(model))
        raise InvalidPayload(f"the baseline has none of model {model.name!r}'s features ({names})")
    return features


def _describe_rejections(rejected: list[Any], where: Callable[[int], str]) -> str:
    shown = [f"{where(r.index)}: {r.error}" for r in rejected[:MAX_ERRORS_SHOWN]]
    more = len(rejected) - len(shown)
    return "; ".join(shown) + (f"; and {more} more" if more > 0 else "")


def _value_warnings(profile: profiles.BaselineProfile, model: MonitoredModel) -> list[str]:
    """What the prepared data says about the runs to come: a column without values, one the
    model's drift settings cannot test (fisher_exact on more than two categories)."""
    settings = DriftSettings.from_model(model.drift, timedelta(seconds=model.window_seconds))
    warnings = []
    for column in profile.features:
        if column.rows and column.missing == column.rows:
            warnings.append(f"feature {column.name!r}: every value is missing in this baseline")
    tested = [*profile.features, *([profile.prediction] if profile.prediction else [])]
    for column in tested:
        stattest, _threshold = settings.choice(column.name, column.kind)
        if column.kind != "categorical" or stattest is None:
            continue
        categories = len(column.categories or [])
        refusal = stattests.get(stattest).refusal("categorical", categories)
        if refusal is not None:
            what = "the prediction" if column.name is None else f"feature {column.name!r}"
            warnings.append(
                f"{what}: {refusal}, and this baseline holds {categories}: its drift cannot be "
                "tested (choose another test in the model's drift settings)"
            )
    return warnings


def baseline_from_raw(
    session: Session, *, model: MonitoredModel, name: str, raw: RawColumns, source: str,
    use: columns.ColumnUse, where: Callable[[int], str] = lambda index: f"record {index}",
    max_features: int = registry.DEFAULT_MAX_FEATURES,
) -> Baseline:  # fmt: skip
    """Validate baseline data (every record must be valid, its labels of the model's classes as
    its stored predictions and labels show them), prepare and store its profile, with the
    columns it used and the warnings they gave."""
    if raw.count == 0:
        raise InvalidPayload("the baseline has no records")
    features = _features_for(session, model, raw, use, max_features)
    embeddings = [e for e in registry.embedding_specs(model) if e.name in set(use.features)]
    classes, label_names = ingest.known_classes(session, model_id=model.id, task=model.task)
    valid = validate_columns(
        raw, features, task=model.task, received_at=utcnow(), require_prediction=False,
        known_classes=classes, label_names=label_names, embeddings=embeddings,
    )  # fmt: skip
    if valid.rejected:
        raise InvalidPayload(
            f"{len(valid.rejected)} of {raw.count} baseline records are invalid: "
            + _describe_rejections(valid.rejected, where)
        )
    baseline_window = chunks.window_of(valid.columns)
    profile = profiles.profile(baseline_window, features, _cluster_by(model), embeddings)
    if model.task == BINARY:
        profile.labeled = _records_labeled_scores(raw, valid)
    elif model.task == MULTICLASS:
        profile.labeled = _records_labeled_probabilities(raw, valid)
    elif model.task == REGRESSION:
        profile.labeled = _records_labeled_rows(raw, valid, baseline_window, features)
    warnings = list(use.warnings)
    if use.prediction is not None and profile.prediction is None:
        warnings.append(
            f"the prediction ({use.prediction!r}) has no values: runs against this baseline do "
            "not test its drift"
        )
    baseline = repository.insert_baseline(
        session, model_id=model.id, name=name, source=source, profile=profile,
        columns=use.summary(), warnings=warnings + _value_warnings(profile, model),
    )  # fmt: skip
    _prepare_segments(session, model=model, baseline=baseline, window=baseline_window,
                      features=features)  # fmt: skip
    model.active_baseline_id = baseline.id
    session.flush()
    return baseline


def _records_labeled_scores(raw: RawColumns, valid: ValidPredictions) -> LabeledScores:
    """A binary baseline's labeled (score, label) pairs, read as runs read a window's."""
    if raw.label is None or len(valid.columns) != raw.count:
        return estimation.unusable(estimation.BASELINE_WITHOUT_LABELS)
    rows = [i for i, label in enumerate(raw.label) if label is not None]
    numbers: list[float] = []
    names: list[str | None] = []
    for index in rows:
        number, name = label_value(raw.label[index], BINARY, valid.classes)
        numbers.append(math.nan if number is None else number)
        names.append(name)
    columns = valid.columns
    return _labeled_scores(accuracy.Labeled(
        prediction_values=columns.prediction_values[rows],
        prediction_classes=[columns.prediction_classes[i] for i in rows],
        label_values=np.array(numbers, dtype=np.float64), label_classes=names,
    ))  # fmt: skip


def _records_labeled_rows(
    raw: RawColumns, valid: ValidPredictions, window: chunks.WindowColumns,
    features: list[FeatureSpec],
) -> LabeledRegression:  # fmt: skip
    """A regression baseline's labeled rows (features, prediction, label), read as runs read a
    window's."""
    if raw.label is None or len(valid.columns) != raw.count:
        return estimation_regression.unusable(estimation.BASELINE_WITHOUT_LABELS)
    rows = [i for i, label in enumerate(raw.label) if label is not None]
    labels = [label_value(raw.label[i], REGRESSION)[0] for i in rows]
    return estimation_regression.labeled_rows(
        window, features, np.array(rows, dtype=np.int64),
        np.array([math.nan if v is None else v for v in labels], dtype=np.float64),
    )  # fmt: skip


def _window_labeled_rows(
    labeled: accuracy.Labeled, window: chunks.WindowColumns, features: list[FeatureSpec]
) -> LabeledRegression:
    """A regression baseline's labeled rows, from a window read with its chunk spans."""
    if labeled.chunk_ids is None or labeled.chunk_rows is None or len(labeled) == 0:
        return estimation_regression.unusable(estimation.BASELINE_WITHOUT_LABELS)
    rows = window.rows_at(labeled.chunk_ids, labeled.chunk_rows)
    found = rows >= 0
    return estimation_regression.labeled_rows(
        window, features, rows[found], labeled.label_values[found]
    )


def _records_labeled_probabilities(
    raw: RawColumns, valid: ValidPredictions
) -> LabeledProbabilities:
    """A multiclass baseline's labeled rows with per-class probabilities."""
    if raw.label is None or len(valid.columns) != raw.count:
        return estimation_multiclass.unusable(estimation.BASELINE_WITHOUT_LABELS)
    rows = [i for i, label in enumerate(raw.label) if label is not None]
    names = [label_value(raw.label[i], MULTICLASS)[1] or "" for i in rows]
    return _labeled_probabilities(accuracy.Labeled(
        prediction_values=valid.columns.prediction_values[rows],
        prediction_classes=[valid.columns.prediction_classes[i] for i in rows],
        label_values=np.full(len(rows), np.nan), label_classes=list(names),
        prediction_scores=(None if valid.columns.prediction_scores is None
                           else valid.columns.prediction_scores[rows]),
        score_classes=list(valid.columns.score_classes),
    ))  # fmt: skip


def _labeled_probabilities(labeled: accuracy.Labeled) -> LabeledProbabilities:
    """The labeled rows that have per-class probabilities, checked."""
    if len(labeled) == 0:
        return estimation_multiclass.unusable(estimation.BASELINE_WITHOUT_LABELS)
    scores = labeled.prediction_scores
    if scores is None or not labeled.score_classes:
        return estimation_multiclass.unusable(estimation_multiclass.BASELINE_WITHOUT_PROBABILITIES)
    keep = np.flatnonzero(np.isfinite(scores).all(axis=1))
    names = accuracy.label_names(labeled)
    return estimation_multiclass.labeled_probabilities(
        scores[keep], [names[i] for i in keep.tolist()], labeled.score_classes
    )


def _labeled_scores(labeled: accuracy.Labeled) -> LabeledScores:
    """The pairs whose labels compare with scores, as accuracy scores them; checked."""
    evaluated = accuracy.evaluate(BINARY, labeled) if len(labeled) else None
    if evaluated is None:
        return estimation.unusable(estimation.BASELINE_WITHOUT_LABELS)
    scored = evaluated[1]
    if scored.kind != "binary":
        return estimation.unusable(estimation.BASELINE_WITHOUT_SCORES)
    if scored.scores is None:
        return estimation.unusable(estimation.BASELINE_SCORES_OUTSIDE_UNIT_INTERVAL)
    return estimation.labeled_scores(scored.scores, scored.y_true)


def baseline_from_records(
    session: Session, *, model: MonitoredModel, name: str, records: list[Any],
    max_features: int = registry.DEFAULT_MAX_FEATURES,
) -> Baseline:  # fmt: skip
    """Records ``{"features": {...}, "prediction"?, "label"?}``; keys of ``features`` that are
    not the model's features are ignored (with a warning), as are other keys."""
    if not records:
        raise InvalidPayload("records: the baseline has no records")
    raw = columns_from_records(records)
    keys = dict.fromkeys(k for r in records if isinstance(r, dict) for k in r if k != "features")
    use = columns.choose(
        [str(k) for k in keys], model=model.name, declared=_declared(model),
        given_features=list(raw.features), source=columns.RECORDS,
    )  # fmt: skip
    raw.features = {name: raw.features[name] for name in use.features}
    return baseline_from_raw(session, model=model, name=name, raw=raw, source="records", use=use,
                             max_features=max_features)  # fmt: skip


def baseline_from_table(
    session: Session, *, model: MonitoredModel, name: str, table: files.Table,
    max_features: int = registry.DEFAULT_MAX_FEATURES,
) -> Baseline:  # fmt: skip
    """A CSV or Parquet file: its columns sorted into features, prediction and label (others
    ignored, with a warning), every row checked (an error names its line)."""
    frame = table.frame
    frame.columns = [str(c) for c in frame.columns]
    if len(frame) == 0:
        raise InvalidPayload(
            "file: no rows after its header line" if table.kind == "CSV" else "file: no rows"
        )
    use = columns.choose(list(frame.columns), model=model.name, declared=_declared(model))
    numerical = frozenset(f.name for f in registry.feature_specs(model) if f.kind == "numerical")
    embedded = frozenset(e.name for e in registry.embedding_specs(model))
    return baseline_from_raw(
        session, model=model, name=name, raw=files.frame_to_raw(frame, use, numerical, embedded),
        source="file", use=use, where=table.where, max_features=max_features,
    )  # fmt: skip


def _cluster_by(model: MonitoredModel) -> str | None:
    """drift.cluster_by: a baseline made while it is set keeps each value's cluster."""
    key = (model.drift or {}).get("cluster_by")
    return key if isinstance(key, str) else None


def _declared(model: MonitoredModel) -> list[str]:
    return [f["name"] for f in model.features or []]


def baseline_from_window(
    session: Session, *, model: MonitoredModel, name: str, start: datetime, end: datetime,
    retention: Retention = KEEP_EVERYTHING,
) -> Baseline:  # fmt: skip
    if end <= start:
        raise InvalidPayload("from_window: 'end' must be after 'start'")
    _check_retained(retention, start, "from_window")
    features = registry.feature_specs(model)
    window = read_window(session, model=model, start=start, end=end)
    if len(window) == 0:
        raise InvalidPayload(
            f"from_window: model {model.name!r} has no predictions from {start.isoformat()} "
            f"to {end.isoformat()}"
        )
    embeddings = registry.embedding_specs(model)
    profile = profiles.profile(window, features, _cluster_by(model), embeddings)
    if model.task == BINARY:
        profile.labeled = _labeled_scores(
            repository.labeled(session, model_id=model.id, start=start, end=end)
        )
    elif model.task == MULTICLASS:
        profile.labeled = _labeled_probabilities(
            repository.labeled(session, model_id=model.id, start=start, end=end, scores=True)
        )
    elif model.task == REGRESSION:
        profile.labeled = _window_labeled_rows(
            repository.labeled(session, model_id=model.id, start=start, end=end), window,
            features,
        )  # fmt: skip
    use = columns.ColumnUse(
        features=[f.name for f in features] + [e.name for e in embeddings],
        prediction=columns.PREDICTION if profile.prediction is not None else None,
        label=None,
    )
    baseline = repository.insert_baseline(
        session, model_id=model.id, name=name, source="window", profile=profile,
        columns=use.summary(), warnings=_value_warnings(profile, model),
        window_start=start, window_end=end,
    )  # fmt: skip
    _prepare_segments(session, model=model, baseline=baseline, window=window, features=features)
    model.active_baseline_id = baseline.id
    session.flush()
    return baseline


def baseline_moving(
    session: Session, *, model: MonitoredModel, name: str, source: str, length: str,
    summaries: bool = True,
) -> Baseline:  # fmt: skip
    """A trailing or lag baseline (CONTRACT section 8): checked against the model's window and
    summary buckets; its ``rows`` are those of the span the current window compares with."""
    if not summaries:
        raise Conflict(
            f"{source}: summaries are off (DRIFTWATCH_SUMMARIES=0), and a {source} baseline is "
            "merged from the summaries kept at ingest for each run"
        )
    try:
        seconds = int(parse_duration(length).total_seconds())
    except ValueError as error:
        raise InvalidPayload(f"{source}: {error}") from None
    bucket = summary_service.bucket_seconds(model.window_seconds)
    refused = moving.refusal(source, seconds, model.window_seconds, bucket)
    if refused is not None:
        raise InvalidPayload(refused)
    start, end, rows = _moving_now(session, model=model, source=source, seconds=seconds)
    warnings = []
    if rows == 0:
        warnings.append(
            f"the span the current window compares with ({iso(start)} to {iso(end)}) holds no "
            "predictions yet: until a window's span does, its run has no baseline to compare "
            "with (insufficient baseline, the reason stated in baseline_reason)"
        )
    baseline = repository.insert_moving_baseline(
        session, model_id=model.id, name=name, source=source, span_seconds=seconds, rows=rows,
        warnings=warnings,
    )  # fmt: skip
    model.active_baseline_id = baseline.id
    session.flush()
    return baseline


def _moving_now(
    session: Session, *, model: MonitoredModel, source: str, seconds: int
) -> tuple[datetime, datetime, int]:
    """The span the model's current (open) window compares with, and its predictions."""
    length = timedelta(seconds=model.window_seconds)
    current = window_start(utcnow(), length)
    start, end = moving.span_of(source, seconds, current, current + length)
    predictions = [("prediction", "value"), ("prediction", "class")]
    rows = summary_service.span_summary(session, model_id=model.id, start=start, end=end,
                                        columns=predictions).rows  # fmt: skip
    return start, end, rows


def moving_now(
    session: Session, *, model: MonitoredModel, baseline: Baseline
) -> tuple[datetime, datetime, int] | None:
    """A trailing or lag baseline's span for the current window, and its rows (None: another
    kind of baseline)."""
    if baseline.source not in moving.MOVING or baseline.span_seconds is None:
        return None
    return _moving_now(session, model=model, source=baseline.source, seconds=baseline.span_seconds)


def activate(session: Session, *, model: MonitoredModel, baseline_id: int) -> Baseline:
    baseline = repository.get_baseline(session, model_id=model.id, baseline_id=baseline_id)
    if baseline is None:
        raise NotFound(f"model {model.name!r} has no baseline {baseline_id}")
    model.active_baseline_id = baseline.id
    session.flush()
    return baseline


def delete_baseline(session: Session, *, model: MonitoredModel, baseline_id: int) -> None:
    """Delete a baseline that is not the active one. The runs computed against it stay, naming
    it; windows queued against it and not computed yet move to the active baseline."""
    baseline = repository.get_baseline(session, model_id=model.id, baseline_id=baseline_id)
    if baseline is None:
        raise NotFound(f"model {model.name!r} has no baseline {baseline_id}")
    active = active_baseline(session, model=model)
    assert active is not None  # the model has this baseline at least
    if active.id == baseline.id:
        raise Conflict(
            f"baseline {baseline.id} ({baseline.name!r}) is model {model.name!r}'s active "
            "baseline: its runs compare with it. Activate another one first (PUT "
            f"/api/v1/models/{model.name}/baselines/ID/activate), or create a new one, then "
            "delete this one"
        )
    repository.delete_baseline(session, baseline=baseline, queue_to=active.id)


def active_baseline(session: Session, *, model: MonitoredModel) -> Baseline | None:
    if model.active_baseline_id is not None:
        found = repository.get_baseline(
            session, model_id=model.id, baseline_id=model.active_baseline_id
        )
        if found is not None:
            return found
    newest = repository.list_baselines(session, model_id=model.id)
    return newest[0] if newest else None


# -- runs ---------------------------------------------------------------------------------------


def read_window(
    session: Session, *, model: MonitoredModel, start: datetime, end: datetime
) -> chunks.WindowColumns:
    features = registry.feature_specs(model)
    return ingest_repository.read_window(
        session, model_id=model.id, start=start, end=end,
        num_width=sum(f.kind == "numerical" for f in features),
        cat_width=sum(f.kind == "categorical" for f in features),
        embeddings=[(e.name, e.dimensions) for e in registry.embedding_specs(model)],
    )  # fmt: skip


def compute_run(
    session: Session, *, model: MonitoredModel, run: Run, alerting: AlertingContext,
    exact: bool = False, exact_max_rows: int = DEFAULT_EXACT_MAX_ROWS, expired: bool = False,
    label_horizon: timedelta = DEFAULT_LABEL_HORIZON,
) -> Run:  # fmt: skip
    """Compute the run's window now, store the result on it, and apply the alert rules (the
    transitions and notifications they cause commit with the run). A window holding more than
    ``exact_max_rows`` predictions, or whose raw rows retention removed while its summaries
    cover it (``expired``: the retention policy removed some), is computed from summaries
    unless ``exact``. A window older than ``label_horizon`` (DRIFTWATCH_LABEL_HORIZON) is
    mature whatever its label coverage."""
    started = time.perf_counter()
    chosen = session.get(Baseline, run.baseline_id)
    if chosen is not None and chosen.source in moving.MOVING:
        return _compute_moving(session, model=model, run=run, baseline=chosen, alerting=alerting,
                               started=started, label_horizon=label_horizon)  # fmt: skip
    if not exact:
        span = (
            _span_summary(session, model=model, run=run)
            if run.kind == SPAN
            else _summaries_instead(session, model=model, run=run,
                                    exact_max_rows=exact_max_rows, expired=expired)
        )  # fmt: skip
        if span is not None:
            try:
                return _compute_from_summaries(session, model=model, run=run, span=span,
                                               alerting=alerting, started=started,
                                               label_horizon=label_horizon,
                                               exact_max_rows=exact_max_rows)  # fmt: skip
            except from_summary.NeedsRows:
                pass  # a column needs rows, and they exist
    baseline = session.get(Baseline, run.baseline_id)
    if baseline is None:
        raise NotFound(f"baseline {run.baseline_id} does not exist")
    if baseline.deleted_at is not None:
        gone = f"run {run.id}: its baseline {baseline.id} ({baseline.name!r}) was deleted"
        if run.computations:
            raise BaselineDeleted(f"{gone}, so the run computed before stays as it was")
        raise Conflict(f"{gone} before its window was computed")
    if session.get_bind().dialect.name == "postgresql":
        # The baseline (from the cache, or from the database on a session of its own) is
        # read while this session reads the window. (Not on SQLite: the other session would
        # wait for this one's write lock.)
        with ThreadPoolExecutor(max_workers=1) as pool:
            loading = pool.submit(_load_profile, session.get_bind(), baseline)
            window = read_window(session, model=model, start=run.window_start, end=run.window_end)
            profile = loading.result()
    else:
        profile = PROFILES.get(session, baseline)
        window = read_window(session, model=model, start=run.window_start, end=run.window_end)
    held = len(window.timestamps_us)
    if shrunk_since_computed(run, held):
        raise RawDataGone(
            f"run {run.id}: the window from {iso(run.window_start)} now holds {held} "
            f"predictions where it held {run.rows} when computed: raw data was removed (by "
            "the retention policy), so the run computed before stays as it was"
        )
    features = registry.feature_specs(model)
    if features and not profile.features:
        raise RuntimeError(f"baseline {baseline.id} has no prepared columns")
    if len(profile.features) != len(features):
        # Features were added after the baseline was prepared: compare those it has.
        features = [f for f in features if f.name in {c.name for c in profile.features}]
    labeled = repository.labeled(
        session,
        model_id=model.id,
        start=run.window_start,
        end=run.window_end,
        scores=model.task == MULTICLASS,
    )
    window = narrow(window, model, features)
    result, distributions = compute.compute(
        task=model.task,
        features=features,
        settings=DriftSettings.from_model(model.drift, timedelta(seconds=model.window_seconds)),
        baseline=profile,
        window=window,
        labeled=labeled,
        rejected=repository.count_rejected(
            session, model_id=model.id, start=run.window_start, end=run.window_end
        ),
        performance=PerformanceSettings.from_model(model.performance),
        past_horizon=run.window_end < utcnow() - label_horizon,
        embeddings=registry.embedding_specs(model),
    )
    if profile.joint is not None:  # the multivariate nulls this run measured, kept
        repository.keep_prepared(session, baseline_id=baseline.id, joint=profile.joint)
    result.versions = _versions(session, model, run, result, profile, labeled,
                                window=window, features=features)  # fmt: skip
    _segments(session, model=model, run=run, result=result, baseline=baseline, profile=profile,
              window=window, features=features, labeled=labeled,
              label_horizon=label_horizon)  # fmt: skip
    result.baseline_rows = profile.rows
    return _store(session, model=model, run=run, result=result, distributions=distributions,
                  alerting=alerting, started=started)  # fmt: skip


def _segments(
    session: Session, *, model: MonitoredModel, run: Run, result: RunResult, baseline: Baseline,
    profile: profiles.BaselineProfile, window: chunks.WindowColumns, features: list[FeatureSpec],
    labeled: accuracy.Labeled, label_horizon: timedelta,
) -> None:  # fmt: skip
    """The run's segments (CONTRACT section 10), from the window the run read."""
    names, min_rows = registry.segment_settings(model)
    if not names:
        return
    if not len(window):
        return
    known = [n for n in names if any(f.name == n for f in features)]
    if not known:
        result.segments_reason = (
            f"the baseline has no column for the segment features ({', '.join(names)})"
        )
        return
    result.segments, result.segments_omitted = segments.compute_segments(
        task=model.task, features=features,
        settings=DriftSettings.from_model(model.drift, timedelta(seconds=model.window_seconds)),
        baseline=profile, prepared=SEGMENT_PROFILES.get(session, baseline), window=window,
        labeled=labeled, segments=known, min_rows=min_rows,
        performance=PerformanceSettings.from_model(model.performance),
        past_horizon=run.window_end < utcnow() - label_horizon,
    )  # fmt: skip


SEGMENTS_NEED_ROWS = (
    "segments need the window's rows, and retention removed them: summaries are kept for the "
    "whole window, not per segment"
)


def _segments_beside_summaries(
    session: Session, *, model: MonitoredModel, run: Run, result: RunResult, baseline: Baseline,
    profile: profiles.BaselineProfile, features: list[FeatureSpec], labeled: accuracy.Labeled,
    rows_exist: bool, label_horizon: timedelta,
) -> None:  # fmt: skip
    """A run from summaries: its segments from the window's rows while they exist (one read
    of the window: summaries are not kept per segment), or a reason why there are none. An
    earlier computation's segments stay when the rows are gone."""
    names, _ = registry.segment_settings(model)
    if not names:
        return
    if not rows_exist:
        earlier = run.result
        if earlier is not None and earlier.segments:
            result.segments, result.segments_omitted = earlier.segments, earlier.segments_omitted
        else:
            result.segments_reason = SEGMENTS_NEED_ROWS
        return
    window = narrow(
        read_window(session, model=model, start=run.window_start, end=run.window_end),
        model, features,
    )  # fmt: skip
    _segments(session, model=model, run=run, result=result, baseline=baseline, profile=profile,
              window=window, features=features, labeled=labeled,
              label_horizon=label_horizon)  # fmt: skip


def _summaries_instead(
    session: Session, *, model: MonitoredModel, run: Run, exact_max_rows: int, expired: bool
) -> SpanSummary | None:
    """The window's summaries when the run is to be computed from them: more predictions
    than ``exact_max_rows``, or fewer raw rows than its summaries hold (retention removed
    them); None: from rows, as always. A range off the summaries' bucket bounds reads its
    rows: the buckets would cover another range."""
    bucket = summary_service.bucket_seconds(model.window_seconds)
    if not spans.on_bucket_bounds(run.window_start, run.window_end, bucket):
        return None
    held = ingest_repository.window_capacity(
        session, model_id=model.id, start=run.window_start, end=run.window_end
    )
    gone = expired or held == 0 or shrunk_since_computed(run, held)
    if held <= exact_max_rows and not gone:
        return None  # under the limit, rows there: exactly as before
    span = summary_service.span_summary(session, model_id=model.id, start=run.window_start,
                                        end=run.window_end)  # fmt: skip
    if expired:  # (part of) the window is past the retention cutoff: what its summaries hold
        return span if span.rows else None
    if held <= exact_max_rows:  # rows removed: summaries when they hold more
        return span if span.rows > held else None
    return span if span.rows > exact_max_rows else None  # (chunks may straddle the window)


def _span_summary(session: Session, *, model: MonitoredModel, run: Run) -> SpanSummary | None:
    """A span's merged summary (one merge per column of its buckets' summaries), whatever
    its size; None when no summary covers it (then its rows are read)."""
    span = summary_service.span_summary(session, model_id=model.id, start=run.window_start,
                                        end=run.window_end)  # fmt: skip
    return span if span.rows else None


def _compute_from_summaries(
    session: Session, *, model: MonitoredModel, run: Run, span: SpanSummary,
    alerting: AlertingContext, started: float, label_horizon: timedelta,
    exact_max_rows: int = DEFAULT_EXACT_MAX_ROWS,
) -> Run:  # fmt: skip
    baseline = session.get(Baseline, run.baseline_id)
    if baseline is None:
        raise NotFound(f"baseline {run.baseline_id} does not exist")
    if baseline.deleted_at is not None:
        raise Conflict(f"run {run.id}: its baseline {baseline.id} ({baseline.name!r}) was "
                       "deleted")  # fmt: skip
    profile = PROFILES.get(session, baseline)
    features = registry.feature_specs(model)
    known = {c.name for c in profile.features}
    features = [f for f in features if f.name in known]
    labeled = repository.labeled(
        session,
        model_id=model.id,
        start=run.window_start,
        end=run.window_end,
        scores=model.task == MULTICLASS,
    )
    held = ingest_repository.window_capacity(
        session, model_id=model.id, start=run.window_start, end=run.window_end
    )
    result, distributions = from_summaries.compute_from_summaries(
        task=model.task, features=features,
        settings=DriftSettings.from_model(model.drift, timedelta(seconds=model.window_seconds)),
        baseline=profile, span=span, labeled=labeled,
        rejected=repository.count_rejected(
            session, model_id=model.id, start=run.window_start, end=run.window_end
        ),
        rows_exist=_rows_to_read(run, held, span.rows, exact_max_rows),
        performance=PerformanceSettings.from_model(model.performance),
        past_horizon=run.window_end < utcnow() - label_horizon,
    )  # fmt: skip
    result.features += embedding_drift.from_summaries(
        registry.embedding_specs(model), profile.embeddings,
        DriftSettings.from_model(model.drift, timedelta(seconds=model.window_seconds)),
    )  # fmt: skip
    result.versions = _versions(session, model, run, result, profile, labeled)
    if run.kind == SPAN:
        result.span = spans.coverage(session, model=model, start=run.window_start,
                                     end=run.window_end, buckets=span.buckets)  # fmt: skip
    else:  # a span's segments are its windows' own: reading a week's rows would undo its cost
        _segments_beside_summaries(
            session, model=model, run=run, result=result, baseline=baseline, profile=profile,
            features=features, labeled=labeled, rows_exist=held >= span.rows,
            label_horizon=label_horizon,
        )  # fmt: skip
    result.baseline_rows = profile.rows
    _keep_earlier_labels(result, run.result, labeled)
    return _store(session, model=model, run=run, result=result, distributions=distributions,
                  alerting=alerting, started=started)  # fmt: skip


def _keep_earlier_labels(
    result: RunResult, earlier: RunResult | None, labeled: accuracy.Labeled
) -> None:
    if earlier is not None and len(labeled) < earlier.labeled_rows:
        # retention removed the labels too: the accuracy computed while they existed stays
        result.labeled_rows, result.accuracy = earlier.labeled_rows, earlier.accuracy
        result.versions = result.versions or earlier.versions


def _compute_moving(
    session: Session, *, model: MonitoredModel, run: Run, baseline: Baseline,
    alerting: AlertingContext, started: float, label_horizon: timedelta,
) -> Run:  # fmt: skip
    """A run against a trailing or lag baseline: the window's summary against its span's,
    both merged from summaries (``monitoring.moving``)."""
    if baseline.deleted_at is not None:
        gone = f"run {run.id}: its baseline {baseline.id} ({baseline.name!r}) was deleted"
        if run.computations:
            raise BaselineDeleted(f"{gone}, so the run computed before stays as it was")
        raise Conflict(f"{gone} before its window was computed")
    assert baseline.span_seconds is not None
    bounds: dict[str, Any] = {"model_id": model.id, "start": run.window_start,
                              "end": run.window_end}  # fmt: skip
    span_start, span_end = moving.span_of(baseline.source, baseline.span_seconds,
                                          run.window_start, run.window_end)  # fmt: skip
    reference = summary_service.span_summary(session, model_id=model.id, start=span_start,
                                             end=span_end)  # fmt: skip
    window = summary_service.span_summary(session, **bounds)
    features = registry.feature_specs(model)
    profile = moving.profile_of(reference, features)
    labeled = repository.labeled(session, **bounds)
    result, distributions = from_summaries.compute_from_summaries(
        task=model.task, features=features,
        settings=DriftSettings.from_model(model.drift, timedelta(seconds=model.window_seconds)),
        baseline=profile, span=window, labeled=labeled,
        rejected=repository.count_rejected(session, **bounds), rows_exist=False,
        performance=PerformanceSettings.from_model(model.performance),
        past_horizon=run.window_end < utcnow() - label_horizon, column_of=moving.column,
    )  # fmt: skip
    result.baseline_rows = reference.rows
    result.baseline_span = BaselineSpan(start=span_start, end=span_end)
    result.baseline_reason = moving.reason(
        reference, first=summary_service.first_bucket(session, model_id=model.id),
        window_start=run.window_start, window_end=run.window_end, window_rows=window.rows,
        window_held=ingest_repository.window_capacity(session, **bounds) if not window.rows else 0,
    )  # fmt: skip
    result.versions = _versions(session, model, run, result, moving.for_versions(profile), labeled)
    if run.kind == SPAN:  # several whole windows: what the span covers, as any span run
        result.span = spans.coverage(session, model=model, start=run.window_start,
                                     end=run.window_end, buckets=window.buckets)  # fmt: skip
    _keep_earlier_labels(result, run.result, labeled)
    return _store(session, model=model, run=run, result=result, distributions=distributions,
                  alerting=alerting, started=started)  # fmt: skip


def _rows_to_read(run: Run, held: int, summarized: int, exact_max_rows: int) -> bool:
    """Whether a column that needs raw rows (a test without a bound from summaries) may read
    them: they exist, and, for a span, they are few enough that reading them costs what a
    window's do (a span above the limit reports such a column untested)."""
    if run.kind == SPAN:
        return held >= summarized and held <= exact_max_rows
    return held >= summarized


def _store(
    session: Session, *, model: MonitoredModel, run: Run, result: RunResult,
    distributions: dict[str, Any], alerting: AlertingContext, started: float,
) -> Run:  # fmt: skip
    if run.kind == SPAN and result.span is None:  # from rows (from summaries: set already)
        result.span = spans.coverage(session, model=model, start=run.window_start,
                                     end=run.window_end, buckets=None)  # fmt: skip
    run.distributions = distributions
    run.result = result
    run.rows = result.rows
    run.labeled_rows = result.labeled_rows
    run.status = RunStatus.DONE
    run.error = None
    run.lease_until = None
    run.computations = (run.computations or 0) + 1
    run.computed_at = utcnow()
    run.duration_seconds = time.perf_counter() - started
    session.flush()
    if run.kind == WINDOW:
        # A custom range is no window of the series: it has no place in the charts' time
        # series (a day-long range is not one more point among hourly windows).
        repository.store_metrics(session, run=run, metrics=result.metrics())
    # Rules apply to every run, scheduled or on demand (CONTRACT section 5), custom ranges too
    # (every run's span has closed: run_now refuses one that ends in the future); not to a
    # span of whole windows: the rules saw each of its windows, and the scheduler keeps a day
    # and a week of every model for the dashboard, which would raise each alert again.
    if run.kind != SPAN:
        alerts.evaluate_run(session, model=model, run=run, context=alerting)
    metrics.record_run(model.name, "done", run.duration_seconds)
    return run


def _versions(
    session: Session, model: MonitoredModel, run: Run, result: RunResult,
    profile: profiles.BaselineProfile, labeled: accuracy.Labeled,
    window: chunks.WindowColumns | None = None, features: list[FeatureSpec] | None = None,
) -> list[VersionSlice]:  # fmt: skip
    """The run's window split by model version: one aggregate, and the window's versions and
    predictions read again only when it holds several (their features from ``window``, the
    run's own read, when it was computed from rows)."""
    span: dict[str, Any] = {"model_id": model.id, "start": run.window_start,
                            "end": run.window_end}  # fmt: skip
    counts = repository.version_counts(session, **span)
    if not counts:
        return []
    threshold = PerformanceSettings.from_model(model.performance).decision_threshold
    shadows = versions.shadows(model.task, repository.shadowed(session, **span), threshold)
    return [*versions.slices(
        result, task=model.task, counts=counts, baseline=profile,
        labeled=labeled,
        settings=DriftSettings.from_model(model.drift, timedelta(seconds=model.window_seconds)),
        predictions=repository.version_predictions(session, **span) if len(counts) > 1 else None,
        threshold=threshold, window=window, features=features,
    ), *shadows]  # fmt: skip


def shrunk_since_computed(run: Run, held: int) -> bool:
    """Whether the run's window, now holding ``held`` predictions, held more when it was
    computed: predictions are only ever removed by retention, so its raw data is (partly) gone."""
    return bool(run.computations) and run.rows is not None and held < run.rows


def _load_profile(bind: Any, baseline: Baseline) -> profiles.BaselineProfile:
    with Session(bind) as session:
        return PROFILES.get(session, baseline)


def narrow(
    window: chunks.WindowColumns, model: MonitoredModel, keep: list[FeatureSpec]
) -> chunks.WindowColumns:
    """The window restricted to the features a baseline knows (in model order)."""
    all_features = registry.feature_specs(model)
    if len(keep) == len(all_features):
        return window
    names = {f.name for f in keep}
    num = [i for i, f in enumerate(f for f in all_features if f.kind == "numerical")
           if f.name in names]  # fmt: skip
    cat_features = [f for f in all_features if f.kind == "categorical"]
    cat = [i for i, f in enumerate(cat_features) if f.name in names]
    return chunks.WindowColumns(
        timestamps_us=window.timestamps_us,
        num_values=window.num_values[:, num],
        cat_codes=window.cat_codes[:, cat],
        categories=[window.categories[i] for i in cat],
        prediction_values=window.prediction_values,
        class_codes=window.class_codes,
        classes=window.classes,
        chunk_spans=window.chunk_spans,
        embeddings=window.embeddings,
        prediction_scores=window.prediction_scores,
        score_classes=window.score_classes,
    )


def _check_retained(retention: Retention, start: datetime, field: str | None = None) -> None:
    """Refuse a window whose raw data is (partly) gone: a run of it, or (``field`` named) a
    baseline from it."""
    cutoff = retention.expired(start, utcnow())
    if cutoff is not None:
        assert retention.age is not None
        gone = (
            f"raw predictions before {iso(cutoff)} were removed by the retention policy "
            f"(DRIFTWATCH_RETENTION, {describe(retention.age)})"
        )
        if field is None:
            raise Conflict(f"{gone}, so the window starting at {iso(start)} can no longer be "
                           "computed (its run, if computed before, stays)")  # fmt: skip
        raise Conflict(f"{field}: {gone}, so a baseline can no longer be made from a window "
                       f"starting at {iso(start)}")  # fmt: skip


def run_now(
    session: Session, *, model: MonitoredModel, start: datetime, end: datetime,
    alerting: AlertingContext, baseline_id: int | None = None,
    retention: Retention = KEEP_EVERYTHING, exact: bool = False,
    exact_max_rows: int = DEFAULT_EXACT_MAX_ROWS, label_horizon: timedelta = DEFAULT_LABEL_HORIZON,
) -> Run:  # fmt: skip
    """Compute a window on demand (the API and ``driftwatch run``); the same window and
    baseline computed again updates its run. A window the scheduler is computing at this
    moment is answered with the scheduler's result once it is there. A window whose raw data
    the retention policy has (partly) removed is refused: its earlier run stays as it was."""
    if end <= start:
        raise InvalidPayload("'end' must be after 'start'")
    now = utcnow()
    if end > now:
        # an open span holds part of its data: as a window it would stand in the series, the
        # status and the rules with a partial result (the scheduler computes it once closed)
        raise BadRequest(
            f"'end' ({iso(end)}) is in the future (now {iso(now)}): a run covers time that has "
            "passed; the window still open is computed when it closes"
        )
    expired = retention.expired(start, utcnow()) is not None
    if expired and (exact or not summary_service.span_summary(
        session, model_id=model.id, start=start, end=end, columns=[("prediction", "value"),
                                                                   ("prediction", "class")]
    ).rows):  # fmt: skip
        _check_retained(retention, start)  # (without summaries, or reading raw rows)
    if expired:
        _check_summarized(model, start, end)
    if baseline_id is None:
        baseline = active_baseline(session, model=model)
        if baseline is None:
            raise Conflict(
                f"model {model.name!r} has no baseline yet: create one with "
                f"POST /api/v1/models/{model.name}/baselines (or `driftwatch baselines create "
                f"{model.name} --name NAME --file PATH`)"
            )
    else:
        baseline = repository.get_baseline(session, model_id=model.id, baseline_id=baseline_id)
        if baseline is None:
            raise NotFound(f"model {model.name!r} has no baseline {baseline_id}")
    if exact and baseline.source in moving.MOVING:
        raise BadRequest(
            f"exact: baseline {baseline.id} ({baseline.name!r}) is a {baseline.source} baseline, "
            "merged from summaries for each run, so its runs compare summaries on both sides; "
            "'exact' reads raw rows against a baseline of stored rows (name one with "
            "'baseline')"
        )
    kind = _kind(start, end, timedelta(seconds=model.window_seconds))
    window = {"model_id": model.id, "baseline_id": baseline.id, "start": start, "end": end}
    if kind == WINDOW:
        _set_apart_from_stretches(session, model=model, window=window, now=utcnow())
    computed_before = repository.computations(
        session, model_id=model.id, baseline_id=baseline.id, start=start, end=end
    )
    repository.enqueue(session, model_id=model.id, baseline_id=baseline.id, windows=[(start, end)],
                       kind=kind)  # fmt: skip
    run = _lock_when_free(session, window)
    if run.kind == NO_TRAFFIC:
        run.kind = kind  # a stretch without traffic computed on demand is a run like any other
    elif run.status == "done" and (run.computations or 0) > computed_before:
        return run  # computed by the process this request waited for (no clocks compared)
    return compute_run(session, model=model, run=run, alerting=alerting, exact=exact,
                       exact_max_rows=exact_max_rows, expired=expired,
                       label_horizon=label_horizon)  # fmt: skip


def _kind(start: datetime, end: datetime, window: timedelta) -> str:
    """window: one of the model's windows; span: several whole ones; custom: anything else."""
    if is_window(start, end, window):
        return WINDOW
    return SPAN if spans.is_span(start, end, window) else CUSTOM


def _check_summarized(model: MonitoredModel, start: datetime, end: datetime) -> None:
    """Refuse a range whose raw rows retention removed when its bounds are not on the
    summaries' bucket bounds: its summaries would cover another range."""
    bucket = summary_service.bucket_seconds(model.window_seconds)
    if spans.on_bucket_bounds(start, end, bucket):
        return
    first, last = spans.aligned_range(start, end, timedelta(seconds=model.window_seconds))
    raise Conflict(
        f"the raw predictions from {iso(start)} were removed by the retention policy, and "
        f"its summaries are kept per bucket of {bucket} s: a range from {iso(start)} "
        f"to {iso(end)} cuts a bucket, so it can no longer be computed; ask for whole "
        f"windows, such as {iso(first)} to {iso(last)}"
    )


def _set_apart_from_stretches(
    session: Session, *, model: MonitoredModel, window: dict[str, Any], now: datetime
) -> None:
    """A window computed on demand inside a stretch without traffic is no longer part of it:
    the stretch is split around it, as when predictions come into it late. (The stretch that is
    this very window and baseline becomes the window's run, below.)"""
    start, end = window["start"], window["end"]
    if not repository.no_traffic_overlapping(session, model_id=model.id, start=start, end=end):
        return
    # the model's lock first, as planning takes it (then the stretches' rows): one at a time
    repository.lock_model(session, model_id=model.id)
    for stretch in repository.no_traffic_overlapping(
        session, model_id=model.id, start=start, end=end, lock=True
    ):
        same = (stretch.baseline_id, stretch.window_start, stretch.window_end) == (
            window["baseline_id"], start, end)  # fmt: skip
        if not same:
            repository.set_apart(session, stretch=stretch, windows=[(start, end)], now=now,
                                 features=registry.feature_specs(model))  # fmt: skip


def _lock_when_free(session: Session, window: dict[str, Any]) -> Run:
    """The window's run, locked for this transaction once no other process computes it (the
    scheduler's claim skips a locked run, and the run is done when the lock goes)."""
    if session.get_bind().dialect.name != "postgresql":
        # SQLite: this transaction holds the database's write lock, so no one computes the
        # window now; a scheduler that claimed it computes it after this transaction (again).
        run = repository.lock_run(session, **window)
        assert run is not None
        return run
    deadline = time.monotonic() + RUN_WAIT_SECONDS
    while True:
        savepoint = session.begin_nested()  # a row lock taken in it goes when it rolls back
        run = repository.lock_run(session, **window)
        assert run is not None
        lease = run.lease_until
        if run.status != "running" or lease is None or lease <= utcnow():
            savepoint.commit()  # the lock stays with the transaction
            return run
        savepoint.rollback()  # the lease holder computes it: its result comes with its commit
        if time.monotonic() >= deadline:
            raise ServiceUnavailable(
                f"run {run.id}: the window from {iso(run.window_start)} to "
                f"{iso(run.window_end)} is being computed by {run.owner} (lease until "
                f"{iso(lease)}), for more than {RUN_WAIT_SECONDS:g} s so far: ask again "
                f"later (GET .../runs/{run.id} shows it once done)",
                retry_after=10,
            )
        time.sleep(0.05)


def run_out(session: Session, *, model: MonitoredModel, run: Run) -> RunOut:
    """The run as the API returns it, naming its baseline (a deleted one too)."""
    return to_out(run, model=model, baseline=repository.baseline_by_id(session, run.baseline_id))


def to_out(run: Run, *, model: MonitoredModel, baseline: Baseline | None) -> RunOut:
    """A run as the API returns it (CONTRACT section 3, Runs): its result, or while it is
    pending no numbers yet."""
    result = run.result.model_dump() if run.result else {}
    span = run.result.baseline_span if run.result else None
    if result and result.get("baseline_rows") is None and baseline is not None:
        if baseline.source not in moving.MOVING:  # a run stored before it said so
            result["baseline_rows"] = baseline.rows
    return RunOut(**{
        **result,
        "id": run.id, "model": model.name, "kind": run.kind,
        "window": WindowOut(start=run.window_start, end=run.window_end),
        "baseline": BaselineRef(id=run.baseline_id, name=baseline.name if baseline else None,
                                start=span.start if span else None,
                                end=span.end if span else None),
        "status": RunStatus(run.status), "rows": run.rows, "labeled_rows": run.labeled_rows,
        "computed_at": run.computed_at, "duration_seconds": run.duration_seconds,
        "error": run.error,
    })  # fmt: skip
