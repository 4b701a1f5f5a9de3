"""Predictions and ground truth through the collector API: idempotent, joined, explained."""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from driftwatch.core.retention import Retention
from driftwatch.core.specs import FeatureSpec
from driftwatch.ingest import repository
from driftwatch.ingest.validation import validate_predictions
from driftwatch.models import MonitoredModel, Prediction, PredictionChunk
from driftwatch.storage import chunks
from tests.conftest import create_model

FEATURES = [{"name": "age", "kind": "numerical"}, {"name": "state", "kind": "categorical"}]


def predictions(model: str, records: list[dict[str, Any]], api: TestClient) -> dict[str, Any]:
    response = api.post(f"/api/v1/models/{model}/predictions", json={"records": records})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def labels(model: str, records: list[dict[str, Any]], api: TestClient) -> dict[str, Any]:
    response = api.post(f"/api/v1/models/{model}/ground-truth", json={"records": records})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def rec(pid: str, age: Any = 31, state: Any = "CA", **extra: Any) -> dict[str, Any]:
    return {
        "prediction_id": pid,
        "features": {"age": age, "state": state},
        "prediction": 0.5,
        **extra,
    }


@dataclass
class Stored:
    """A stored prediction read back: its row, and its features from its chunk."""

    ts: datetime
    model_version: str | None
    prediction_value: float | None
    prediction_class: str | None
    features: dict[str, Any]


def stored(engine: Engine, model_name: str) -> dict[str, Stored]:
    with Session(engine) as session:
        model = session.scalars(
            select(MonitoredModel).where(MonitoredModel.name == model_name)
        ).one()
        numerical = [f["name"] for f in model.features if f["kind"] == "numerical"]
        categorical = [f["name"] for f in model.features if f["kind"] == "categorical"]
        decoded = {}
        for chunk in session.scalars(
            select(PredictionChunk).where(PredictionChunk.model_id == model.id)
        ):
            decoded[chunk.id] = chunks.decode(
                rows=chunk.rows, timestamps=chunk.timestamps, num_values=chunk.num_values,
                num_width=chunk.num_width, cat_codes=chunk.cat_codes, cat_width=chunk.cat_width,
                prediction_values=chunk.prediction_values,
                prediction_classes=chunk.prediction_classes, dictionary=chunk.dictionary,
            )  # fmt: skip
        result = {}
        for row in session.scalars(select(Prediction).where(Prediction.model_id == model.id)):
            chunk = decoded[row.chunk_id]
            features: dict[str, Any] = {}
            # A chunk stored before a feature was added has no column for it: missing.
            for position, name in enumerate(numerical):
                features[name] = None
                if position < chunk.num_values.shape[1]:
                    value = float(chunk.num_values[row.chunk_row, position])
                    features[name] = None if math.isnan(value) else value
            for position, name in enumerate(categorical):
                features[name] = None
                if position < chunk.cat_codes.shape[1]:
                    code = int(chunk.cat_codes[row.chunk_row, position])
                    features[name] = None if code < 0 else chunk.categories[position][code]
            assert chunks.to_us(row.ts) == chunk.timestamps_us[row.chunk_row]
            result[row.prediction_id] = Stored(
                row.ts, row.model_version, row.prediction_value, row.prediction_class, features
            )
        assert sum(c.timestamps_us.size for c in decoded.values()) == len(result)
        return result


def test_the_contract_example_is_accepted_and_stored(api: TestClient, engine: Engine) -> None:
    model = create_model(api, features=FEATURES)["name"]
    result = predictions(
        model,
        [
            {
                "prediction_id": "p-1",
                "timestamp": "2026-11-20T10:00:00Z",
                "features": {"age": 31, "state": "CA"},
                "prediction": 0.83,
                "model_version": "v3",
            }
        ],
        api,
    )
    assert result == {"accepted": 1, "duplicates": 0, "rejected": []}
    row = stored(engine, model)["p-1"]
    assert row.ts.isoformat() == "2026-11-20T10:00:00+00:00"
    assert row.model_version == "v3"
    assert row.prediction_value == 0.83
    assert row.features == {"age": 31.0, "state": "CA"}


