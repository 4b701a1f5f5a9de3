"""Accepting prediction and ground-truth batches: validate each record, store the valid ones
once, keep the rejected ones with their reasons."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from driftwatch import metrics
from driftwatch.core.retention import Retention
from driftwatch.core.time import utcnow
from driftwatch.errors import InvalidPayload, PayloadTooLarge
from driftwatch.ingest import repository
from driftwatch.ingest.repository import DEFAULT_MAX_BATCH_PARTITIONS
from driftwatch.ingest.schemas import IngestResult, RejectedItem
from driftwatch.ingest.validation import (
    BINARY,
    DEFAULT_MAX_AGE,
    MULTICLASS,
    UNKNOWN_CLASSES,
    ModelClasses,
    RawColumns,
    RecordError,
    Rejection,
    ValidGroundTruth,
    ValidPredictions,
    columns_from_body,
    columns_from_records,
    infer_features,
    validate_columns,
    validate_ground_truth,
    validate_shadow_predictions,
)
from driftwatch.models import MonitoredModel
from driftwatch.registry import service as registry
from driftwatch.summaries import service as summaries


@dataclass(frozen=True, slots=True)
class Limits:
    """What one batch may make the service keep (the ``DRIFTWATCH_MAX_*`` settings)."""

    max_features: int = registry.DEFAULT_MAX_FEATURES
    max_record_age: timedelta = DEFAULT_MAX_AGE
    max_batch_partitions: int = DEFAULT_MAX_BATCH_PARTITIONS
    # The size of the request body the batch came in (0: unknown, no bound by it).
    body_bytes: int = 0
    # Keep column summaries of the stored rows (DRIFTWATCH_SUMMARIES).
    summaries: bool = True

    @classmethod
    def of(cls, settings: Any, body_bytes: int = 0) -> Limits:
        return cls(settings.max_features, settings.max_record_age, settings.max_batch_partitions,
                   body_bytes, settings.summaries)  # fmt: skip


# Predictions are held and stored densely: 8 bytes per feature per record, whether the record
# gives the feature or not. A batch may cost that much up to this many times its body's size
# (a record giving every feature of a model costs about half its JSON), or this floor: sparse
# records of a wide model (one feature of 500 each) would otherwise cost over 100 times the
# bytes received, and one key with several such requests at once the collector's memory.
DENSE_BYTES_PER_BODY_BYTE = 16
DENSE_FLOOR_BYTES = 16 * 1024 * 1024


def _dense_within_body(records: int, features: int, body_bytes: int) -> None:
    dense = records * features * 8
    allowed = max(DENSE_FLOOR_BYTES, DENSE_BYTES_PER_BODY_BYTE * body_bytes)
    if body_bytes and dense > allowed:
        raise PayloadTooLarge(
            f"this batch of {records} records for a model of {features} features is "
            f"{dense / 2**20:.0f} MiB held and stored (8 bytes a feature a record, given or "
            f"not), more than {DENSE_BYTES_PER_BODY_BYTE} times its {body_bytes}-byte body "
            f"or {DENSE_FLOOR_BYTES // 2**20} MiB: send fewer records per batch (the SDK "
            "splits a batch answered 413)"
        )


def _body_fields(body: Any, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidPayload('body: expected an object {"records": [...]}')
    unknown = sorted(set(body) - allowed, key=str)
    if unknown:
        expected = " or ".join(repr(name) for name in sorted(allowed))
        raise InvalidPayload(f"body: unknown field {unknown[0]!r}; expected {expected}")
    return body


def _check_size(count: int, max_records: int) -> None:
    if count > max_records:
        raise InvalidPayload(f"records: {count} records in one batch; the limit is {max_records}")


def batch_records(body: Any, *, max_records: int) -> list[Any]:
    """The ``records`` list of a batch body, or a 422 that says what is wrong with the body."""
    records = _body_fields(body, {"records"}).get("records")
    if not isinstance(records, list):
        raise InvalidPayload("records: required, a list of record objects")
    _check_size(len(records), max_records)
    return records


def prediction_batch(body: Any, *, max_records: int) -> RawColumns:
    """A prediction batch as raw columns: ``{"records": [...]}`` or ``{"columns": {...}}``."""
    fields = _body_fields(body, {"records", "columns"})
    if "columns" in fields:
        if "records" in fields:
            raise InvalidPayload("body: send either 'records' or 'columns', not both")
        try:
            raw = columns_from_body(fields["columns"])
        except RecordError as error:
            raise InvalidPayload(str(error)) from None
        _check_size(raw.count, max_records)
        return raw
    return columns_from_records(batch_records(body, max_records=max_records))


def _settle(
    session: Session,
    model_id: int,
    model_name: str,
    kind: str,
    accepted: int,
    duplicates: int,
    rejected: list[Rejection],
) -> IngestResult:
    """Keep the rejected records, count the batch, and say what happened to it."""
    repository.insert_rejections(session, model_id=model_id, kind=kind, rejections=rejected)
    metrics.record_ingest(model_name, kind, accepted, duplicates, len(rejected))
    return _result(accepted, duplicates, rejected)


def _result(accepted: int, duplicates: int, rejected: list[Rejection]) -> IngestResult:
    return IngestResult(
        accepted=accepted,
        duplicates=duplicates,
        rejected=[
            RejectedItem(index=r.index, prediction_id=r.prediction_id, error=r.error)
            for r in rejected
        ],
    )


class ClassCache:
    """What ``repository.model_classes`` said of a binary model a moment ago, per process and
    database: every batch of a binary model is checked against its classes, and reading them
    costs a query or two (for a model without predictions of the last two days, one over
    every day's partition).

    Trusted only for a batch that fits it (see ``checked``): a batch with a rejected record,
    or one naming a class it lacks, is checked again against the database, since another
    process may have stored other classes since. Kept ``seconds`` at most, and never before
    the model's first prediction (nothing to trust yet)."""

    def __init__(self, seconds: float = 2.0) -> None:
        self.seconds = seconds
        self._entries: dict[tuple[str, int], tuple[float, ModelClasses]] = {}
        self._lock = threading.Lock()

    def get(
        self, session: Session, *, model_id: int, fresh: bool = False, task: str = BINARY
    ) -> tuple[ModelClasses, bool]:
        """The model's classes, and whether they come from this cache."""
        key = (str(session.get_bind().engine.url), model_id)
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(key)
        if entry is not None and not fresh and now - entry[0] < self.seconds:
            return entry[1], True
        classes = repository.model_classes(session, model_id=model_id, task=task)
        with self._lock:
            if len(self._entries) > 10_000:
                self._entries.clear()
            if classes == UNKNOWN_CLASSES:
                self._entries.pop(key, None)
            else:
                self._entries[key] = (now, classes)
        return classes, False


CLASSES = ClassCache()
Checked = TypeVar("Checked", ValidPredictions, ValidGroundTruth)


def checked(
    session: Session, *, model_id: int, task: str, check: Callable[[ModelClasses], Checked],
    fits: Callable[[Checked, ModelClasses], bool], tasks: frozenset[str] = frozenset({BINARY}),
) -> Checked:  # fmt: skip
    """``check(classes)`` of a batch against a binary model's classes, those cached if the batch
    ``fits`` them, else those stored (checked again if they differ); for models of ``tasks``
    (predictions: a multiclass model's classes are those its stored probabilities name)."""
    if task not in tasks:
        return check(UNKNOWN_CLASSES)
    classes, cached = CLASSES.get(session, model_id=model_id, task=task)
    result = check(classes)
    if cached and not fits(result, classes):
        stored, _ = CLASSES.get(session, model_id=model_id, fresh=True, task=task)
        if stored != classes:
            result = check(stored)
    return result


def stored_label_names(session: Session, *, model_id: int, classes: ModelClasses) -> frozenset[str]:
    """The class names a binary model's stored labels give, where its predictions do not
    settle its classes (no scores, fewer than two names)."""
    if classes.scores or len(classes.names) >= 2:
        return frozenset()
    return repository.label_names(session, model_id=model_id)


def known_classes(
    session: Session, *, model_id: int, task: str
) -> tuple[ModelClasses, frozenset[str]]:
    """A model's classes as stored (read now): what its predictions show, and the class names
    of its stored labels (see ``stored_label_names``); nothing for a model that is not binary."""
    if task != BINARY:
        return UNKNOWN_CLASSES, frozenset()
    classes = repository.model_classes(session, model_id=model_id)
    return classes, stored_label_names(session, model_id=model_id, classes=classes)


def _predictions_fit(valid: ValidPredictions, classes: ModelClasses) -> bool:
    return not valid.rejected and valid.classes == classes


def _labels_fit(valid: ValidGroundTruth, classes: ModelClasses) -> bool:
    return not valid.rejected and {row[2] for row in valid.rows if row[2]} <= classes.names


def log_predictions(
    session: Session, *, model_name: str, batch: RawColumns, models: registry.ModelCache,
    retention: Retention, limits: Limits = Limits(),
) -> IngestResult:  # fmt: skip
    model = models.get(session, name=model_name)
    if not model.features and not model.embeddings and batch.count:
        inferred = infer_features(batch)
        if inferred:
            registry.adopt_inferred_features(session, name=model_name, inferred=inferred,
                                             max_features=limits.max_features)  # fmt: skip
            model = models.get(session, name=model_name, fresh=True)
    elif not batch.features.keys() <= {f.name for f in model.features} | {
        e.name for e in model.embeddings
    }:
        model = models.get(session, name=model_name, fresh=True)  # added features
    _dense_within_body(batch.count, len(model.features), limits.body_bytes)
    received_at = utcnow()
    valid = checked(
        session, model_id=model.id, task=model.task, fits=_predictions_fit,
        tasks=frozenset({BINARY, MULTICLASS}),
        check=lambda classes: validate_columns(
            batch, list(model.features), task=model.task, received_at=received_at,
            retention=retention, known_classes=classes, max_age=limits.max_record_age,
            embeddings=model.embeddings,
        ),
    )  # fmt: skip
    stored = repository.store_predictions(
        session, model_id=model.id, columns=valid.columns, retention=retention,
        max_partitions=limits.max_batch_partitions,
    )  # fmt: skip
    if limits.summaries and len(stored):
        summaries.add_batch(session, model_id=model.id, features=model.features,
                            window_seconds=model.window_seconds, stored=stored)  # fmt: skip
    accepted = len(stored)
    return _settle(
        session,
        model.id,
        model.name,
        "prediction",
        accepted,
        valid.in_batch_duplicates + len(valid.columns) - accepted,
        valid.rejected,
    )


def log_ground_truth(
    session: Session, *, model_name: str, records: list[Any], retention: Retention,
    limits: Limits = Limits(),
) -> IngestResult:  # fmt: skip
    model = registry.get_by_name(session, name=model_name)
    received_at = utcnow()
    valid = checked(
        session, model_id=model.id, task=model.task, fits=_labels_fit,
        check=lambda classes: validate_ground_truth(
            records, task=model.task, received_at=received_at, retention=retention,
            classes=classes, max_age=limits.max_record_age,
            label_names=stored_label_names(session, model_id=model.id, classes=classes),
        ),
    )  # fmt: skip
    accepted = repository.insert_ground_truth(session, model_id=model.id, rows=valid.rows)
    return _settle_keyed(session, model, "ground_truth", valid, accepted)


def _settle_keyed(
    session: Session, model: MonitoredModel, kind: str, valid: ValidGroundTruth, accepted: int
) -> IngestResult:
    """The answer to a batch of keyed records (labels, shadow predictions): those stored,
    those repeated (in the batch, or stored before), those refused (kept for operators)."""
    duplicates = valid.in_batch_duplicates + len(valid.rows) - accepted
    return _settle(session, model.id, model.name, kind, accepted, duplicates, valid.rejected)


def log_shadow_predictions(
    session: Session, *, model_name: str, records: list[Any]
) -> IngestResult:  # fmt: skip
    """Shadow predictions (CONTRACT section 10), idempotent per prediction id and version; the
    served prediction they shadow may arrive before or after them."""
    model = registry.get_by_name(session, name=model_name)
    valid = validate_shadow_predictions(records, task=model.task)
    accepted = repository.insert_shadow_predictions(session, model_id=model.id, rows=valid.rows)
    return _settle_keyed(session, model, "shadow_prediction", valid, accepted)
