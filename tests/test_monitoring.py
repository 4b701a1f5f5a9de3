"""Baselines and runs through the API, checked against Evidently and scikit-learn."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sklearn import metrics

from tests.conftest import create_model
from tests.factories import (
    EVIDENTLY_RULE,
    T0,
    frame,
    log,
    post,
)
from tests.factories import (
    MONITORED as FEATURES,
)
from tests.factories import frame_baseline as baseline_records
from tests.factories import frame_records as records

os.environ.setdefault("DO_NOT_TRACK", "1")


def evidently_drift(reference: pd.DataFrame, current: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Evidently's own DataDriftPreset verdict per column: registry name, score, drifted."""
    from evidently.legacy.calculations.stattests.registry import _registered_stat_tests
    from evidently.legacy.metric_preset import DataDriftPreset
    from evidently.legacy.pipeline.column_mapping import ColumnMapping
    from evidently.legacy.report import Report

    names = {
        test.display_name: test.name
        for tests in _registered_stat_tests.values()
        for test in tests.values()
    }
    report = Report(metrics=[DataDriftPreset()])
    mapping = ColumnMapping(
        numerical_features=["age", "income", "prediction"],
        categorical_features=["state"],
        target=None,
        prediction=None,
    )
    report.run(reference_data=reference, current_data=current, column_mapping=mapping)
    columns = report.as_dict()["metrics"][1]["result"]["drift_by_columns"]
    return {
        name: {"stattest": names[c["stattest_name"]], "score": c["drift_score"],
               "threshold": c["stattest_threshold"], "drifted": c["drift_detected"]}
        for name, c in columns.items()
    }  # fmt: skip


@pytest.mark.parametrize(
    ("reference_rows", "current_rows", "shift", "states"),
    [
        (800, 500, 0.0, ("CA", "NY", "TX")),  # small reference: ks / chisquare, no drift
        (800, 500, 0.8, ("CA", "NY", "WA")),  # small reference, drifted, an unseen category
        (3000, 2000, 0.0, ("CA", "NY", "TX")),  # large reference: wasserstein / jensenshannon
        (3000, 2000, 0.5, ("CA", "TX", "WA", "OR")),
    ],
)
def test_a_run_agrees_with_evidently_per_column(
    api: TestClient, reference_rows: int, current_rows: int, shift: float, states: tuple[str, ...]
) -> None:
    # Evidently's rule decides (new models are calibrated): the verdicts must be Evidently's
    model = create_model(api, features=FEATURES, window="1h", drift=EVIDENTLY_RULE)["name"]
    reference = frame(reference_rows, seed=1)
    current = frame(current_rows, seed=2, shift=shift, states=states)
    post(api, f"/api/v1/models/{model}/baselines",
         {"name": "training", "records": baseline_records(reference)}, 201)  # fmt: skip
    log(api, model, records(current, prefix="p"))
    run = post(api, f"/api/v1/models/{model}/runs",
               {"start": T0.isoformat(), "end": (T0 + timedelta(hours=1)).isoformat()})  # fmt: skip
    expected = evidently_drift(reference, current)
    assert run["rows"] == current_rows
    by_name = {f["name"]: f for f in run["features"]}
    for name in ("age", "income", "state"):
        mine, theirs = by_name[name], expected[name]
        if theirs["stattest"] == "chisquare":
            # our deliberate exception: the two-sample test (checked in test_stattests.py)
            assert mine["stattest"] == "chisquare"
            continue
        assert mine["stattest"] == theirs["stattest"], name
        assert mine["threshold"] == theirs["threshold"], name
        assert mine["score"] == pytest.approx(theirs["score"], rel=1e-6, abs=1e-12), name
        assert mine["drifted"] == theirs["drifted"], name
    theirs = expected["prediction"]
    assert run["prediction"]["stattest"] == theirs["stattest"]
    assert run["prediction"]["score"] == pytest.approx(theirs["score"], rel=1e-6, abs=1e-12)
    drifted = sum(f["drifted"] for f in run["features"])
    assert run["dataset"] == {
        "drifted_features": drifted, "drifted_share": drifted / 3, "drifted": drifted / 3 >= 0.5,
        "insufficient_share": None,  # Evidently's verdict: no calibrated numbers
        "cluster_by": None, "clusters": None,
    }  # fmt: skip


