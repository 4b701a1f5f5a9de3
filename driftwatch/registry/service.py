"""Registering models and evolving their feature schema."""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from driftwatch.core import settings as drift_settings
from driftwatch.core.retention import KEEP_EVERYTHING, Retention, describe
from driftwatch.core.specs import EMBEDDING, EmbeddingSpec, FeatureSpec
from driftwatch.core.time import format_duration, parse_duration
from driftwatch.errors import BadRequest, Conflict, InvalidPayload, NotFound
from driftwatch.models import MonitoredModel
from driftwatch.registry import repository
from driftwatch.registry.schemas import (
    EMBEDDING_STATTEST_NAMES,
    Counts,
    DriftSettings,
    DriftSettingsOut,
    Feature,
    FeatureOut,
    ModelCreate,
    ModelOut,
    ModelUpdate,
)


def get_by_name(session: Session, *, name: str, for_update: bool = False) -> MonitoredModel:
    model = repository.get_by_name(session, name=name, for_update=for_update)
    if model is None:
        raise NotFound(f"model {name!r} does not exist")
    return model


def feature_specs(model: MonitoredModel) -> list[FeatureSpec]:
    """The model's tabular features (numerical and categorical), in storage order; embedding
    features are apart (``embedding_specs``): no tabular test, summary or chart sees them."""
    return [FeatureSpec(f["name"], f["kind"]) for f in model.features or []
            if f["kind"] != EMBEDDING]  # fmt: skip


def embedding_specs(model: MonitoredModel) -> list[EmbeddingSpec]:
    """The model's embedding features (CONTRACT section 11), in storage order."""
    return [EmbeddingSpec(f["name"], int(f["dimensions"])) for f in model.features or []
            if f["kind"] == EMBEDDING]  # fmt: skip


def stored_feature(feature: Feature) -> dict[str, Any]:
    """A feature as the model stores it: ``dimensions`` only where it applies."""
    return feature.model_dump(exclude_none=True)


def check_drift_settings(
    drift: dict[str, Any] | None, features: list[dict[str, Any]], *, model: str, task: str
) -> None:
    """Refuse settings that cannot apply, naming the setting and the column: a test for a kind
    of column it does not fit, one that cannot compare a multiclass model's predicted classes,
    a per-feature setting for a feature the model does not have."""
    if not drift:
        return
    from driftwatch.stats import registry as stattests

    def check(name: str | None, kind: str, where: str) -> None:
        refusal = None if name is None else stattests.get(name).refusal(kind)
        if refusal is not None:
            raise BadRequest(f"{where}: {refusal}")

    kinds = {f["name"]: f["kind"] for f in features}
    cluster_by = drift.get("cluster_by")
    if cluster_by is not None and cluster_by not in kinds:
        raise BadRequest(
            f"drift.cluster_by: {cluster_by!r} is not a feature of this model "
            + (f"(its features: {', '.join(kinds)})" if kinds else "(it declares none yet)")
            + "; the cluster key is a feature holding the unit's id (a user, a session)"
        )
    if cluster_by is not None and kinds[cluster_by] == EMBEDDING:
        raise BadRequest(f"drift.cluster_by: {cluster_by!r} is an embedding, not a unit's id")
    per_feature = drift.get("per_feature") or {}
    for feature in per_feature:
        if not kinds:
            raise BadRequest(
                f"drift.per_feature.{feature}: model declares no features yet (they are taken "
                "from its first baseline or batch); declare its features, or set per-feature "
                f"settings once it has them (PATCH /api/v1/models/{model})"
            )
        if feature not in kinds:
            raise BadRequest(
                f"drift.per_feature.{feature}: not a feature of this model "
                f"(its features: {', '.join(kinds)})"
            )
    check(drift.get("num_stattest"), "numerical", "drift.num_stattest")
    cat_stattest = drift.get("cat_stattest")
    check(cat_stattest, "categorical", "drift.cat_stattest")
    if cat_stattest is not None and task == "multiclass_classification":
        # a multiclass model's prediction, its class names, is tested with cat_stattest
        refusal = stattests.get(cat_stattest).refusal("categorical", categories=3)
        if refusal is not None:
            raise BadRequest(
                f"drift.cat_stattest: column 'prediction': {refusal}, and a multiclass model "
                "predicts 3 or more classes (choose another cat_stattest; a test of two "
                "categories may still be set for a binary feature under drift.per_feature)"
            )
    for feature, setting in per_feature.items():
        where = f"drift.per_feature.{feature}.stattest"
        _check_embedding_setting(setting.get("stattest"), kinds[feature], where)
        if kinds[feature] != EMBEDDING:
            check(setting.get("stattest"), kinds[feature], where)