def test_a_record_sent_again_is_a_duplicate_never_stored_twice(
    api: TestClient, engine: Engine
) -> None:
    model = create_model(api, features=FEATURES)["name"]
    first = predictions(model, [rec("a"), rec("b"), rec("a")], api)
    assert first == {"accepted": 2, "duplicates": 1, "rejected": []}
    # The second batch overlaps the first: the new record is stored, the old ones counted.
    second = predictions(model, [rec("b", age=99), rec("c"), rec("a")], api)
    assert second == {"accepted": 1, "duplicates": 2, "rejected": []}
    rows = stored(engine, model)
    assert sorted(rows) == ["a", "b", "c"]
    assert rows["b"].features["age"] == 31.0  # the first copy is kept
    assert api.get(f"/api/v1/models/{model}").json()["counts"]["predictions"] == 3


def test_bad_records_never_block_the_valid_ones_and_are_kept(api: TestClient) -> None:
    model = create_model(api, features=FEATURES)["name"]
    records = [rec(f"p-{i}") for i in range(10)]
    records[7] = rec("p-8", age="abc")
    records[3] = {"prediction_id": "p-3", "features": {"age": 1, "zip": "9"}, "prediction": 1}
    result = predictions(model, records, api)
    assert result["accepted"] == 8
    assert result["duplicates"] == 0
    assert result["rejected"] == [
        {
            "index": 3,
            "prediction_id": "p-3",
            "error": "feature 'zip': not a feature of this model (known: age, state)",
        },
        {
            "index": 7,
            "prediction_id": "p-8",
            "error": "feature 'age': expected a number, got 'abc'",
        },
    ]
    kept = api.get(f"/api/v1/models/{model}/rejected").json()
    assert {(r["prediction_id"], r["index"], r["kind"]) for r in kept} == {
        ("p-3", 3, "prediction"),
        ("p-8", 7, "prediction"),
    }
    by_id = {r["prediction_id"]: r for r in kept}
    assert by_id["p-8"]["record"]["features"] == {"age": "abc", "state": "CA"}
    assert by_id["p-8"]["error"] == "feature 'age': expected a number, got 'abc'"


@pytest.mark.parametrize(
    ("timestamp", "error"),
    [
        (-7e10, "timestamp: -70000000000.0 is out of range"),  # Unix seconds before year 1
        (2.6e11, "timestamp: 260000000000.0 is out of range"),  # after 9999
        (
            "9999-12-15T00:00:00Z",
            "timestamp 9999-12-15T00:00:00Z: more than a day after the collector's clock",
        ),
        (timedelta(hours=25), "more than a day after the collector's clock"),
        (timedelta(days=400), "more than a day after the collector's clock"),
        (timedelta(hours=23), None),  # a clock a little ahead is fine
        (timedelta(days=-300), None),  # within DRIFTWATCH_MAX_RECORD_AGE
        ("1969-07-20T20:17:40Z", "older than 365 days (DRIFTWATCH_MAX_RECORD_AGE)"),
    ],
)
def test_a_prediction_time_out_of_range_is_refused_with_the_reason(
    api: TestClient, engine: Engine, timestamp: Any, error: str | None
) -> None:
    model = create_model(api, features=FEATURES)["name"]
    if isinstance(timestamp, timedelta):  # ahead of now, as the SDK sends it: Unix seconds
        timestamp = (datetime.now(UTC) + timestamp).timestamp()
    result = predictions(model, [rec("ok"), rec("when", timestamp=timestamp)], api)
    if error is None:
        assert (result["accepted"], result["rejected"]) == (2, [])
        return
    assert result["accepted"] == 1
    [rejected] = result["rejected"]
    assert (rejected["index"], rejected["prediction_id"]) == (1, "when")
    assert error in rejected["error"], rejected["error"]
    with Session(engine) as session:
        model_id = session.scalars(select(MonitoredModel.id).where(MonitoredModel.name == model))
        stored = session.scalars(
            select(Prediction.prediction_id).where(Prediction.model_id == model_id.one())
        ).all()
    assert stored == ["ok"]