def test_quality_numbers(api: TestClient) -> None:
    model = create_model(api, features=FEATURES)["name"]
    reference = frame(500, seed=3)
    post(api, f"/api/v1/models/{model}/baselines",
         {"name": "b", "records": baseline_records(reference)}, 201)  # fmt: skip
    current = frame(400, seed=4, states=("CA", "ZZ"))
    current.loc[:9, "income"] = 10**9  # far outside the baseline's range
    recs = records(current, prefix="q")
    log(api, model, recs)
    bad = [{"prediction_id": "bad", "timestamp": T0.isoformat(), "features": {"age": "x"},
            "prediction": 1}]  # fmt: skip
    api.post(f"/api/v1/models/{model}/predictions", json={"records": bad})
    now = datetime.now(UTC)
    run = post(api, f"/api/v1/models/{model}/runs",
               {"start": T0.isoformat(), "end": (T0 + timedelta(hours=1)).isoformat()})  # fmt: skip
    missing = current[["age", "income", "state"]].isna().to_numpy().sum()
    assert run["quality"]["missing_share"] == pytest.approx(missing / (400 * 3))
    assert run["quality"]["new_categories"] == {"state": ["ZZ"]}
    assert run["quality"]["out_of_range"]["income"] == pytest.approx(10 / 400)
    by_name = {f["name"]: f for f in run["features"]}
    assert by_name["age"]["missing_share"] == pytest.approx(current["age"].isna().mean())
    # rejected records are counted by when they were received
    window = post(api, f"/api/v1/models/{model}/runs",
                  {"start": (now - timedelta(minutes=5)).isoformat(),
                   "end": datetime.now(UTC).isoformat()})  # fmt: skip
    assert window["quality"]["rejected"] == 1
    assert window["rows"] == 0
    assert window["dataset"]["drifted_share"] is None  # no data: no verdict


def test_accuracy_follows_the_labels(api: TestClient) -> None:
    model = create_model(api, features=FEATURES, task="binary_classification")["name"]
    data = frame(600, seed=5)
    post(api, f"/api/v1/models/{model}/baselines",
         {"name": "b", "records": baseline_records(data)}, 201)  # fmt: skip
    log(api, model, records(data, prefix="a"))
    body = {"start": T0.isoformat(), "end": (T0 + timedelta(hours=1)).isoformat()}
    assert post(api, f"/api/v1/models/{model}/runs", body)["accuracy"] is None  # no labels yet
    rng = np.random.default_rng(6)
    labels = (rng.random(600) < data["prediction"]).astype(int)
    labeled = np.arange(0, 600, 2)  # half the predictions get a label
    post(api, f"/api/v1/models/{model}/ground-truth", {"records": [
        {"prediction_id": f"a-{i}", "label": int(labels[i])} for i in labeled]})  # fmt: skip
    run = post(api, f"/api/v1/models/{model}/runs", body)
    y_true, scores = labels[labeled], data["prediction"].to_numpy()[labeled]
    y_pred = (scores >= 0.5).astype(int)
    assert run["labeled_rows"] == 300
    assert run["accuracy"] == pytest.approx({
        "accuracy": metrics.accuracy_score(y_true, y_pred),
        "precision": metrics.precision_score(y_true, y_pred),
        "recall": metrics.recall_score(y_true, y_pred),
        "f1": metrics.f1_score(y_true, y_pred),
        "roc_auc": metrics.roc_auc_score(y_true, scores),
        "log_loss": metrics.log_loss(y_true, scores),
    })  # fmt: skip


