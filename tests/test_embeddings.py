"""Embedding features (CONTRACT section 11) through the real API, the SDK and storage: declared
with their dimensions, validated per record, stored as float32, tested by their methods."""

from __future__ import annotations

import io
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

import driftwatch
from driftwatch.core.specs import EmbeddingSpec, FeatureSpec
from driftwatch.ingest.validation import columns_from_records, validate_columns
from driftwatch.storage import chunks
from tests.conftest import ADMIN_KEY, LiveServer, create_model, wait_until
from tests.factories import T0, post

DIMS = 8
FEATURES = [
    {"name": "age", "kind": "numerical"},
    {"name": "text_embedding", "kind": "embedding", "dimensions": DIMS},
]
WINDOW = {"start": T0.isoformat(), "end": (T0 + timedelta(hours=1)).isoformat()}


def vectors(rows: int, *, seed: int, shift: float = 0.0) -> np.ndarray:
    """Standard normal vectors, the first component moved by ``shift``."""
    data = np.random.default_rng(seed).normal(size=(rows, DIMS))
    data[:, 0] += shift
    return data


def records(data: np.ndarray, *, prefix: str) -> list[dict[str, Any]]:
    return [
        {"prediction_id": f"{prefix}-{i}", "timestamp": (T0 + timedelta(seconds=i)).isoformat(),
         "features": {"age": 30 + i % 7, "text_embedding": row.tolist()}, "prediction": 0.5}
        for i, row in enumerate(data)
    ]  # fmt: skip


def baseline_body(data: np.ndarray) -> dict[str, Any]:
    return {"name": "train", "records": [
        {"features": {"age": 30 + i % 7, "text_embedding": row.tolist()}, "prediction": 0.5}
        for i, row in enumerate(data)
    ]}  # fmt: skip


def model_with(api: TestClient, **fields: Any) -> str:
    name: str = create_model(api, features=FEATURES, **fields)["name"]
    return name


# -- declaring ---------------------------------------------------------------------------------


def test_an_embedding_feature_is_declared_with_its_dimensions(api: TestClient) -> None:
    model = model_with(api)
    got = api.get(f"/api/v1/models/{model}").json()
    assert got["features"][1] == {"name": "text_embedding", "kind": "embedding",
                                  "dimensions": DIMS}  # fmt: skip
    assert "dimensions" not in got["features"][0]  # only where it applies


@pytest.mark.parametrize(
    ("feature", "says"),
    [
        ({"name": "e", "kind": "embedding"}, "needs 'dimensions'"),
        ({"name": "e", "kind": "numerical", "dimensions": 3}, "embedding features only"),
        ({"name": "e", "kind": "embedding", "dimensions": 0}, "greater than or equal to 1"),
    ],
)
def test_a_bad_embedding_declaration_is_refused(
    api: TestClient, feature: dict[str, Any], says: str
) -> None:
    response = api.post("/api/v1/models", json={"name": "bad-emb", "task": "regression",
                                                "features": [feature]})  # fmt: skip
    assert response.status_code == 422
    assert says in response.text


def test_dimensions_cannot_change_and_methods_fit_their_kind(api: TestClient) -> None:
    model = model_with(api)
    changed = [{"name": "text_embedding", "kind": "embedding", "dimensions": DIMS + 1}]
    response = api.patch(f"/api/v1/models/{model}", json={"features": changed})
    assert response.status_code == 400
    assert "dimensions" in response.json()["detail"]
    for feature, stattest, says in (
        ("text_embedding", "ks", "an embedding feature takes model, distance, ratio, mmd"),
        ("age", "mmd", "applies to embedding features, not numerical ones"),
    ):
        body = {"drift": {"per_feature": {feature: {"stattest": stattest}}}}
        response = api.patch(f"/api/v1/models/{model}", json=body)
        assert response.status_code == 400, response.text
        assert says in response.json()["detail"]
    body = {"drift": {"per_feature": {"text_embedding": {"stattest": "mmd"}}}}
    assert api.patch(f"/api/v1/models/{model}", json=body).status_code == 200


