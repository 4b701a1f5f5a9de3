"""Accepting prediction and ground-truth batches: validate each record, store the valid ones
once, keep the rejected ones with their reasons."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from driftwatch import metrics
from driftwatch.core.retention import Retention
from driftwatch.core.time import utcnow
from driftwatch.errors import InvalidPayload
from driftwatch.ingest import repository
from driftwatch.ingest.schemas import IngestResult, RejectedItem
from driftwatch.ingest.validation import (
    BINARY,
    UNKNOWN_CLASSES,
    ModelClasses,
    RawColumns,
    RecordError,
    Rejection,
    columns_from_body,
    columns_from_records,
    infer_features,
    validate_columns,
    validate_ground_truth,
)
from driftwatch.registry import service as registry


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


def _classes(session: Session, model_id: int, task: str) -> ModelClasses:
    """A binary model's classes as its stored predictions show them (scores or names)."""
    if task != BINARY:
        return UNKNOWN_CLASSES
    return repository.model_classes(session, model_id=model_id)


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


def log_predictions(
    session: Session, *, model_name: str, batch: RawColumns, models: registry.ModelCache,
    retention: Retention,
) -> IngestResult:  # fmt: skip
    model = models.get(session, name=model_name)
    if not model.features and batch.count:
        inferred = infer_features(batch)
        if inferred:
            registry.adopt_inferred_features(session, name=model_name, inferred=inferred)
            model = models.get(session, name=model_name, fresh=True)
    elif not batch.features.keys() <= {f.name for f in model.features}:
        model = models.get(session, name=model_name, fresh=True)  # added features
    valid = validate_columns(
        batch, list(model.features), task=model.task, received_at=utcnow(), retention=retention,
        known_classes=_classes(session, model.id, model.task),
    )  # fmt: skip
    accepted = repository.insert_predictions(
        session, model_id=model.id, columns=valid.columns, retention=retention
    )
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
    session: Session, *, model_name: str, records: list[Any], retention: Retention
) -> IngestResult:
    model = registry.get_by_name(session, name=model_name)
    classes = _classes(session, model.id, model.task)
    valid = validate_ground_truth(
        records, task=model.task, received_at=utcnow(), retention=retention, classes=classes,
        label_names=stored_label_names(session, model_id=model.id, classes=classes),
    )  # fmt: skip
    accepted = repository.insert_ground_truth(session, model_id=model.id, rows=valid.rows)
    return _settle(
        session,
        model.id,
        model.name,
        "ground_truth",
        accepted,
        valid.in_batch_duplicates + len(valid.rows) - accepted,
        valid.rejected,
    )