def test_regression_and_multiclass_accuracy(api: TestClient) -> None:
    reg = create_model(api, features=FEATURES[:1], task="regression")["name"]
    truth = np.array([3.0, 5.0, 2.0, 8.0])
    predicted = np.array([2.5, 5.5, 2.0, 7.0])
    recs = [{"prediction_id": str(i), "timestamp": T0.isoformat(), "features": {"age": 1.0 * i},
             "prediction": float(p)} for i, p in enumerate(predicted)]  # fmt: skip
    post(api, f"/api/v1/models/{reg}/baselines", {"name": "b", "records": recs}, 201)
    log(api, reg, recs)
    post(
        api,
        f"/api/v1/models/{reg}/ground-truth",
        {"records": [{"prediction_id": str(i), "label": float(t)} for i, t in enumerate(truth)]},
    )
    body = {"start": T0.isoformat(), "end": (T0 + timedelta(hours=1)).isoformat()}
    run = post(api, f"/api/v1/models/{reg}/runs", body)
    assert run["accuracy"] == pytest.approx({
        "mae": metrics.mean_absolute_error(truth, predicted),
        "rmse": float(np.sqrt(metrics.mean_squared_error(truth, predicted))),
        "mape": metrics.mean_absolute_percentage_error(truth, predicted),
        "r2": metrics.r2_score(truth, predicted),
    })  # fmt: skip

    multi = create_model(api, features=FEATURES[:1], task="multiclass_classification")["name"]
    predicted_classes = ["cat", "dog", "bird", "cat", "dog"]
    true_classes = ["cat", "dog", "cat", "cat", "bird"]
    recs = [{"prediction_id": str(i), "timestamp": T0.isoformat(), "features": {"age": 1.0},
             "prediction": c} for i, c in enumerate(predicted_classes)]  # fmt: skip
    post(api, f"/api/v1/models/{multi}/baselines", {"name": "b", "records": recs}, 201)
    log(api, multi, recs)
    post(
        api,
        f"/api/v1/models/{multi}/ground-truth",
        {"records": [{"prediction_id": str(i), "label": c} for i, c in enumerate(true_classes)]},
    )
    run = post(api, f"/api/v1/models/{multi}/runs", body)
    assert run["prediction"]["stattest"] in ("chisquare", "z", "jensenshannon")
    assert run["accuracy"] == pytest.approx({
        "accuracy": metrics.accuracy_score(true_classes, predicted_classes),
        "precision": metrics.precision_score(true_classes, predicted_classes, average="macro",
                                             zero_division=0),
        "recall": metrics.recall_score(true_classes, predicted_classes, average="macro",
                                       zero_division=0),
        "f1": metrics.f1_score(true_classes, predicted_classes, average="macro", zero_division=0),
    })  # fmt: skip


def test_drift_settings_choose_tests_and_thresholds(api: TestClient) -> None:
    model = create_model(api, features=FEATURES, drift={
        "num_stattest": "psi", "cat_stattest": "TVD",
        "per_feature": {"age": {"stattest": "ks", "threshold": 0.01}}, "drift_share": 0.3,
    })["name"]  # fmt: skip
    post(api, f"/api/v1/models/{model}/baselines",
         {"name": "b", "records": baseline_records(frame(500, seed=7))}, 201)  # fmt: skip
    log(api, model, records(frame(300, seed=8, shift=1.0), prefix="d"))
    run = post(api, f"/api/v1/models/{model}/runs",
               {"start": T0.isoformat(), "end": (T0 + timedelta(hours=1)).isoformat()})  # fmt: skip
    chosen = {f["name"]: (f["stattest"], f["threshold"]) for f in run["features"]}
    assert chosen["age"] == ("ks", 0.01)
    assert chosen["income"][0] == "psi"
    assert chosen["state"][0] == "TVD"
    assert run["dataset"]["drifted"] == (run["dataset"]["drifted_share"] >= 0.3)


