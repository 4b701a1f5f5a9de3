"""Record validation and schema inference (pure functions, no database)."""

from __future__ import annotations

import base64
import math
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

from driftwatch.core.specs import FeatureSpec
from driftwatch.ingest.validation import (
    RecordError,
    columns_from_body,
    columns_from_records,
    infer_features,
    parse_timestamp,
    validate_columns,
    validate_ground_truth,
    validate_predictions,
)

FEATURES = [FeatureSpec("age", "numerical"), FeatureSpec("state", "categorical")]
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def record(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "prediction_id": "p-1",
        "features": {"age": 31, "state": "CA"},
        "prediction": 0.83,
    }
    base.update(overrides)
    return base


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        (
            record(features={"age": "abc", "state": "CA"}),
            "feature 'age': expected a number, got 'abc'",
        ),
        (
            record(features={"age": True, "state": "CA"}),
            "feature 'age': expected a number, got True",
        ),
        (record(features={"age": [1], "state": "CA"}), "feature 'age': expected a number, got [1]"),
        (record(features={"age": 1, "state": {"a": 1}}), "feature 'state': expected a category"),
        (record(features={"age": 1, "zip": "x"}), "feature 'zip': not a feature of this model"),
        (record(features=[1, 2]), "features: expected an object, got [1, 2]"),
        (record(features=None), "features: expected an object, got None"),
        ({"prediction_id": "p-1", "features": {}}, "prediction: required"),
        (record(prediction=None), "prediction: required"),
        (record(prediction={"a": 1}), "prediction: expected a number or a class name"),
        (record(prediction=""), "prediction: must not be empty"),
        (record(prediction_id=""), "prediction_id: must not be empty"),
        (record(prediction_id=1.5), "prediction_id: expected a string, got 1.5"),
        (record(prediction_id="x" * 201), "prediction_id: longer than 200 characters"),
        (record(timestamp="yesterday"), "timestamp: expected an ISO 8601 time"),
        (record(timestamp=[2026]), "timestamp: expected an ISO 8601 string"),
        (record(model_version={"v": 3}), "model_version: expected a string"),
        ("not an object", "expected an object, got 'not an object'"),
    ],
)
def test_a_bad_record_is_rejected_with_the_field_and_the_reason(bad: Any, error: str) -> None:
    good = record(prediction_id="p-good")
    result = validate_predictions(
        [good, bad], FEATURES, task="binary_classification", received_at=NOW
    )
    assert result.columns.prediction_ids == ["p-good"]
    assert len(result.rejected) == 1
    rejection = result.rejected[0]
    assert rejection.index == 1
    assert rejection.error.startswith(error), rejection.error


def test_nan_is_a_missing_value() -> None:
    # JSON has no NaN: the SDK sends a NaN feature as null, which is how missing values travel.
    result = validate_predictions(
        [record(features={"age": math.nan})], FEATURES, task="regression", received_at=NOW
    )
    assert not result.rejected
    assert math.isnan(result.columns.num_values[0, 0])


@pytest.mark.parametrize("value", [math.inf, -math.inf, 10**400])
def test_non_finite_numbers_are_rejected(value: Any) -> None:
    result = validate_predictions(
        [record(features={"age": value})], FEATURES, task="regression", received_at=NOW
    )
    assert len(result.columns) == 0
    assert "finite" in result.rejected[0].error