def _check_embedding_setting(stattest: str | None, kind: str, where: str) -> None:
    """Embedding features take the embedding methods, and only they do."""
    if stattest is None:
        return
    is_method = stattest in EMBEDDING_STATTEST_NAMES
    if kind == EMBEDDING and not is_method:
        raise BadRequest(
            f"{where}: {stattest!r} is a test of one column; an embedding feature takes "
            + ", ".join(EMBEDDING_STATTEST_NAMES)
        )
    if kind != EMBEDDING and is_method:
        raise BadRequest(f"{where}: {stattest!r} applies to embedding features, not {kind} ones")


DEFAULT_SEGMENT_MIN_ROWS = 200  # CONTRACT section 10


def segment_settings(model: MonitoredModel) -> tuple[list[str], int]:
    """The model's segment features and the rows a value needs to be a segment."""
    return list(model.segments or []), model.segment_min_rows or DEFAULT_SEGMENT_MIN_ROWS


def check_segments(segments: list[str] | None, features: list[dict[str, Any]]) -> None:
    """Segments are categorical features of the model: refuse any other, naming it."""
    if not segments:
        return
    kinds = {f["name"]: f["kind"] for f in features}
    for name in segments:
        if not kinds:
            raise BadRequest(
                f"segments: {name!r}: the model declares no features yet (they are taken from "
                "its first baseline or batch); declare its features with the segments"
            )
        if name not in kinds:
            raise BadRequest(
                f"segments: {name!r} is not a feature of this model "
                f"(its features: {', '.join(kinds)})"
            )
        if kinds[name] != "categorical":
            categorical = [n for n, k in kinds.items() if k == "categorical"]
            raise BadRequest(
                f"segments: {name!r} is a {kinds[name]} feature; segments are the values of "
                "categorical features ("
                + (f"this model's: {', '.join(categorical)}" if categorical else "it has none")
                + ")"
            )


def check_window(seconds: int, retention: Retention) -> None:
    """A window longer than the retention period could never be computed: its first
    predictions would be removed before it closed."""
    if retention.age is not None and seconds > retention.age.total_seconds():
        raise BadRequest(
            f"window: {format_duration(seconds)} is longer than the retention period "
            f"(DRIFTWATCH_RETENTION, {describe(retention.age)}): a window's predictions would "
            "be removed before it could be computed"
        )


DEFAULT_MAX_FEATURES = 500  # DRIFTWATCH_MAX_FEATURES


def check_width(count: int, max_features: int, *, what: str) -> None:
    """Refuse a model of more than ``max_features`` features (``what`` says whose count)."""
    if count > max_features:
        raise InvalidPayload(
            f"features: {what} {count} features; a model has at most {max_features} "
            "(DRIFTWATCH_MAX_FEATURES)"
        )