def test_baselines_from_a_window_and_from_files(api: TestClient) -> None:
    model = create_model(api, features=FEATURES)["name"]
    data = frame(300, seed=9)
    log(api, model, records(data, prefix="w"))
    from_window = post(api, f"/api/v1/models/{model}/baselines", {
        "name": "first-week",
        "from_window": {"start": T0.isoformat(), "end": (T0 + timedelta(minutes=2)).isoformat()},
    }, 201)  # fmt: skip
    assert from_window["rows"] == 120  # one prediction a second
    csv = data.to_csv(index=False).encode()
    response = api.post(f"/api/v1/models/{model}/baselines", data={"name": "csv"},
                        files={"file": ("train.csv", csv, "text/csv")})  # fmt: skip
    assert response.status_code == 201, response.text
    assert response.json()["rows"] == 300
    buffer = io.BytesIO()
    data.to_parquet(buffer)
    response = api.post(f"/api/v1/models/{model}/baselines", data={"name": "pq"},
                        files={"file": ("train.parquet", buffer.getvalue())})  # fmt: skip
    assert response.status_code == 201, response.text
    listed = api.get(f"/api/v1/models/{model}/baselines").json()
    assert [b["name"] for b in listed] == ["pq", "csv", "first-week"]
    assert [b["active"] for b in listed] == [True, False, False]  # the newest is active
    activated = api.put(f"/api/v1/models/{model}/baselines/{from_window['id']}/activate")
    assert activated.json()["active"] is True
    assert [b["active"] for b in api.get(f"/api/v1/models/{model}/baselines").json()] == [
        False, False, True]  # fmt: skip
    run = post(api, f"/api/v1/models/{model}/runs",
               {"start": T0.isoformat(), "end": (T0 + timedelta(hours=1)).isoformat()})  # fmt: skip
    assert run["baseline"] == {"id": from_window["id"], "name": "first-week"}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        # only the bad cell is reported, though it makes the whole column text to pandas
        (
            b"age,income,state\n31,100,CA\nabc,200,NY\n40.5,300,TX\n",
            "1 of 3 baseline records are invalid: line 3: feature 'age': expected a number, "
            "got 'abc'",
        ),
        (b"\x00\x01not a table", "file: no rows after its header line"),
        (b"", "file: empty"),
    ],
)
def test_a_bad_baseline_file_names_the_line(api: TestClient, content: bytes, message: str) -> None:
    model = create_model(api, features=FEATURES)["name"]
    response = api.post(f"/api/v1/models/{model}/baselines", data={"name": "x"},
                        files={"file": ("train.csv", content)})  # fmt: skip
    assert response.status_code == 422
    assert message in response.json()["detail"], response.json()["detail"]


def test_bad_baseline_bodies_and_missing_baselines(api: TestClient) -> None:
    model = create_model(api, features=FEATURES)["name"]
    path = f"/api/v1/models/{model}"
    bad = post(api, f"{path}/baselines", {"name": "b", "records": [
        {"features": {"age": 1}}, {"features": {"age": "old"}}]}, 422)  # fmt: skip
    assert "record 1: feature 'age': expected a number" in bad["detail"]
    neither = post(api, f"{path}/baselines", {"name": "b"}, 422)
    assert "either 'records' or 'from_window'" in neither["detail"]
    run = post(
        api,
        f"{path}/runs",
        {"start": T0.isoformat(), "end": (T0 + timedelta(hours=1)).isoformat()},
        409,
    )
    assert "has no baseline yet" in run["detail"]
    assert api.get(f"{path}/runs/999999").status_code == 404
    assert api.put(f"{path}/baselines/999999/activate").status_code == 404
    assert post(api, f"{path}/runs", {"start": T0.isoformat(), "end": T0.isoformat()}, 422)


def test_a_model_without_features_takes_them_from_its_first_baseline(api: TestClient) -> None:
    model = create_model(api)["name"]
    post(api, f"/api/v1/models/{model}/baselines", {"name": "b", "records": [
        {"features": {"x": 1.5, "colour": "red"}, "prediction": 1}]}, 201)  # fmt: skip
    assert api.get(f"/api/v1/models/{model}").json()["features"] == [
        {"name": "x", "kind": "numerical"},
        {"name": "colour", "kind": "categorical"},
    ]


def test_runs_are_listed_and_read(api: TestClient) -> None:
    model = create_model(api, features=FEATURES)["name"]
    post(api, f"/api/v1/models/{model}/baselines",
         {"name": "b", "records": baseline_records(frame(200, seed=10))}, 201)  # fmt: skip
    log(api, model, records(frame(200, seed=11), prefix="r"))
    ids = []
    for hour in range(3):
        start = T0 + timedelta(hours=hour)
        ids.append(
            post(
                api,
                f"/api/v1/models/{model}/runs",
                {"start": start.isoformat(), "end": (start + timedelta(hours=1)).isoformat()},
            )["id"]
        )
    again = post(
        api,
        f"/api/v1/models/{model}/runs",
        {"start": T0.isoformat(), "end": (T0 + timedelta(hours=1)).isoformat()},
    )
    assert again["id"] == ids[0]  # the same window and baseline: recomputed, not duplicated
    listed = api.get(
        f"/api/v1/models/{model}/runs", params={"start": (T0 + timedelta(hours=1)).isoformat()}
    ).json()
    assert [r["id"] for r in listed] == [ids[2], ids[1]]
    one = api.get(f"/api/v1/models/{model}/runs/{ids[0]}").json()
    assert one["window"] == {"start": "2026-11-20T10:00:00Z", "end": "2026-11-20T11:00:00Z"}
    assert one["rows"] == 200
    assert one["model"] == model