# -- validation and storage --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ([0.0] * (DIMS - 1), f"got {DIMS - 1} values"),
        ([0.0] * (DIMS - 1) + ["x"], "entry 7 is 'x'"),
        ([0.0] * (DIMS - 1) + [True], "entry 7 is True"),
        ([0.0] * (DIMS - 1) + [1e39], "beyond float32's range"),
        ("not an array", "got 'not an array'"),
    ],
)
def test_a_bad_vector_is_rejected_naming_record_feature_and_length(
    api: TestClient, value: Any, says: str
) -> None:
    model = model_with(api)
    good = records(vectors(2, seed=1), prefix="ok")
    bad = {**good[0], "prediction_id": "bad-1",
           "features": {"age": 1, "text_embedding": value}}  # fmt: skip
    result = post(api, f"/api/v1/models/{model}/predictions", {"records": [*good, bad]})
    assert result["accepted"] == 2
    (rejected,) = result["rejected"]
    assert rejected["index"] == 2
    assert rejected["prediction_id"] == "bad-1"
    expected = f"feature 'text_embedding': expected an array of {DIMS} finite numbers"
    assert rejected["error"].startswith(expected)
    assert says in rejected["error"]


def test_a_non_finite_entry_is_rejected_from_the_sdk_body() -> None:
    """NaN cannot travel as JSON; the SDK's float32 body can carry it, and it is refused."""
    raw = columns_from_records([
        {"prediction_id": "a", "features": {"e": [0.0, float("nan"), 1.0]}, "prediction": 1},
        {"prediction_id": "b", "features": {"e": None}, "prediction": 1},
        {"prediction_id": "c", "features": {"e": [0.0, 1.0, float("inf")]}, "prediction": 1},
    ])  # fmt: skip
    valid = validate_columns(raw, [], task="regression", received_at=T0,
                             embeddings=[EmbeddingSpec("e", 3)])  # fmt: skip
    errors = {r.prediction_id: r.error for r in valid.rejected}
    assert errors == {
        "a": "feature 'e': expected an array of 3 finite numbers; entry 1 is nan",
        "c": "feature 'e': expected an array of 3 finite numbers; entry 2 is inf",
    }
    assert np.isnan(valid.columns.emb_values[0]).all()  # "b": no value, a missing row


def test_vectors_are_stored_as_float32_four_bytes_a_component() -> None:
    data = np.random.default_rng(3).normal(size=(100, 384))
    raw = columns_from_records([
        {"prediction_id": str(i), "features": {"x": 1.0, "e": row.tolist()}, "prediction": 1}
        for i, row in enumerate(data)
    ])  # fmt: skip
    valid = validate_columns(raw, [FeatureSpec("x", "numerical")], task="regression",
                             received_at=T0, embeddings=[EmbeddingSpec("e", 384)])  # fmt: skip
    encoded = chunks.encode(valid.columns)
    assert encoded.emb_values is not None
    assert len(encoded.emb_values) / 100 == 384 * 4  # bytes per row: float32, nothing more
    window = chunks.window_of(valid.columns)
    np.testing.assert_allclose(window.embeddings["e"], data, rtol=1e-6, atol=1e-6)


# -- runs ----------------------------------------------------------------------------------------


def _run(api: TestClient, model: str, window: np.ndarray) -> dict[str, Any]:
    post(api, f"/api/v1/models/{model}/baselines", baseline_body(vectors(400, seed=10)), 201)
    for start in range(0, len(window), 500):
        part = records(window, prefix="w")[start : start + 500]
        assert not post(api, f"/api/v1/models/{model}/predictions", {"records": part})["rejected"]
    run: dict[str, Any] = post(api, f"/api/v1/models/{model}/runs", WINDOW)
    return run


def _entry(run: dict[str, Any]) -> dict[str, Any]:
    (entry,) = [f for f in run["features"] if f["name"] == "text_embedding"]
    return entry


