"""drift.cluster_by: rows that come in clusters (many per user) get a null that moves whole
clusters. Checked by simulation (fixed seeds): with no drift, row-level p-values of clustered
data are far from uniform and the cluster permutation's are uniform; a real shift is found;
and end to end through the API."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from scipy import stats

from driftwatch.stats import calibration, registry
from driftwatch.stats.samples import CategoricalPair, NumericalPair, Pair
from tests.conftest import create_model
from tests.factories import T0, post

USERS_FEATURES = [
    {"name": "user", "kind": "categorical"},
    {"name": "spend", "kind": "numerical"},
    {"name": "plan", "kind": "categorical"},
]
PLANS = np.array(["free", "basic", "pro", "team"])


def _clustered(
    rng: np.random.Generator, users: int, rows_per_user: int, shift: float = 0.0
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Each user has a level of their own (between-user sd 1, within 0.5: an intra-cluster
    correlation of 0.8) and mostly one plan: rows of one user are far from independent."""
    level = np.repeat(rng.normal(size=users) + shift, rows_per_user)
    spend = level + rng.normal(scale=0.5, size=users * rows_per_user)
    own_plan = np.repeat(rng.integers(0, len(PLANS), users), rows_per_user)
    other = rng.integers(0, len(PLANS), users * rows_per_user)
    plan = np.where(rng.random(users * rows_per_user) < 0.8, own_plan, other)
    return spend, plan, np.repeat(np.arange(users), rows_per_user)


def _numerical(reference: Any, current: Any) -> tuple[Pair, calibration.Clusters]:
    (x, xu), (y, yu) = reference, current
    rx, ry = np.argsort(x, kind="stable"), np.argsort(y, kind="stable")
    pair = NumericalPair(x[rx], y[ry])
    return pair, calibration.Clusters(reference=xu[rx], current=yu[ry])


def _categorical(reference: Any, current: Any) -> tuple[Pair, calibration.Clusters]:
    (x, xu), (y, yu) = reference, current
    size = len(PLANS)
    pair = CategoricalPair(
        reference_counts=np.bincount(x, minlength=size),
        current_counts=np.bincount(y, minlength=size), categories=list(PLANS),
    )  # fmt: skip
    return pair, calibration.Clusters(reference=xu, current=yu, reference_categories=x,
                                      current_categories=y)  # fmt: skip