@pytest.mark.slow
def test_the_run_command_prints_a_window(api: TestClient, database_url: str) -> None:
    model = create_model(api, features=FEATURES)["name"]
    post(api, f"/api/v1/models/{model}/baselines",
         {"name": "b", "records": baseline_records(frame(200, seed=12))}, 201)  # fmt: skip
    log(api, model, records(frame(100, seed=13), prefix="c"))
    done = subprocess.run(
        [sys.executable, "-m", "driftwatch.cli", "run", model, "--start", T0.isoformat(),
         "--end", (T0 + timedelta(hours=1)).isoformat()],
        env={**os.environ, "DRIFTWATCH_DATABASE_URL": database_url},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    assert printed["rows"] == 100
    assert {f["name"] for f in printed["features"]} == {"age", "income", "state"}
    missing = subprocess.run(
        [sys.executable, "-m", "driftwatch.cli", "run", "no-such-model"],
        env={**os.environ, "DRIFTWATCH_DATABASE_URL": database_url},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert missing.returncode == 1
    assert "'no-such-model' does not exist" in missing.stderr


@pytest.mark.slow
def test_the_baselines_command_reads_a_large_csv_with_progress(
    api: TestClient, database_url: str, tmp_path: Any
) -> None:
    model = create_model(api, features=FEATURES)["name"]
    path = tmp_path / "train.csv"
    frame(250_000, seed=14).to_csv(path, index=False)
    done = subprocess.run(
        [sys.executable, "-m", "driftwatch.cli", "baselines", "create", model, "--name", "big",
         "--file", str(path)],
        env={**os.environ, "DRIFTWATCH_DATABASE_URL": database_url},
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "100.0%" in done.stderr
    assert "250,000 rows, active" in done.stdout
    listed = api.get(f"/api/v1/models/{model}/baselines").json()
    assert listed[0]["rows"] == 250_000


@pytest.mark.parametrize("stattest", ["psi", "hellinger", "jensenshannon", "kl_div"])
def test_binned_tests_on_an_integer_column_agree_with_evidently(
    api: TestClient, stattest: str
) -> None:
    """Evidently bins an integer column differently from floats; a column of whole numbers
    without missing values is treated as integer, as pandas would type it."""
    from evidently.legacy.metric_preset import DataDriftPreset
    from evidently.legacy.pipeline.column_mapping import ColumnMapping
    from evidently.legacy.report import Report

    model = create_model(api, features=[{"name": "visits", "kind": "numerical"}],
                         drift={**EVIDENTLY_RULE, "num_stattest": stattest})["name"]  # fmt: skip
    rng = np.random.default_rng(30)
    reference = pd.DataFrame({"visits": rng.poisson(30, 2000)})
    current = pd.DataFrame({"visits": rng.poisson(33, 1500)})
    post(api, f"/api/v1/models/{model}/baselines", {"name": "b", "records": [
        {"features": {"visits": int(v)}} for v in reference["visits"]]}, 201)  # fmt: skip
    logged = post(api, f"/api/v1/models/{model}/predictions", {"records": [
        {"prediction_id": str(i), "timestamp": T0.isoformat(), "features": {"visits": int(v)},
         "prediction": 0.5} for i, v in enumerate(current["visits"])]})  # fmt: skip
    assert logged["accepted"] == 1500, logged
    run = post(api, f"/api/v1/models/{model}/runs",
               {"start": T0.isoformat(), "end": (T0 + timedelta(hours=1)).isoformat()})  # fmt: skip
    report = Report(metrics=[DataDriftPreset(num_stattest=stattest)])
    report.run(reference_data=reference, current_data=current,
               column_mapping=ColumnMapping(numerical_features=["visits"], target=None,
                                            prediction=None))  # fmt: skip
    theirs = report.as_dict()["metrics"][1]["result"]["drift_by_columns"]["visits"]
    [mine] = run["features"]
    assert mine["score"] is not None, json.dumps(mine)
    assert mine["score"] == pytest.approx(theirs["drift_score"], rel=1e-6, abs=1e-12)
    assert mine["drifted"] == theirs["drift_detected"]
