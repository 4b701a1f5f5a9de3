"""Accepting prediction and ground-truth batches: validate each record, store the valid ones
once, keep the rejected ones with their reasons."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from driftwatch import metrics
from driftwatch.errors import InvalidPayload
from driftwatch.ingest import repository
from driftwatch.ingest.schemas import IngestResult, RejectedItem
from driftwatch.ingest.validation import (
    Rejection,
    infer_features,
    validate_ground_truth,
    validate_predictions,
)
from driftwatch.models.base import utcnow
from driftwatch.registry import service as registry


def batch_records(body: Any, *, max_records: int) -> list[Any]:
    """The ``records`` list of a batch body, or a 422 that says what is wrong with the body."""
    if not isinstance(body, dict):
        raise InvalidPayload('body: expected an object {"records": [...]}')
    unknown = sorted(set(body) - {"records"})
    if unknown:
        raise InvalidPayload(f"body: unknown field {unknown[0]!r}; expected only 'records'")
    records = body.get("records")
    if not isinstance(records, list):
        raise InvalidPayload("records: required, a list of record objects")
    if len(records) > max_records:
        raise InvalidPayload(
            f"records: {len(records)} records in one batch; the limit is {max_records}"
        )
    return records


def _result(accepted: int, duplicates: int, rejected: list[Rejection]) -> IngestResult:
    return IngestResult(
        accepted=accepted,
        duplicates=duplicates,
        rejected=[
            RejectedItem(index=r.index, prediction_id=r.prediction_id, error=r.error)
            for r in rejected
        ],
    )


def log_predictions(session: Session, *, model_name: str, records: list[Any]) -> IngestResult:
    model = registry.get_by_name(session, name=model_name)
    if not model.features and records:
        inferred = infer_features(records)
        if inferred:
            model = registry.adopt_inferred_features(session, model=model, inferred=inferred)
    valid = validate_predictions(
        records, registry.feature_specs(model), task=model.task, received_at=utcnow()
    )
    accepted = repository.insert_predictions(session, model_id=model.id, rows=valid.rows)
    repository.insert_rejections(
        session, model_id=model.id, kind="prediction", rejections=valid.rejected
    )
    duplicates = valid.in_batch_duplicates + len(valid.rows) - accepted
    metrics.record_ingest(model.name, "prediction", accepted, duplicates, len(valid.rejected))
    return _result(accepted, duplicates, valid.rejected)


def log_ground_truth(session: Session, *, model_name: str, records: list[Any]) -> IngestResult:
    model = registry.get_by_name(session, name=model_name)
    valid = validate_ground_truth(records, task=model.task, received_at=utcnow())
    accepted = repository.insert_ground_truth(session, model_id=model.id, rows=valid.rows)
    repository.insert_rejections(
        session, model_id=model.id, kind="ground_truth", rejections=valid.rejected
    )
    duplicates = valid.in_batch_duplicates + len(valid.rows) - accepted
    metrics.record_ingest(model.name, "ground_truth", accepted, duplicates, len(valid.rejected))
    return _result(accepted, duplicates, valid.rejected)
