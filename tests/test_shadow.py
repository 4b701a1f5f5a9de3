"""Shadow models (CONTRACT section 10): a challenger's predictions for served ones, joined by id
in either order, idempotent per (id, version); each run reports its agreement with the served
model and its accuracy against it on the same labeled ids, with a paired interval."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

import driftwatch
from driftwatch.core.result import RunResult
from driftwatch.core.vocabulary import metric_problem
from driftwatch.monitoring import accuracy, versions
from tests.conftest import ADMIN_KEY, LiveServer, admin_http
from tests.factories import T0, Model, baseline_records, labels, model, predictions

HOUR = timedelta(hours=1)


def _shadow(m: Model, records: list[dict[str, Any]], status: int = 200) -> dict[str, Any]:
    response = m.api.post(f"{m.path}/shadow-predictions", json={"records": records})
    assert response.status_code == status, response.text
    answer: dict[str, Any] = response.json()
    return answer


def _scores(truth: np.ndarray[Any, Any], noise: float, seed: int) -> list[float]:
    """Scores of a model that separates the classes better the smaller ``noise`` is."""
    rng = np.random.default_rng(seed)
    logits = (truth * 2 - 1) * 1.5 + rng.normal(scale=noise, size=truth.size)
    return [round(float(v), 5) for v in 1 / (1 + np.exp(-logits))]


def _window(m: Model, count: int, served_noise: float, seed: int) -> np.ndarray[Any, Any]:
    truth = (np.random.default_rng(seed).random(count) < 0.5).astype(int)
    served = _scores(truth, served_noise, seed + 1)
    m.baseline(baseline_records(1000, prediction=lambda i: served[i % count]))
    m.log(predictions(count, prediction=lambda i: served[i], model_version="v4"))
    m.label(labels([f"p-{i}" for i in range(count)], label=lambda i: int(truth[i])))
    return truth


def _version(run: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(v for v in run["versions"] if v["model_version"] == name)
    return found


def test_a_better_challenger_is_reported_better(api: TestClient) -> None:
    m = model(api)
    truth = _window(m, 1500, served_noise=3.0, seed=1)
    better = _scores(truth, 1.0, seed=9)
    answer = _shadow(m, [{"prediction_id": f"p-{i}", "model_version": "v5",
                          "prediction": better[i]} for i in range(1500)])  # fmt: skip
    assert (answer["accepted"], answer["duplicates"]) == (1500, 0)
    run = m.run(T0, T0 + HOUR)
    served, shadow = _version(run, "v4"), _version(run, "v5")
    assert (served["role"], shadow["role"]) == ("served", "shadow")
    assert (shadow["rows"], shadow["labeled_rows"]) == (1500, 1500)
    assert 0.5 < shadow["agreement"] < 1
    delta = shadow["delta"]["accuracy"]
    assert delta["value"] == pytest.approx(
        shadow["accuracy"]["accuracy"] - served["accuracy"]["accuracy"])  # fmt: skip
    assert delta["lower"] > 0  # the interval excludes 0
    assert shadow["delta"]["roc_auc"]["lower"] > 0
    flat = RunResult.model_validate(run).metrics()
    assert flat["version[v5].delta.accuracy.lower"] == delta["lower"]
    assert flat["version[v5].agreement"] == shadow["agreement"]


def test_an_equal_challenger_is_not_reported_better() -> None:
    """Over 20 simulated windows (fixed seeds) a challenger as good as the served model, with
    noise of its own, gets a paired interval holding 0 about 95% of the time."""
    holds: dict[str, int] = {"accuracy": 0, "roc_auc": 0}
    for seed in range(20):
        truth = (np.random.default_rng([seed, 1]).random(800) < 0.5).astype(int)
        served = _scores(truth, 2.0, seed=1000 + seed)
        same = _scores(truth, 2.0, seed=2000 + seed)
        rows = [("v5", same[i], None, served[i], None, float(truth[i]), None)
                for i in range(800)]  # fmt: skip
        (shadow,) = versions.shadows("binary_classification", rows)
        for name in holds:
            holds[name] += shadow.delta[name].lower < 0 < shadow.delta[name].upper
    assert holds["accuracy"] >= 16, holds
    assert holds["roc_auc"] >= 16, holds


def test_either_order_and_duplicates_join_once(api: TestClient) -> None:
    m = model(api)
    m.baseline(baseline_records(200))
    early = [{"prediction_id": f"p-{i}", "model_version": "v5", "prediction": 0.9}
             for i in range(30)]  # fmt: skip
    assert _shadow(m, early)["accepted"] == 30  # before the served predictions exist
    m.log(predictions(60, prediction=lambda i: 0.9 if i % 2 else 0.1))
    late = [{"prediction_id": f"p-{i}", "model_version": "v5", "prediction": "0.9"}
            for i in range(20, 60)]  # 10 already sent, numbers as text  # fmt: skip
    answer = _shadow(m, late + late[:5])
    assert (answer["accepted"], answer["duplicates"]) == (30, 15)
    again = _shadow(m, early)  # a client retrying
    assert (again["accepted"], again["duplicates"]) == (0, 30)
    other = _shadow(m, [{"prediction_id": "p-1", "model_version": "v6", "prediction": 0.1}])
    assert other["accepted"] == 1  # another version of the same id
    shadow = _version(m.run(T0, T0 + HOUR), "v5")
    assert shadow["rows"] == 60
    assert shadow["agreement"] == pytest.approx(0.5)  # v5 says 1 where served alternates
    assert shadow["labeled_rows"] == 0
    assert shadow["delta"] == {}


def test_bad_shadow_records_are_refused_by_name(api: TestClient) -> None:
    m = model(api, task="regression")
    answer = _shadow(m, [
        {"prediction_id": "p-1", "prediction": 1.0},
        {"model_version": "v5", "prediction": 1.0},
        {"prediction_id": "p-2", "model_version": "v5", "prediction": "high"},
        {"prediction_id": "p-3", "model_version": "v5"},
        {"prediction_id": "p-4", "model_version": "v5", "prediction": 2.5},
    ])  # fmt: skip
    assert answer["accepted"] == 1
    errors = [r["error"] for r in answer["rejected"]]
    assert "model_version: required" in errors[0]
    assert "prediction_id: required" in errors[1]
    assert "regression model predicts numbers" in errors[2]
    assert "prediction: required" in errors[3]


def test_the_sdk_logs_shadow_predictions(
    api: TestClient, live_server: LiveServer, tmp_path: Path
) -> None:
    m = model(api)
    m.baseline(baseline_records(100))
    with driftwatch.Client(live_server.url, api_key=ADMIN_KEY, spool_dir=tmp_path) as client:
        for i in range(50):
            client.log_prediction(m.name, {"age": 30, "state": "CA"}, 0.8,
                                  prediction_id=f"s-{i}", timestamp=T0)  # fmt: skip
            client.log_shadow_prediction(m.name, prediction_id=f"s-{i}", model_version="v9",
                                         prediction=0.2 if i < 10 else 0.7)  # fmt: skip
        assert client.flush(timeout=30)
        assert not client.rejected
    shadow = _version(m.run(T0, T0 + HOUR), "v9")
    assert shadow["rows"] == 50
    assert shadow["agreement"] == pytest.approx(0.8)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_counted_bootstrap_gives_the_metrics_themselves(seed: int) -> None:
    rng = np.random.default_rng(seed)
    truth = (rng.random(300) < 0.4).astype(float)
    scores = np.round(rng.random(300), 2)  # ties
    weights = rng.integers(0, 3, (2, 300)).astype(float)
    counted = versions.weighted_binary_metrics(scores, truth, weights)
    for draw in range(2):
        rows = np.repeat(np.arange(300), weights[draw].astype(int))
        expected = accuracy.compute("binary_classification", accuracy.Labeled(
            prediction_values=scores[rows], prediction_classes=[None] * rows.size,
            label_values=truth[rows], label_classes=[None] * rows.size))  # fmt: skip
        assert expected is not None
        for name, value in expected.items():
            assert counted[name][draw] == pytest.approx(value, rel=1e-9), name


@pytest.mark.parametrize(
    "metric",
    ["version[v5].agreement", "version[v5].delta.f1", "version[v5].delta.roc_auc.lower",
     "version[v5].delta.mae.upper"],
)  # fmt: skip
def test_shadow_metrics_are_in_the_vocabulary(metric: str) -> None:
    assert metric_problem(metric) is None


def test_two_writers_of_the_same_shadow_batch_store_it_once(
    api: TestClient, live_server: LiveServer
) -> None:
    """A client and its retry racing: each (id, version) stored once, counted once."""
    m = model(api)
    m.baseline(baseline_records(100))
    m.log(predictions(500))
    batch = {"records": [{"prediction_id": f"p-{i}", "model_version": "v5", "prediction": 0.5}
                         for i in range(500)]}  # fmt: skip
    start = threading.Barrier(2)

    def send() -> dict[str, Any]:
        with admin_http(live_server.url) as http:
            start.wait()
            response = http.post(f"{m.path}/shadow-predictions", json=batch)
            assert response.status_code == 200, response.text
            answer: dict[str, Any] = response.json()
            return answer

    with ThreadPoolExecutor(max_workers=2) as pool:
        answers = list(pool.map(lambda _: send(), range(2)))
    assert sum(a["accepted"] for a in answers) == 500
    assert sum(a["duplicates"] for a in answers) == 500
    assert _version(m.run(T0, T0 + HOUR), "v5")["rows"] == 500