def test_valid_records_become_storage_columns() -> None:
    records = [
        record(prediction_id="a", timestamp="2026-11-20T10:00:00Z", model_version="v3"),
        record(prediction_id="b", features={"state": 7}, prediction="cat"),
        record(prediction_id=42, features={"age": 2.5, "state": None}, prediction=True),
    ]
    result = validate_predictions(
        records, FEATURES, task="multiclass_classification", received_at=NOW
    )
    assert not result.rejected
    columns = result.columns
    assert columns.prediction_ids == ["a", "b", "42"]
    assert columns.timestamps_us.tolist() == [
        int(datetime(2026, 11, 20, 10, tzinfo=UTC).timestamp() * 1e6),
        int(NOW.timestamp() * 1e6),  # no timestamp: the time of receipt
        int(NOW.timestamp() * 1e6),
    ]
    assert columns.model_versions == ["v3", None, None]
    assert columns.prediction_values[0] == 0.83
    assert math.isnan(columns.prediction_values[1])
    assert columns.prediction_values[2] == 1.0
    assert columns.prediction_classes == [None, "cat", None]
    assert columns.num_values[:, 0].tolist()[::2] == [31.0, 2.5]
    assert math.isnan(columns.num_values[1, 0])  # a missing number is NaN
    assert columns.cat_values == [["CA", "7", None]]  # numbers are read as category names


def test_columnar_and_record_batches_validate_alike() -> None:
    records = [
        record(
            prediction_id=f"p-{i}", features={"age": i, "state": "CA"}, timestamp=1_795_600_800.5
        )
        for i in range(3)
    ]
    records[1]["features"]["age"] = "x"
    body = {
        "prediction_id": [r["prediction_id"] for r in records],
        "timestamp": [r["timestamp"] for r in records],
        "prediction": [r["prediction"] for r in records],
        "features": {"age": [r["features"]["age"] for r in records], "state": ["CA"] * 3},
    }
    by_columns = validate_columns(
        columns_from_body(body), FEATURES, task="binary_classification", received_at=NOW
    )
    by_records = validate_predictions(
        records, FEATURES, task="binary_classification", received_at=NOW
    )
    assert by_columns.columns.prediction_ids == by_records.columns.prediction_ids == ["p-0", "p-2"]
    assert by_columns.columns.timestamps_us.tolist() == by_records.columns.timestamps_us.tolist()
    assert by_columns.columns.timestamps_us[0] == 1_795_600_800_500_000
    assert [(r.index, r.prediction_id, r.error) for r in by_columns.rejected] == [
        (r.index, r.prediction_id, r.error) for r in by_records.rejected
    ]
    assert by_columns.rejected[0].record["features"] == {"age": "x", "state": "CA"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"features": {}}, "columns.prediction: required"),
        (
            {"prediction": [1, 2], "prediction_id": ["a"]},
            "columns.prediction_id: expected a list of 2",
        ),
        ({"prediction": [1], "features": {"age": [1, 2]}}, "columns.features.age: expected a list"),
        ({"prediction": [1], "features": [1]}, "columns.features: expected an object"),
    ],
)
def test_misaligned_columns_are_refused_whole(body: dict[str, Any], message: str) -> None:
    with pytest.raises(RecordError, match=message):
        columns_from_body(body)


def test_an_unknown_feature_sent_as_null_is_ignored() -> None:
    result = validate_predictions(
        [record(features={"age": 1, "zip": None})],
        FEATURES,
        task="binary_classification",
        received_at=NOW,
    )
    assert result.columns.prediction_ids == ["p-1"]


def test_duplicates_within_a_batch_are_counted_not_kept() -> None:
    result = validate_predictions(
        [record(), record(), record(prediction_id="p-2")],
        FEATURES,
        task="binary_classification",
        received_at=NOW,
    )
    assert result.columns.prediction_ids == ["p-1", "p-2"]
    assert result.in_batch_duplicates == 1


def test_missing_prediction_ids_are_generated() -> None:
    result = validate_predictions(
        [{"features": {}, "prediction": 1}, {"features": {}, "prediction": 0}],
        FEATURES,
        task="binary_classification",
        received_at=NOW,
    )
    ids = result.columns.prediction_ids
    assert len(ids) == 2
    assert len(set(ids)) == 2
    assert all(len(i) == 32 for i in ids)