def test_labels_join_their_predictions_whichever_arrives_first(api: TestClient) -> None:
    model = create_model(api, features=FEATURES)["name"]
    assert (
        labels(
            model,
            [{"prediction_id": "early", "label": 1, "timestamp": "2026-11-27T09:00:00Z"}],
            api,
        )["accepted"]
        == 1
    )
    predictions(model, [rec("early"), rec("late"), rec("never")], api)
    assert api.get(f"/api/v1/models/{model}").json()["counts"] == {"predictions": 3, "labeled": 1}
    result = labels(
        model, [{"prediction_id": "late", "label": 0}, {"prediction_id": "early", "label": 0}], api
    )
    assert result == {"accepted": 1, "duplicates": 1, "rejected": []}
    assert api.get(f"/api/v1/models/{model}").json()["counts"] == {"predictions": 3, "labeled": 2}


def test_bad_labels_are_rejected_and_kept(api: TestClient) -> None:
    model = create_model(api, features=FEATURES)["name"]
    result = labels(
        model,
        [
            {"prediction_id": "x", "label": 1},
            {"label": 1},
            {"prediction_id": "y", "label": {"a": 1}},
        ],
        api,
    )
    assert result["accepted"] == 1
    assert [(r["index"], r["error"].split(":")[0]) for r in result["rejected"]] == [
        (1, "prediction_id"),
        (2, "label"),
    ]
    kept = api.get(f"/api/v1/models/{model}/rejected").json()
    assert {r["kind"] for r in kept} == {"ground_truth"}
    assert len(kept) == 2


def test_features_are_inferred_from_the_first_batch_and_reported(api: TestClient) -> None:
    model = create_model(api)["name"]
    result = predictions(
        model,
        [
            {
                "prediction_id": "1",
                "features": {"income": 5.5, "city": "Oslo"},
                "prediction": "yes",
            },
            {
                "prediction_id": "2",
                "features": {"income": "lots", "city": "Rome"},
                "prediction": "no",
            },
            {"prediction_id": "3", "features": {"income": 7, "city": None}, "prediction": "yes"},
        ],
        api,
    )
    assert result["accepted"] == 2
    assert result["rejected"][0]["index"] == 1
    assert api.get(f"/api/v1/models/{model}").json()["features"] == [
        {"name": "income", "kind": "numerical"},
        {"name": "city", "kind": "categorical"},
    ]


def test_missing_values_are_stored_as_missing(api: TestClient, engine: Engine) -> None:
    model = create_model(api, features=FEATURES)["name"]
    predictions(model, [{"prediction_id": "m", "features": {}, "prediction": 1}], api)
    assert stored(engine, model)["m"].features == {"age": None, "state": None}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "body: not valid JSON"),
        (b"", "body: empty"),
        (b"[1, 2]", "body: expected an object"),
        (b'{"records": {"a": 1}}', "records: required, a list"),
        (b'{"rows": []}', "body: unknown field 'rows'"),
        (b'{"records": [], "x": 1}', "body: unknown field 'x'"),
        (b'{"records": [{"prediction": NaN}]}', "body: not valid JSON"),
    ],
)
def test_a_malformed_body_is_422_with_a_message(api: TestClient, body: bytes, message: str) -> None:
    model = create_model(api, features=FEATURES)["name"]
    for kind in ("predictions", "ground-truth"):
        response = api.post(
            f"/api/v1/models/{model}/{kind}",
            content=body,
            headers={"Content-Type": "application/json"},
        )
        assert response.status_code == 422
        assert response.json()["detail"].startswith(message), response.json()["detail"]


def test_an_unknown_model_is_404_for_ingest(api: TestClient) -> None:
    response = api.post("/api/v1/models/nope/predictions", json={"records": [rec("a")]})
    assert response.status_code == 404
    assert "'nope' does not exist" in response.json()["detail"]