@pytest.mark.parametrize("method", ["model", "distance", "ratio", "mmd"])
def test_a_shifted_embedding_drifts_by_each_method(
    api: TestClient, backend: str, method: str
) -> None:
    shift = 3.0 if method == "ratio" else 1.0  # ratio needs a fifth of the components moved
    model = model_with(
        api, drift={"verdict": "evidently", "per_feature": {"text_embedding": {"stattest": method}}}
    )
    data = vectors(400, seed=11, shift=shift)
    if method == "ratio":
        data[:, :3] += shift
    run = _run(api, model, data)
    entry = _entry(run)
    assert entry["kind"] == "embedding"
    assert entry["stattest"] == method
    assert entry["drifted"] is True, entry
    assert entry["threshold"] == {"model": 0.55, "distance": 0.05, "ratio": 0.2,
                                  "mmd": 0.05}[method]  # fmt: skip
    if method in ("distance", "mmd"):
        assert entry["p_value"] < 0.05  # they decide by it, under either verdict
    assert run["dataset"]["drifted_features"] >= 1
    assert run["metrics"] if "metrics" in run else True


def test_calibrated_runs_give_each_embedding_a_p_value_in_the_correction(
    api: TestClient, backend: str
) -> None:
    model = model_with(api)  # calibrated: new models are
    run = _run(api, model, vectors(400, seed=12))
    entry = _entry(run)
    assert entry["stattest"] == "model"
    assert 0 < entry["p_value"] <= 1
    assert entry["verdict"] in ("no_drift", "insufficient")
    assert entry["drifted"] is False
    low, high = entry["effect_interval"]
    assert low <= entry["score"] <= high
    series = api.get(f"/api/v1/models/{model}/runs").json()
    assert series  # the run is listed


def test_a_run_from_summaries_says_the_embedding_needs_rows(
    api: TestClient, backend: str, settings: Any
) -> None:
    from driftwatch.monitoring import embedding_drift

    model = model_with(api)
    post(api, f"/api/v1/models/{model}/baselines", baseline_body(vectors(50, seed=1)), 201)
    from driftwatch.core.settings import DriftSettings
    from driftwatch.monitoring.profiles import embedding_profile

    profile = embedding_profile("text_embedding", DIMS, vectors(50, seed=1).astype(np.float32))
    (entry,) = embedding_drift.from_summaries(
        [EmbeddingSpec("text_embedding", DIMS)], [profile], DriftSettings()
    )
    assert entry.score is None
    assert entry.error is not None
    assert "exact" in entry.error


# -- baselines from files and windows --------------------------------------------------------------


def test_a_csv_baseline_holds_vectors_as_json_arrays(api: TestClient, backend: str) -> None:
    model = model_with(api)
    lines = ["age,text_embedding,prediction"]
    for i, row in enumerate(vectors(60, seed=4)):
        cell = json.dumps(row.round(4).tolist()).replace('"', '""')
        lines.append(f'{30 + i % 5},"{cell}",0.5')
    upload = {"file": ("b.csv", io.BytesIO("\n".join(lines).encode()))}
    response = api.post(f"/api/v1/models/{model}/baselines", data={"name": "csv"}, files=upload)
    assert response.status_code == 201, response.text
    assert response.json()["rows"] == 60
    bad = [*lines, '31,"[1, 2]",0.5']
    upload = {"file": ("b.csv", io.BytesIO("\n".join(bad).encode()))}
    response = api.post(f"/api/v1/models/{model}/baselines", data={"name": "csv2"}, files=upload)
    assert response.status_code == 422
    assert "line 62" in response.text
    assert f"expected an array of {DIMS} finite numbers, got 2 values" in response.text


