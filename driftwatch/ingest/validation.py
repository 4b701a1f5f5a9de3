"""Validation of ingest batches: pure, no database.

Every record is checked on its own, so one bad record never blocks the valid ones of its batch;
each rejection names the record (its index and prediction id), the field and what is wrong.
This runs for every logged record, so the loops are kept tight.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

FeatureKind = Literal["numerical", "categorical"]
MAX_ID_LENGTH = 200
MAX_TEXT_LENGTH = 1000


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    name: str
    kind: FeatureKind


@dataclass(slots=True)
class Rejection:
    index: int
    prediction_id: str | None
    error: str
    record: Any


@dataclass(slots=True)
class ValidPredictions:
    """Accepted prediction rows, in storage column order, plus the rejections."""

    rows: list[tuple[Any, ...]] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    in_batch_duplicates: int = 0


@dataclass(slots=True)
class ValidGroundTruth:
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    in_batch_duplicates: int = 0


class RecordError(ValueError):
    """One record is invalid; the message says which field and why."""


def describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def parse_timestamp(value: Any, field_name: str = "timestamp") -> datetime:
    """An ISO 8601 string or Unix seconds; a time without a zone is taken as UTC."""
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise RecordError(
                f"{field_name}: expected an ISO 8601 time such as '2026-11-20T10:00:00Z', "
                f"got {describe(value)}"
            ) from None
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise RecordError(f"{field_name}: expected a finite number of seconds, got {value}")
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            raise RecordError(f"{field_name}: {value} is out of range") from None
    raise RecordError(f"{field_name}: expected an ISO 8601 string, got {describe(value)}")


def identifier(value: Any, field_name: str) -> str:
    if isinstance(value, str):
        if not value:
            raise RecordError(f"{field_name}: must not be empty")
        if len(value) > MAX_ID_LENGTH:
            raise RecordError(f"{field_name}: longer than {MAX_ID_LENGTH} characters")
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise RecordError(f"{field_name}: expected a string, got {describe(value)}")


def number_or_class(value: Any, field_name: str) -> tuple[float | None, str | None]:
    """A prediction or label: a number (score, probability, value) or a class name."""
    if isinstance(value, bool):
        return (1.0 if value else 0.0), None
    if isinstance(value, int | float):
        number = float(value)
        if not math.isfinite(number):
            raise RecordError(f"{field_name}: expected a finite number, got {value}")
        return number, None
    if isinstance(value, str):
        if not value:
            raise RecordError(f"{field_name}: must not be empty")
        if len(value) > MAX_TEXT_LENGTH:
            raise RecordError(f"{field_name}: longer than {MAX_TEXT_LENGTH} characters")
        return None, value
    if value is None:
        raise RecordError(f"{field_name}: required")
    raise RecordError(f"{field_name}: expected a number or a class name, got {describe(value)}")


def infer_features(records: list[Any]) -> list[FeatureSpec]:
    """Feature schema from a first batch, in order of first appearance.

    A feature is numerical when most of its present values are numbers, so that one stray
    string is rejected as a bad value rather than turning the feature categorical.
    """
    numbers: dict[str, int] = {}
    others: dict[str, int] = {}
    for record in records:
        features = record.get("features") if isinstance(record, dict) else None
        if not isinstance(features, dict):
            continue
        for name, value in features.items():
            if not isinstance(name, str) or not name or len(name) > MAX_ID_LENGTH:
                continue
            numbers.setdefault(name, 0)
            others.setdefault(name, 0)
            if isinstance(value, int | float) and not isinstance(value, bool):
                numbers[name] += 1
            elif value is not None:
                others[name] += 1
    return [
        FeatureSpec(name, "numerical" if count >= others[name] else "categorical")
        for name, count in numbers.items()
    ]


class FeatureValidator:
    """Turns a record's ``features`` object into positional numerical and categorical values."""

    def __init__(self, features: list[FeatureSpec]) -> None:
        self.numerical = [f.name for f in features if f.kind == "numerical"]
        self.categorical = [f.name for f in features if f.kind == "categorical"]
        self.known = {f.name: f.kind for f in features}

    def __call__(self, features: Any) -> tuple[list[float], list[str | None]]:
        if not isinstance(features, dict):
            raise RecordError(f"features: expected an object, got {describe(features)}")
        if len(features) > len(self.known) or not features.keys() <= self.known.keys():
            unknown = sorted(str(name) for name in features if name not in self.known)
            raise RecordError(
                f"feature {unknown[0]!r}: not a feature of this model "
                f"(known: {', '.join(sorted(self.known)) or 'none'})"
            )
        num_values: list[float] = []
        for name in self.numerical:
            value = features.get(name)
            if value is None:
                num_values.append(math.nan)
            elif type(value) is float and value - value == 0.0:  # finite: inf - inf is NaN
                num_values.append(value)
            elif isinstance(value, int | float) and not isinstance(value, bool):
                try:
                    number = float(value)
                except OverflowError:
                    number = math.inf
                if not math.isfinite(number):
                    raise RecordError(f"feature {name!r}: expected a finite number, got {value}")
                num_values.append(number)
            else:
                raise RecordError(f"feature {name!r}: expected a number, got {describe(value)}")
        cat_values: list[str | None] = []
        for name in self.categorical:
            value = features.get(name)
            if value is None or type(value) is str:
                cat_values.append(value)
            elif isinstance(value, bool):
                cat_values.append("true" if value else "false")
            elif isinstance(value, int | float | str):
                cat_values.append(str(value))
            else:
                raise RecordError(
                    f"feature {name!r}: expected a category (string or number), "
                    f"got {describe(value)}"
                )
        return num_values, cat_values