def test_regression_needs_numeric_predictions_and_labels() -> None:
    predictions = validate_predictions(
        [record(prediction="high")], FEATURES, task="regression", received_at=NOW
    )
    assert predictions.rejected[0].error.startswith("prediction: a regression model predicts")
    labels = validate_ground_truth(
        [{"prediction_id": "p", "label": "high"}], task="regression", received_at=NOW
    )
    assert labels.rejected[0].error.startswith("label: a regression model's labels are numbers")


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        ({"label": 1}, "prediction_id: required"),
        ({"prediction_id": "p"}, "label: required"),
        ({"prediction_id": "p", "label": None}, "label: required"),
        ({"prediction_id": "p", "label": [1]}, "label: expected a number or a class name"),
        ({"prediction_id": "p", "label": 1, "timestamp": "soon"}, "timestamp: expected an ISO"),
    ],
)
def test_bad_ground_truth_is_rejected(bad: dict[str, Any], error: str) -> None:
    result = validate_ground_truth(
        [{"prediction_id": "ok", "label": 0}, bad], task="binary_classification", received_at=NOW
    )
    assert [row[0] for row in result.rows] == ["ok"]
    assert result.rejected[0].index == 1
    assert result.rejected[0].error.startswith(error)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-20T10:00:00Z", datetime(2026, 11, 20, 10, tzinfo=UTC)),
        ("2026-11-20T12:00:00+02:00", datetime(2026, 11, 20, 10, tzinfo=UTC)),
        ("2026-11-20T10:00:00", datetime(2026, 11, 20, 10, tzinfo=UTC)),  # no zone: UTC
        (1_795_600_800, datetime(2026, 11, 25, 10, 0, tzinfo=UTC)),
    ],
)
def test_timestamps_are_read_as_utc(text: Any, expected: datetime) -> None:
    assert parse_timestamp(text) == expected


def test_inferred_features_follow_the_majority_of_values() -> None:
    records = [
        {"features": {"age": 31, "state": "CA", "flag": True, "empty": None}},
        {"features": {"age": "abc", "state": "NY", "score": 0.5}},
        {"features": {"age": 40}},
        "not a record",
    ]
    assert infer_features(columns_from_records(records)) == [
        FeatureSpec("age", "numerical"),
        FeatureSpec("state", "categorical"),
        FeatureSpec("flag", "categorical"),
        FeatureSpec("empty", "numerical"),
        FeatureSpec("score", "numerical"),
    ]


def f8(values: list[float]) -> dict[str, str]:
    return {"f8": base64.b64encode(np.array(values, dtype="<f8").tobytes()).decode()}


def test_float64_columns_validate_like_lists() -> None:
    body = {
        "prediction_id": ["a", "b", "c"],
        "prediction": [0.1, 0.2, 0.3],
        "features": {"age": f8([1.5, math.nan, math.inf]), "state": f8([2.5, 3.0, math.nan])},
    }
    result = validate_columns(columns_from_body(body), FEATURES, task="regression", received_at=NOW)
    assert result.columns.prediction_ids == ["a", "b"]
    assert result.columns.num_values[0, 0] == 1.5
    assert math.isnan(result.columns.num_values[1, 0])  # NaN in a float64 column: missing
    assert result.columns.cat_values == [["2.5", "3.0"]]  # a float read as a category name
    assert [(r.index, r.error) for r in result.rejected] == [
        (2, "feature 'age': expected a finite number, got inf")
    ]
    assert result.rejected[0].record["features"] == {"age": math.inf}


@pytest.mark.parametrize(
    ("column", "message"),
    [
        ({"f8": "not base64!"}, "'f8' is not base64 float64"),
        ({"f8": base64.b64encode(b"12345").decode()}, "'f8' is not base64 float64"),
        (f8([1.0]), "expected 2 values"),
    ],
)
def test_a_broken_float64_column_is_refused_whole(column: Any, message: str) -> None:
    with pytest.raises(RecordError, match=message):
        columns_from_body({"prediction": [1, 2], "features": {"age": column}})


def test_a_float64_column_infers_a_numerical_feature() -> None:
    raw = columns_from_body({"prediction": [1], "features": {"x": f8([1.0]), "y": ["a"]}})
    assert infer_features(raw) == [FeatureSpec("x", "numerical"), FeatureSpec("y", "categorical")]