def test_an_oversized_body_is_413(api: TestClient) -> None:
    model = create_model(api, features=FEATURES)["name"]
    limit = api.app.state.settings.max_body_bytes  # type: ignore[attr-defined]
    body = b'{"records": [' + b" " * limit + b"]}"
    response = api.post(f"/api/v1/models/{model}/predictions", content=body)
    assert response.status_code == 413


def test_concurrent_overlapping_batches_store_each_record_once(
    api: TestClient, engine: Engine
) -> None:
    model = create_model(api, features=FEATURES)["name"]
    batches = [
        [rec(f"p-{i}", age=i) for i in range(start, start + 3000)] for start in (0, 1000, 2000, 0)
    ]
    results: list[dict[str, Any]] = []

    def send(records: list[dict[str, Any]]) -> None:
        response = api.post(
            f"/api/v1/models/{model}/predictions", content=orjson.dumps({"records": records})
        )
        results.append(response.json())

    threads = [threading.Thread(target=send, args=(b,)) for b in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(r["accepted"] for r in results) == 5000
    assert sum(r["accepted"] + r["duplicates"] for r in results) == 12000
    assert len(stored(engine, model)) == 5000


def test_a_feature_added_elsewhere_is_accepted_at_once(api: TestClient, engine: Engine) -> None:
    model = create_model(api, features=[{"name": "age", "kind": "numerical"}])["name"]
    assert predictions(model, [rec("a", state=None)], api)["accepted"] == 1  # cached now
    with Session(engine) as session:  # another process adds a feature
        row = session.scalars(select(MonitoredModel).where(MonitoredModel.name == model)).one()
        row.features = [*row.features, {"name": "state", "kind": "categorical"}]
        session.commit()
    result = predictions(model, [rec("b", state="CA")], api)
    assert result == {"accepted": 1, "duplicates": 0, "rejected": []}
    assert stored(engine, model)["b"].features == {"age": 31.0, "state": "CA"}
    assert stored(engine, model)["a"].features == {"age": 31.0, "state": None}


def test_a_batch_is_written_all_or_nothing(api: TestClient, engine: Engine) -> None:
    """Predictions written in a session that then rolls back are gone, even when the COPY is
    the first statement on the connection (psycopg would otherwise commit it on its own)."""
    model = create_model(api, features=FEATURES)
    specs = [FeatureSpec("age", "numerical"), FeatureSpec("state", "categorical")]
    valid = validate_predictions(
        [rec("rolled-back")], specs, task="binary_classification", received_at=datetime.now(UTC)
    )
    with Session(engine) as session:
        model_id = session.scalars(
            select(MonitoredModel.id).where(MonitoredModel.name == model["name"])
        ).one()
    with Session(engine) as session:  # a fresh session: nothing run on its connection yet
        accepted = repository.insert_predictions(
            session, model_id=model_id, columns=valid.columns, retention=Retention()
        )
        assert accepted == 1
        session.rollback()
    assert stored(engine, model["name"]) == {}


def test_a_window_reads_back_exactly_its_predictions(api: TestClient, engine: Engine) -> None:
    model = create_model(api, features=FEATURES)["name"]
    start = datetime(2026, 11, 20, 10, tzinfo=UTC)
    sent = [
        rec(f"w-{i}", age=float(i), timestamp=(start + timedelta(minutes=i)).isoformat())
        for i in range(120)
    ]
    for part in range(0, 120, 25):  # several chunks, some straddling the window's edges
        predictions(model, sent[part : part + 25], api)
    with Session(engine) as session:
        model_id = session.scalars(
            select(MonitoredModel.id).where(MonitoredModel.name == model)
        ).one()
        window = repository.read_window(
            session, model_id=model_id, num_width=1, cat_width=1,
            start=start + timedelta(minutes=30), end=start + timedelta(minutes=90),
        )  # fmt: skip
    assert sorted(window.num_values[:, 0].tolist()) == [float(i) for i in range(30, 90)]
    assert window.category_values(0) == ["CA"] * 60
