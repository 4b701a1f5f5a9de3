"""Registering and reading models through the HTTP API."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from driftwatch.models import MonitoredModel
from tests.conftest import create_model, unique


def test_a_model_is_created_listed_and_read_with_counts(api: TestClient) -> None:
    body = {
        "name": unique("credit-risk"),
        "task": "binary_classification",
        "features": [
            {"name": "age", "kind": "numerical"},
            {"name": "state", "kind": "categorical"},
        ],
        "window": "15m",
    }
    created = api.post("/api/v1/models", json=body)
    assert created.status_code == 201
    assert created.json()["features"] == body["features"]
    assert created.json()["window"] == "15m"

    listed = api.get("/api/v1/models").json()
    assert body["name"] in [m["name"] for m in listed]

    model = api.get(f"/api/v1/models/{body['name']}").json()
    assert model["task"] == "binary_classification"
    assert model["counts"] == {"predictions": 0, "labeled": 0}


def test_the_same_name_twice_is_a_conflict(api: TestClient) -> None:
    model = create_model(api)
    again = api.post("/api/v1/models", json={"name": model["name"], "task": "regression"})
    assert again.status_code == 409
    assert model["name"] in again.json()["detail"]


def test_an_unknown_model_is_404(api: TestClient) -> None:
    response = api.get("/api/v1/models/no-such-model")
    assert response.status_code == 404
    assert "no-such-model" in response.json()["detail"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"task": "binary_classification"}, "name: Field required"),
        ({"name": "x", "task": "clustering"}, "task: Input should be"),
        ({"name": "x", "task": "regression", "window": "hourly"}, "is not a duration"),
        ({"name": "x", "task": "regression", "window": "0h"}, "longer than zero"),
        ({"name": "has space", "task": "regression"}, "name: String should match pattern"),
        (
            {"name": "x", "task": "regression", "features": [{"name": "a", "kind": "text"}]},
            "features.0.kind",
        ),
        (
            {
                "name": "x",
                "task": "regression",
                "features": [{"name": "a", "kind": "numerical"}] * 2,
            },
            "feature 'a' is listed more than once",
        ),
        (
            {"name": "x", "task": "regression", "drift": {"num_stattest": "magic"}},
            "unknown stattest 'magic'",
        ),
        ({"name": "x", "task": "regression", "colour": "red"}, "colour: Extra inputs"),
    ],
)
def test_a_bad_model_body_is_422_saying_what_is_wrong(
    api: TestClient, body: dict[str, Any], message: str
) -> None:
    response = api.post("/api/v1/models", json=body)
    assert response.status_code == 422
    assert message in response.json()["detail"], response.json()["detail"]


def test_drift_settings_window_and_new_features_are_updated(api: TestClient) -> None:
    model = create_model(api, features=[{"name": "age", "kind": "numerical"}])
    drift = {
        "num_stattest": "psi",
        "cat_stattest": "jensenshannon",
        "per_feature": {"age": {"stattest": "ks", "threshold": 0.01}},
        "drift_share": 0.3,
    }
    response = api.patch(
        f"/api/v1/models/{model['name']}",
        json={
            "drift": drift,
            "window": "1d",
            "features": [{"name": "state", "kind": "categorical"}],
        },
    )
    assert response.status_code == 200, response.text
    updated = response.json()
    # a day's window: 30 windows a month, the default budget of one false alarm a month
    reported = {**drift, "verdict": "calibrated", "false_alarms_per_month": 1.0,
                "alpha_per_window": 1 / 30, "expected_false_alarms_per_month": 1.0,
                    "cluster_by": None, "multivariate": True}  # fmt: skip
    assert updated["drift"] == reported
    assert updated["window"] == "1d"
    assert updated["features"] == [
        {"name": "age", "kind": "numerical"},
        {"name": "state", "kind": "categorical"},
    ]
    assert api.get(f"/api/v1/models/{model['name']}").json()["drift"] == reported


def test_a_stored_feature_keeps_its_kind(api: TestClient) -> None:
    model = create_model(api, features=[{"name": "age", "kind": "numerical"}])
    response = api.patch(
        f"/api/v1/models/{model['name']}",
        json={"features": [{"name": "age", "kind": "categorical"}]},
    )
    assert response.status_code == 400
    assert "feature 'age' is numerical" in response.json()["detail"]


@pytest.mark.parametrize(
    ("drift", "message"),
    [
        ({"num_stattest": "chisquare"}, "drift.num_stattest: 'chisquare' applies to categorical"),
        ({"cat_stattest": "ks"}, "drift.cat_stattest: 'ks' applies to numerical"),
        (
            {"per_feature": {"state": {"stattest": "wasserstein"}}},
            "drift.per_feature.state.stattest: 'wasserstein' applies to numerical",
        ),
    ],
)
def test_a_test_that_does_not_fit_the_column_is_refused(
    api: TestClient, drift: dict[str, Any], message: str
) -> None:
    features = [{"name": "age", "kind": "numerical"}, {"name": "state", "kind": "categorical"}]
    created = api.post("/api/v1/models", json={"name": "x-" + message[:5].replace(".", ""),
                                               "task": "regression", "features": features,
                                               "drift": drift})  # fmt: skip
    assert created.status_code == 400
    assert message in created.json()["detail"]
    model = create_model(api, features=features)
    patched = api.patch(f"/api/v1/models/{model['name']}", json={"drift": drift})
    assert patched.status_code == 400
    assert message in patched.json()["detail"]


def test_per_feature_settings_for_a_feature_the_model_lacks_are_refused(api: TestClient) -> None:
    features = [{"name": "age", "kind": "numerical"}, {"name": "state", "kind": "categorical"}]
    drift = {"per_feature": {"agee": {"stattest": "ks"}}}
    created = api.post("/api/v1/models", json={"name": unique(), "task": "regression",
                                               "features": features, "drift": drift})  # fmt: skip
    assert created.status_code == 400, created.text
    assert created.json()["detail"] == (
        "drift.per_feature.agee: not a feature of this model (its features: age, state)"
    )
    model = create_model(api, features=features)
    patched = api.patch(f"/api/v1/models/{model['name']}", json={"drift": drift})
    assert patched.status_code == 400
    assert "drift.per_feature.agee: not a feature" in patched.json()["detail"]
    assert api.get(f"/api/v1/models/{model['name']}").json()["drift"]["per_feature"] == {}
    # a feature added in the same PATCH may be set at once
    added = api.patch(f"/api/v1/models/{model['name']}", json={
        "features": [{"name": "agee", "kind": "numerical"}], "drift": drift})  # fmt: skip
    assert added.status_code == 200, added.text
    assert added.json()["drift"]["per_feature"] == {"agee": {"stattest": "ks", "threshold": None}}


def test_a_model_without_features_takes_per_feature_settings_once_it_has_features(
    api: TestClient,
) -> None:
    drift = {"per_feature": {"x": {"threshold": 0.2}}}
    created = api.post("/api/v1/models", json={"name": unique(), "task": "regression",
                                               "drift": drift})  # fmt: skip
    assert created.status_code == 400, created.text
    assert "drift.per_feature.x: model declares no features yet" in created.json()["detail"]
    model = create_model(api, task="regression", drift={"num_stattest": "psi"})
    path = f"/api/v1/models/{model['name']}"
    refused = api.patch(path, json={"drift": drift})
    assert refused.status_code == 400
    baseline = api.post(f"{path}/baselines", json={"name": "b", "records": [
        {"features": {"x": 1.5}, "prediction": 1.0}]})  # fmt: skip
    assert baseline.status_code == 201, baseline.text
    accepted = api.patch(path, json={"drift": drift})  # x is a feature now (inferred)
    assert accepted.status_code == 200, accepted.text


@pytest.mark.parametrize(
    "drift",
    [{"cat_stattest": "fisher_exact"}, {"cat_stattest": "fisher_exact", "num_stattest": "ks"}],
)
def test_fisher_exact_cannot_test_a_multiclass_prediction(
    api: TestClient, drift: dict[str, Any]
) -> None:
    body = {"name": unique(), "task": "multiclass_classification", "drift": drift}
    created = api.post("/api/v1/models", json=body)
    assert created.status_code == 400, created.text
    detail = created.json()["detail"]
    assert detail.startswith(
        "drift.cat_stattest: column 'prediction': 'fisher_exact' compares at most 2 categories, "
        "and a multiclass model predicts 3 or more classes"
    ), detail
    model = create_model(api, task="multiclass_classification")
    patched = api.patch(f"/api/v1/models/{model['name']}", json={"drift": drift})
    assert patched.status_code == 400
    assert "column 'prediction'" in patched.json()["detail"]
    # a binary model predicts two classes: fisher_exact applies to its prediction
    assert create_model(api, task="binary_classification", drift=drift)


def test_fisher_exact_may_be_set_for_a_feature_of_a_multiclass_model(api: TestClient) -> None:
    features = [{"name": "smoker", "kind": "categorical"}]
    drift = {"per_feature": {"smoker": {"stattest": "fisher_exact"}}}
    assert create_model(api, task="multiclass_classification", features=features, drift=drift)


def test_a_new_model_is_calibrated_and_reports_the_level_its_budget_sets(
    api: TestClient, engine: Engine
) -> None:
    model = create_model(api, window="1h")
    drift = model["drift"]
    assert (drift["verdict"], drift["false_alarms_per_month"]) == ("calibrated", 1.0)
    # 720 hourly windows in a 30-day month share one false alarm
    assert drift["alpha_per_window"] == pytest.approx(1 / 720)
    assert drift["expected_false_alarms_per_month"] == pytest.approx(1.0)
    assert api.get(f"/api/v1/models/{model['name']}").json()["drift"] == drift
    listed = {m["name"]: m for m in api.get("/api/v1/models").json()}
    assert listed[model["name"]]["drift"] == drift
    with Session(engine) as session:  # the verdict is written, not left to a default
        stored = session.scalars(
            select(MonitoredModel.drift).where(MonitoredModel.name == model["name"])
        ).one()
    assert stored is not None
    assert (stored["verdict"], stored["false_alarms_per_month"]) == ("calibrated", 1.0)


def test_the_per_window_level_is_capped_and_the_expected_false_alarms_say_so(
    api: TestClient,
) -> None:
    model = create_model(api, window="1d", drift={"false_alarms_per_month": 6})
    drift = model["drift"]
    # 6 over 30 daily windows would be 0.2 a window; the level stops at 0.05
    assert drift["alpha_per_window"] == pytest.approx(0.05)
    assert drift["expected_false_alarms_per_month"] == pytest.approx(1.5)
    assert drift["false_alarms_per_month"] == 6


def test_patch_switches_the_verdict_and_other_drift_settings_keep_it(api: TestClient) -> None:
    model = create_model(api, drift={"verdict": "evidently", "false_alarms_per_month": 2})
    path = f"/api/v1/models/{model['name']}"
    assert model["drift"]["verdict"] == "evidently"
    kept = api.patch(path, json={"drift": {"drift_share": 0.3}})
    assert kept.status_code == 200, kept.text
    assert kept.json()["drift"]["verdict"] == "evidently"
    assert kept.json()["drift"]["false_alarms_per_month"] == 2
    assert kept.json()["drift"]["drift_share"] == 0.3
    switched = api.patch(path, json={"drift": {"verdict": "calibrated"}})
    assert switched.status_code == 200, switched.text
    assert api.get(path).json()["drift"]["verdict"] == "calibrated"
    assert api.get(path).json()["drift"]["false_alarms_per_month"] == 2


@pytest.mark.parametrize(
    ("drift", "field"),
    [
        ({"verdict": "strict"}, "verdict"),
        ({"false_alarms_per_month": 0}, "false_alarms_per_month"),
        ({"false_alarms_per_month": -1}, "false_alarms_per_month"),
        ({"false_alarms_per_month": "many"}, "false_alarms_per_month"),
    ],
)
def test_an_unknown_verdict_or_a_budget_that_is_not_positive_is_refused(
    api: TestClient, drift: dict[str, Any], field: str
) -> None:
    created = api.post("/api/v1/models", json={"name": unique(), "task": "regression",
                                               "drift": drift})  # fmt: skip
    assert created.status_code == 422, created.text
    assert f"drift.{field}" in created.json()["detail"], created.json()["detail"]
    model = create_model(api)
    patched = api.patch(f"/api/v1/models/{model['name']}", json={"drift": drift})
    assert patched.status_code == 422, patched.text
    assert api.get(f"/api/v1/models/{model['name']}").json()["drift"]["verdict"] == "calibrated"