def _record_id(record: Any) -> str | None:
    if isinstance(record, dict):
        value = record.get("prediction_id")
        if isinstance(value, str | int) and not isinstance(value, bool):
            return str(value)[:MAX_ID_LENGTH]
    return None


def validate_predictions(
    records: list[Any], features: list[FeatureSpec], *, task: str, received_at: datetime
) -> ValidPredictions:
    """Rows ``(prediction_id, ts, model_version, value, class, num_values, cat_values)``."""
    result = ValidPredictions()
    check_features = FeatureValidator(features)
    seen: set[str] = set()
    regression = task == "regression"
    for index, record in enumerate(records):
        try:
            if not isinstance(record, dict):
                raise RecordError(f"expected an object, got {describe(record)}")
            raw_id = record.get("prediction_id")
            prediction_id = (
                uuid.uuid4().hex if raw_id is None else identifier(raw_id, "prediction_id")
            )
            raw_ts = record.get("timestamp")
            ts = received_at if raw_ts is None else parse_timestamp(raw_ts)
            if "prediction" not in record:
                raise RecordError("prediction: required")
            value, label = number_or_class(record["prediction"], "prediction")
            if regression and value is None:
                raise RecordError(
                    f"prediction: a regression model predicts numbers, "
                    f"got {describe(record['prediction'])}"
                )
            version = record.get("model_version")
            if version is not None:
                version = identifier(version, "model_version")
            num_values, cat_values = check_features(record.get("features"))
        except RecordError as error:
            result.rejected.append(Rejection(index, _record_id(record), str(error), record))
            continue
        if prediction_id in seen:
            result.in_batch_duplicates += 1
            continue
        seen.add(prediction_id)
        result.rows.append((prediction_id, ts, version, value, label, num_values, cat_values))
    return result


def validate_ground_truth(
    records: list[Any], *, task: str, received_at: datetime
) -> ValidGroundTruth:
    """Rows ``(prediction_id, label_value, label_class, ts)``."""
    result = ValidGroundTruth()
    seen: set[str] = set()
    regression = task == "regression"
    for index, record in enumerate(records):
        try:
            if not isinstance(record, dict):
                raise RecordError(f"expected an object, got {describe(record)}")
            if record.get("prediction_id") is None:
                raise RecordError("prediction_id: required, to join the label to its prediction")
            prediction_id = identifier(record["prediction_id"], "prediction_id")
            if "label" not in record:
                raise RecordError("label: required")
            value, label = number_or_class(record["label"], "label")
            if regression and value is None:
                raise RecordError(
                    f"label: a regression model's labels are numbers, "
                    f"got {describe(record['label'])}"
                )
            raw_ts = record.get("timestamp")
            ts = received_at if raw_ts is None else parse_timestamp(raw_ts)
        except RecordError as error:
            result.rejected.append(Rejection(index, _record_id(record), str(error), record))
            continue
        if prediction_id in seen:
            result.in_batch_duplicates += 1
            continue
        seen.add(prediction_id)
        result.rows.append((prediction_id, value, label, ts))
    return result