def create(
    session: Session, *, body: ModelCreate, retention: Retention = KEEP_EVERYTHING,
    max_features: int = DEFAULT_MAX_FEATURES,
) -> MonitoredModel:  # fmt: skip
    check_width(len(body.features or []), max_features, what="the model lists")
    if repository.get_by_name(session, name=body.name) is not None:
        raise Conflict(f"model {body.name!r} already exists")
    check_drift_settings(
        body.drift.model_dump() if body.drift else None,
        [stored_feature(f) for f in body.features or []],
        model=body.name, task=body.task,
    )  # fmt: skip
    drift = (body.drift or DriftSettings()).model_dump()
    drift["verdict"] = drift["verdict"] or drift_settings.NEW_MODEL_VERDICT
    if drift["false_alarms_per_month"] is None:
        drift["false_alarms_per_month"] = drift_settings.DEFAULT_FALSE_ALARMS_PER_MONTH
    window_seconds = int(parse_duration(body.window).total_seconds())
    check_window(window_seconds, retention)
    check_segments(body.segments, [f.model_dump() for f in body.features or []])
    model = MonitoredModel(
        name=body.name,
        task=body.task,
        window_seconds=window_seconds,
        features=[stored_feature(f) for f in body.features or []],
        drift=drift,
        performance=_performance(None, body.decision_threshold, body.label_coverage_min),
        segments=body.segments or None,
        segment_min_rows=body.segment_min_rows,
    )
    session.add(model)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        raise Conflict(f"model {body.name!r} already exists") from None
    return model


def _performance(
    stored: dict[str, Any] | None, decision_threshold: float | None,
    label_coverage_min: float | None,
) -> dict[str, Any]:  # fmt: skip
    """The performance settings (CONTRACT section 9): those given replace the stored ones."""
    settings = drift_settings.PerformanceSettings.from_model(stored)
    return {
        "decision_threshold": settings.decision_threshold
        if decision_threshold is None else decision_threshold,
        "label_coverage_min": settings.label_coverage_min
        if label_coverage_min is None else label_coverage_min,
    }  # fmt: skip


def merge_features(current: list[dict[str, Any]], given: list[Feature]) -> list[dict[str, Any]]:
    """Stored features keep their kind and position; new ones are appended."""
    kinds = {f["name"]: f["kind"] for f in current}
    dimensions = {f["name"]: f.get("dimensions") for f in current}
    merged = list(current)
    for feature in given:
        known = kinds.get(feature.name)
        if known is None:
            merged.append(stored_feature(feature))
        elif known != feature.kind:
            raise BadRequest(
                f"feature {feature.name!r} is {known}; its kind cannot change "
                "(register a new feature name instead)"
            )
        elif dimensions[feature.name] != feature.dimensions:
            raise BadRequest(
                f"feature {feature.name!r} has {dimensions[feature.name]} dimensions; they "
                "cannot change (register a new feature name instead)"
            )
    return merged


def _patched_drift(stored: dict[str, Any] | None, given: DriftSettings) -> dict[str, Any]:
    """The drift settings a PATCH leaves: the ones given replace the stored ones as a whole,
    except the verdict, the false-alarm budget and the cluster key, which stay as stored unless
    given (a PATCH of a test or threshold never switches a model's verdict)."""
    stored = stored or {}
    drift = given.model_dump()
    if "cluster_by" not in given.model_fields_set:
        drift["cluster_by"] = stored.get("cluster_by")
    if drift["verdict"] is None:
        drift["verdict"] = stored.get("verdict") or drift_settings.STORED_DEFAULT_VERDICT
    if drift["false_alarms_per_month"] is None:
        drift["false_alarms_per_month"] = stored.get(
            "false_alarms_per_month", drift_settings.DEFAULT_FALSE_ALARMS_PER_MONTH
        )
    return drift


def update(
    session: Session, *, name: str, body: ModelUpdate, retention: Retention = KEEP_EVERYTHING,
    max_features: int = DEFAULT_MAX_FEATURES,
) -> MonitoredModel:  # fmt: skip
    model = get_by_name(session, name=name, for_update=True)
    if body.features is not None:
        merged = merge_features(model.features or [], body.features)
        check_width(len(merged), max_features, what="with these the model would have")
        model.features = merged
    if body.window is not None:
        model.window_seconds = int(parse_duration(body.window).total_seconds())
        check_window(model.window_seconds, retention)
    if body.drift is not None:
        model.drift = _patched_drift(model.drift, body.drift)
    if body.decision_threshold is not None or body.label_coverage_min is not None:
        model.performance = _performance(
            model.performance, body.decision_threshold, body.label_coverage_min
        )
    if body.drift is not None or body.features is not None:
        check_drift_settings(model.drift, model.features or [], model=model.name, task=model.task)
    if body.segments is not None:
        check_segments(body.segments, model.features or [])
        model.segments = body.segments or None
    if body.segment_min_rows is not None:
        model.segment_min_rows = body.segment_min_rows
    session.flush()
    return model