def test_a_baseline_from_traffic_keeps_its_vectors(api: TestClient, backend: str) -> None:
    model = model_with(
        api,
        drift={"verdict": "evidently", "per_feature": {"text_embedding": {"stattest": "distance"}}},
    )
    for start in range(0, 300, 150):
        part = records(vectors(300, seed=5), prefix="t")[start : start + 150]
        post(api, f"/api/v1/models/{model}/predictions", {"records": part})
    body = {"name": "first-hour", "from_window": WINDOW}
    post(api, f"/api/v1/models/{model}/baselines", body, 201)
    run = post(api, f"/api/v1/models/{model}/runs", WINDOW)
    entry = _entry(run)
    assert entry["score"] == pytest.approx(0.0, abs=1e-6)  # the same rows: the same mean
    assert entry["drifted"] is False


# -- the SDK -------------------------------------------------------------------------------------


def test_the_sdk_logs_numpy_arrays(
    api: TestClient, live_server: LiveServer, tmp_path: Path
) -> None:
    model = model_with(api, drift={"verdict": "evidently"})
    post(api, f"/api/v1/models/{model}/baselines", baseline_body(vectors(300, seed=6)), 201)
    data = vectors(300, seed=7, shift=1.5).astype(np.float32)
    with driftwatch.Client(live_server.url, api_key=ADMIN_KEY, spool_dir=tmp_path,
                           batch_size=100) as client:  # fmt: skip
        for i, row in enumerate(data):
            features: dict[str, Any] = {"age": 30, "text_embedding": None if i == 5 else row}
            client.log_prediction(model, features, 0.5, prediction_id=f"s-{i}",
                                  timestamp=T0 + timedelta(seconds=i))  # fmt: skip
        client.log_prediction(model, {"age": 1, "text_embedding": np.zeros(DIMS - 2)}, 0.5,
                              prediction_id="short", timestamp=T0)  # fmt: skip
        assert client.flush(timeout=30)
        assert wait_until(lambda: len(client.rejected) == 1)
    assert client.rejected[0].prediction_id == "short"
    assert f"expected an array of {DIMS} finite numbers" in client.rejected[0].error
    assert api.get(f"/api/v1/models/{model}").json()["counts"]["predictions"] == 300
    entry = _entry(post(api, f"/api/v1/models/{model}/runs", WINDOW))
    assert entry["drifted"] is True
    assert entry["missing_share"] == pytest.approx(1 / 300)


# -- the dashboard -------------------------------------------------------------------------------


def test_the_pages_show_an_embedding_its_projection_and_its_heatmap_row(
    api: TestClient, engine: Any, settings: Any
) -> None:
    from datetime import UTC, datetime

    from driftwatch.app import create_app
    from tests.conftest import sign_in

    model = model_with(api)
    post(api, f"/api/v1/models/{model}/baselines", baseline_body(vectors(200, seed=8)), 201)
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
    batch = [
        {**record, "timestamp": (start + timedelta(seconds=i)).isoformat()}
        for i, record in enumerate(records(vectors(100, seed=9, shift=2.0), prefix="d"))
    ]
    post(api, f"/api/v1/models/{model}/predictions", {"records": batch})
    window = {"start": start.isoformat(), "end": (start + timedelta(hours=1)).isoformat()}
    post(api, f"/api/v1/models/{model}/runs", window)
    with TestClient(create_app(settings, engine)) as browser:
        sign_in(browser, follow_redirects=False)
        page = browser.get(f"/models/{model}")
        feature = browser.get(f"/models/{model}/features/text_embedding")
    assert page.status_code == 200, page.text
    assert "2 features" in page.text  # age and the embedding
    model_data = json.loads(page.text.split('id="page-data">')[1].split("</script>")[0])
    assert "text_embedding" in json.dumps(model_data["heatmap"])  # a row of its own
    assert f"/models/{model}/features/text_embedding" in page.text
    assert feature.status_code == 200, feature.text
    assert 'data-tile="dimensions"' in feature.text
    data = json.loads(feature.text.split('id="page-data">')[1].split("</script>")[0])
    projection = data["distribution"]["projection"]
    assert len(projection["reference"]) == 200
    assert len(projection["current"]) == 100
    assert all(len(point) == 2 for point in projection["current"])
    (series,) = data["scores"]
    assert series["stattest"] == "model"
    assert series["label"] == "model ROC AUC"