def _p_values(
    test_name: str, kind: str, repetitions: int, rows_per_user: int, shift: float = 0.0
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    test = registry.get(test_name)
    row_level, clustered = [], []
    for seed in range(repetitions):
        rng = np.random.default_rng([7, seed])
        spend, plan, users = _clustered(rng, 1200 // rows_per_user, rows_per_user)
        spend2, plan2, users2 = _clustered(rng, 300 // rows_per_user, rows_per_user, shift)
        if kind == "numerical":
            pair, clusters = _numerical((spend, users), (spend2, users2))
        else:
            pair, clusters = _categorical((plan, users), (plan2, users2))
        score = test.score(pair)
        threshold = test.default_threshold
        row_level.append(calibration.evidence(pair, test, score, threshold,
                                              interval=False).p_value)  # fmt: skip
        clustered.append(calibration.cluster_evidence(pair, test, score, threshold, clusters,
                                                      interval=False).p_value)  # fmt: skip
    return np.array(row_level), np.array(clustered)


CASES = [
    ("wasserstein", "numerical"),
    ("ks", "numerical"),
    ("jensenshannon", "numerical"),
    ("chisquare", "categorical"),
    ("jensenshannon", "categorical"),
]


@pytest.mark.parametrize(("name", "kind"), CASES)
def test_cluster_p_values_are_uniform_where_row_level_ones_are_not(name: str, kind: str) -> None:
    row_level, clustered = _p_values(name, kind, repetitions=80, rows_per_user=10)
    assert stats.kstest(row_level, "uniform").pvalue < 1e-6  # rows are not independent
    assert np.mean(row_level < 0.05) > 0.3
    assert stats.kstest(clustered, "uniform").pvalue > 0.01
    assert np.mean(clustered < 0.05) < 0.12


@pytest.mark.parametrize(("name", "kind"), [("wasserstein", "numerical"), ("ks", "numerical")])
def test_clusters_of_one_row_agree_with_independent_rows(name: str, kind: str) -> None:
    row_level, clustered = _p_values(name, kind, repetitions=60, rows_per_user=1)
    assert stats.kstest(clustered, "uniform").pvalue > 0.01
    assert stats.kstest(row_level, "uniform").pvalue > 0.01
    assert np.corrcoef(row_level, clustered)[0, 1] > 0.9


def test_a_shift_of_every_user_is_found_with_clusters() -> None:
    _, clustered = _p_values("wasserstein", "numerical", repetitions=10, rows_per_user=10,
                             shift=1.0)  # fmt: skip
    assert np.all(clustered < 0.01)  # 30 users in the window: 30 units of evidence


def test_the_interval_widens_with_clusters() -> None:
    rng = np.random.default_rng(3)
    spend, _, users = _clustered(rng, 120, 10)
    spend2, _, users2 = _clustered(rng, 30, 10)
    pair, clusters = _numerical((spend, users), (spend2, users2))
    test = registry.get("wasserstein")
    score = test.score(pair)
    rows = calibration.evidence(pair, test, score, 0.1).effect_interval
    grouped = calibration.cluster_evidence(pair, test, score, 0.1, clusters).effect_interval
    assert rows is not None
    assert grouped is not None
    assert grouped[0] <= score <= grouped[1]
    assert grouped[1] - grouped[0] > 1.5 * (rows[1] - rows[0])


def test_pooled_rows_are_gathered_cluster_by_cluster() -> None:
    values = np.arange(10.0)
    pooled = calibration._Pooled.of(values, np.array([5, 5, 9, 1, 9, 9]), np.array([2, 2, 0, 2]))
    assert (pooled.k_reference, pooled.k_current) == (3, 2)
    assert pooled.sizes.tolist() == [1, 2, 3, 1, 3]
    assert sorted(pooled.rows(np.array([2])).tolist()) == [2, 4, 5]  # reference cluster 9
    assert sorted(pooled.rows(np.array([4, 0])).tolist()) == [3, 6, 7, 9]
    assert sorted(pooled.rows(np.array([1, 1])).tolist()) == [0, 0, 1, 1]  # drawn twice


# -- through the API


def _records(rng: np.random.Generator, users: int, prefix: str, shift: float = 0.0,
             *, baseline: bool = False) -> list[dict[str, Any]]:  # fmt: skip
    spend, plan, user = _clustered(rng, users, 10, shift)
    out = []
    for i in range(len(spend)):
        features = {"user": f"{prefix}-u{user[i]}", "spend": round(float(spend[i]), 4),
                    "plan": str(PLANS[plan[i]])}  # fmt: skip
        record: dict[str, Any] = {"features": features, "prediction": round(float(rng.random()), 3)}
        if not baseline:
            record |= {"prediction_id": f"{prefix}-{i}",
                       "timestamp": (T0 + timedelta(seconds=i)).isoformat()}  # fmt: skip
        out.append(record)
    return out


def test_a_clustered_model_runs_through_the_api(api: TestClient) -> None:
    model = create_model(api, features=USERS_FEATURES, window="1h",
                         drift={"cluster_by": "user"})["name"]  # fmt: skip
    assert api.get(f"/api/v1/models/{model}").json()["drift"]["cluster_by"] == "user"
    rng = np.random.default_rng(11)
    post(api, f"/api/v1/models/{model}/baselines",
         {"name": "training", "records": _records(rng, 200, "b", baseline=True)}, 201)  # fmt: skip
    post(api, f"/api/v1/models/{model}/predictions", {"records": _records(rng, 40, "w")})
    window = {"start": T0.isoformat(), "end": (T0 + timedelta(hours=1)).isoformat()}
    run = post(api, f"/api/v1/models/{model}/runs", window)
    assert run["dataset"]["cluster_by"] == "user"
    assert run["dataset"]["clusters"] == 40
    entries = {f["name"]: f for f in run["features"]}
    assert entries["user"]["drifted"] is None
    assert "cluster_by" in entries["user"]["error"]
    for name in ("spend", "plan"):
        assert entries[name]["verdict"] in {"no_drift", "insufficient"}, entries[name]
        assert 0 <= entries[name]["p_value"] <= 1
    assert run["prediction"]["p_value"] is not None

    # a PATCH of the tests keeps the key; null removes it; the baseline made before still has
    # its clusters, but a model without a key takes rows as independent
    patched = api.patch(f"/api/v1/models/{model}", json={"drift": {"num_stattest": "ks"}})
    assert patched.json()["drift"]["cluster_by"] == "user"
    api.patch(f"/api/v1/models/{model}", json={"drift": {"cluster_by": None}})
    again = post(api, f"/api/v1/models/{model}/runs", window)
    assert again["dataset"]["cluster_by"] is None
    assert {f["name"]: f for f in again["features"]}["user"]["stattest"] is not None


def test_a_baseline_made_before_the_key_keeps_rows_independent(api: TestClient) -> None:
    model = create_model(api, features=USERS_FEATURES, window="1h")["name"]
    rng = np.random.default_rng(12)
    post(api, f"/api/v1/models/{model}/baselines",
         {"name": "training", "records": _records(rng, 100, "b", baseline=True)}, 201)  # fmt: skip
    api.patch(f"/api/v1/models/{model}", json={"drift": {"cluster_by": "user"}})
    post(api, f"/api/v1/models/{model}/predictions", {"records": _records(rng, 20, "w")})
    run = post(api, f"/api/v1/models/{model}/runs",
               {"start": T0.isoformat(), "end": (T0 + timedelta(hours=1)).isoformat()})  # fmt: skip
    assert run["dataset"]["cluster_by"] is None  # the baseline kept no clusters
    assert {f["name"]: f for f in run["features"]}["user"]["drifted"] is None  # still the key


def test_a_cluster_key_must_be_a_feature(api: TestClient) -> None:
    response = api.post("/api/v1/models", json={
        "name": "clusters-unknown", "task": "binary_classification", "features": USERS_FEATURES,
        "drift": {"cluster_by": "session"},
    })  # fmt: skip
    assert response.status_code == 400
    assert "drift.cluster_by" in response.json()["detail"]
    assert "'session'" in response.json()["detail"]