def adopt_inferred_features(
    session: Session, *, name: str, inferred: list[FeatureSpec],
    max_features: int = DEFAULT_MAX_FEATURES,
) -> MonitoredModel:  # fmt: skip
    """Give a model without features the schema inferred from its first batch (refused whole
    if wider than ``max_features``).

    The row is locked first, so two first batches racing agree on one schema.
    """
    check_width(len(inferred), max_features, what="this first batch names")
    locked = get_by_name(session, name=name, for_update=True)
    session.refresh(locked)
    if not locked.features:
        locked.features = [{"name": f.name, "kind": f.kind} for f in inferred]
        session.flush()
    return locked


def to_out(model: MonitoredModel, counts: Counts | None = None) -> ModelOut:
    return ModelOut(
        name=model.name,
        task=model.task,
        features=[
            FeatureOut(name=f["name"], kind=f["kind"], dimensions=f.get("dimensions"))
            for f in model.features or []
        ],
        window=format_duration(model.window_seconds),
        drift=drift_out(model),
        **asdict(drift_settings.PerformanceSettings.from_model(model.performance)),
        segments=list(model.segments or []),
        segment_min_rows=model.segment_min_rows or DEFAULT_SEGMENT_MIN_ROWS,
        created_at=model.created_at,
        counts=counts,
    )


def drift_out(model: MonitoredModel) -> DriftSettingsOut:
    """The model's drift settings as GET reports them: the stored ones (a model stored without
    any: the defaults, under Evidently's rule), with the level the budget sets."""
    stored = dict(model.drift or {})
    window = timedelta(seconds=model.window_seconds)
    settings = drift_settings.DriftSettings.from_model(stored, window)
    alpha = settings.alpha_per_window
    return DriftSettingsOut.model_validate({
        **stored,
        "verdict": settings.verdict,
        "false_alarms_per_month": settings.false_alarms_per_month,
        "alpha_per_window": alpha,
        "expected_false_alarms_per_month": alpha * drift_settings.windows_per_month(window),
    })  # fmt: skip


def counts(session: Session, *, model: MonitoredModel) -> Counts:
    return Counts(
        predictions=repository.count_predictions(session, model_id=model.id),
        labeled=repository.count_labeled(session, model_id=model.id),
    )


@dataclass(frozen=True, slots=True)
class ModelSnapshot:
    """What the ingest path needs of a model, safe to share between requests."""

    id: int
    name: str
    task: str
    features: tuple[FeatureSpec, ...]
    window_seconds: int = 3600
    embeddings: tuple[EmbeddingSpec, ...] = ()


class ModelCache:
    """Model lookups for ingest, kept a moment so that a batch costs no extra query.

    A schema change made in another process is seen within ``seconds``; a batch naming a
    feature the cached schema lacks is checked against the database at once.
    """

    def __init__(self, seconds: float = 2.0) -> None:
        self.seconds = seconds
        self._entries: dict[str, tuple[float, ModelSnapshot]] = {}
        self._lock = threading.Lock()

    def get(self, session: Session, *, name: str, fresh: bool = False) -> ModelSnapshot:
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(name)
        if entry is not None and not fresh and now - entry[0] < self.seconds:
            return entry[1]
        model = get_by_name(session, name=name)
        snapshot = ModelSnapshot(
            model.id,
            model.name,
            model.task,
            tuple(feature_specs(model)),
            model.window_seconds,
            tuple(embedding_specs(model)),
        )
        with self._lock:
            if len(self._entries) > 10_000:
                self._entries.clear()
            self._entries[name] = (now, snapshot)
        return snapshot

    def forget(self, name: str) -> None:
        with self._lock:
            self._entries.pop(name, None)
