"""Performance estimated before labels arrive (CBPE, CONTRACT section 9), by simulation with
fixed seeds: a model calibrated by construction, and a miscalibrated one that the isotonic step
fixes; the estimates against the metrics realized once labels are drawn, and the bands'
coverage of them; then end to end through the API, labels arriving later."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sklearn import metrics

from driftwatch.monitoring import estimation
from tests import factories

# A recent hour: windows here must not be past the label horizon (30 days), which would make
# them mature whatever their labels.
T0 = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
WINDOWS = 200
ROWS = 500


def _probabilities(rng: np.random.Generator, n: int, shift: float = 0.0) -> Any:
    x = rng.normal(loc=shift, scale=1 + shift, size=n)
    return 1 / (1 + np.exp(-(1.5 * x - 0.5)))


def _realized(labels: Any, scores: Any, threshold: float = 0.5) -> dict[str, float]:
    called = scores >= threshold
    return {
        "roc_auc": metrics.roc_auc_score(labels, scores),
        "accuracy": metrics.accuracy_score(labels, called),
        "f1": metrics.f1_score(labels, called, zero_division=0),
        "precision": metrics.precision_score(labels, called, zero_division=0),
        "recall": metrics.recall_score(labels, called, zero_division=0),
    }


def _simulate(transform: Any, seed: int) -> tuple[dict[str, Any], dict[str, float], list]:
    """Windows under covariate shift, each with a baseline of its own (the band holds the
    calibration's error too, which one baseline shares among all its windows), whose labels
    are drawn from the true probabilities: each window's estimate (from ``transform``ed
    scores) against its realized metrics. Returns coverage, mean error and the checks."""
    rng = np.random.default_rng(seed)
    covered: dict[str, list[bool]] = {name: [] for name in estimation.METRICS}
    errors: dict[str, list[float]] = {name: [] for name in estimation.METRICS}
    checks = []
    for _ in range(WINDOWS):
        p = _probabilities(rng, 5000)
        baseline = estimation.labeled_scores(transform(p), (rng.random(5000) < p).astype(float))
        checks.append(baseline.check)
        p = _probabilities(rng, ROWS, shift=0.3)
        scores = transform(p)
        estimated, reason = estimation.estimate(scores, baseline, 0.5)
        assert reason is None
        assert estimated is not None
        realized = _realized((rng.random(ROWS) < p).astype(int), scores)
        for name, value in realized.items():
            found = estimated[name]
            covered[name].append(found.lower <= value <= found.upper)
            errors[name].append(found.value - value)
    coverage = {name: float(np.mean(hits)) for name, hits in covered.items()}
    bias = {name: float(np.mean(values)) for name, values in errors.items()}
    return coverage, bias, checks


def test_calibrated_scores_estimate_the_realized_metrics() -> None:
    coverage, bias, checks = _simulate(lambda p: p, seed=11)
    # the check passes calibrated scores at about its level, 95%
    assert 0.9 <= np.mean([check["calibrator"] == "identity" for check in checks]) <= 0.99
    # 95% of 200 windows: standard error 1.5 points
    assert all(0.91 <= share <= 0.99 for share in coverage.values()), coverage
    assert all(abs(value) < 0.01 for value in bias.values()), bias


def test_miscalibrated_scores_are_recalibrated_by_the_isotonic_step() -> None:
    def cubed(p: Any) -> Any:  # ranks as p, but far from calibrated
        return p**3

    coverage, bias, checks = _simulate(cubed, seed=12)
    assert all(check["calibrator"] == "isotonic" for check in checks)
    assert all(check["p_value"] < 0.05 for check in checks)
    assert all(0.91 <= share <= 0.99 for share in coverage.values()), coverage
    assert all(abs(value) < 0.02 for value in bias.values()), bias


def test_without_the_isotonic_step_miscalibrated_scores_mislead() -> None:
    """The same miscalibrated scores taken as probabilities: the estimate is far off, which is
    what the calibration check is there to catch."""
    rng = np.random.default_rng(13)
    p = _probabilities(rng, 20_000)
    labels = (rng.random(len(p)) < p).astype(int)
    scores = p**3
    called = scores >= 0.5
    naive = estimation.expected_metrics(scores, called, estimation.score_groups(scores))
    realized = _realized(labels, scores)
    assert abs(naive["accuracy"] - realized["accuracy"]) > 0.1
    baseline = estimation.labeled_scores(scores[:5000], labels[:5000].astype(float))
    estimated, _ = estimation.estimate(scores[5000:], baseline, 0.5)
    assert estimated is not None
    truth = _realized(labels[5000:], scores[5000:])
    for name in estimation.METRICS:
        assert estimated[name].value == pytest.approx(truth[name], abs=0.03), name


def test_expected_auc_is_the_mean_of_realized_aucs() -> None:
    rng = np.random.default_rng(14)
    p = np.round(_probabilities(rng, 300), 2)  # with ties
    expected = estimation.expected_metrics(p, p >= 0.5, estimation.score_groups(p))["roc_auc"]
    draws = [metrics.roc_auc_score(rng.random(300) < p, p) for _ in range(3000)]
    assert expected == pytest.approx(np.mean(draws), abs=0.003)


@pytest.mark.parametrize(
    ("scores", "labels", "reason"),
    [
        ([], [], estimation.BASELINE_WITHOUT_LABELS),
        ([0.2] * 50, [0, 1] * 25, estimation.TOO_FEW_BASELINE_LABELS),
        ([0.2] * 200, [0] * 195 + [1] * 5, estimation.TOO_FEW_BASELINE_LABELS),
        ([1.5] * 200, [0, 1] * 100, estimation.BASELINE_SCORES_OUTSIDE_UNIT_INTERVAL),
    ],
)
def test_a_baseline_that_cannot_back_an_estimate_says_why(
    scores: list[float], labels: list[int], reason: str
) -> None:
    baseline = estimation.labeled_scores(np.array(scores, dtype=float), np.array(labels, float))
    assert baseline.check == {"reason": reason}
    assert estimation.estimate(np.array([0.3, 0.6]), baseline, 0.5) == (None, reason)


@pytest.mark.parametrize(
    ("window", "reason"),
    [
        ([], estimation.NO_PREDICTIONS),
        ([0.3, math.nan], estimation.SCORES_MISSING),
        ([0.3, 1.2], estimation.SCORES_OUTSIDE_UNIT_INTERVAL),
    ],
)
def test_a_window_that_cannot_be_estimated_says_why(window: list[float], reason: str) -> None:
    rng = np.random.default_rng(15)
    p = _probabilities(rng, 1000)
    baseline = estimation.labeled_scores(p, (rng.random(1000) < p).astype(float))
    assert estimation.estimate(np.array(window, dtype=float), baseline, 0.5) == (None, reason)
    assert estimation.estimate(np.array([0.2]), None, 0.5) == (
        None, estimation.BASELINE_WITHOUT_LABELS)  # fmt: skip


def test_large_windows_are_estimated_at_bounded_cost() -> None:
    rng = np.random.default_rng(16)
    p = _probabilities(rng, 5000)
    baseline = estimation.labeled_scores(p**2, (rng.random(5000) < p).astype(float))
    window = _probabilities(rng, 400_000) ** 2
    estimated, _ = estimation.estimate(window, baseline, 0.5)
    assert estimated is not None
    for found in estimated.values():  # the calibration's error stays, the label noise is small
        assert found.upper - found.lower < 0.1
        assert found.lower <= found.value <= found.upper


# -- through the API ----------------------------------------------------------------------------


def _records(rng: np.random.Generator, n: int) -> tuple[list[dict[str, Any]], Any]:
    age = rng.integers(20, 70, size=n)
    p = 1 / (1 + np.exp(-(age - 45) / 8))
    records = [{"features": {"age": int(a), "state": "CA"}, "prediction": round(float(q), 4)}
               for a, q in zip(age, p, strict=True)]  # fmt: skip
    return records, (rng.random(n) < p).astype(int)


def test_estimates_then_realized_metrics_as_labels_arrive(api: TestClient) -> None:
    rng = np.random.default_rng(17)
    model = factories.model(api, task="binary_classification")
    rows, truth = _records(rng, 2000)
    made = model.baseline([{**r, "label": int(y)} for r, y in zip(rows, truth, strict=True)])
    assert made["calibration"]["method"] == "hosmer_lemeshow"
    assert made["calibration"]["labeled_rows"] == 2000
    assert made["calibration"]["calibrator"] in ("identity", "isotonic")
    window, labels = _records(rng, 600)
    sent = [{**r, "prediction_id": f"w-{i}", "timestamp": (T0 + timedelta(seconds=5 * i))
             .isoformat()} for i, r in enumerate(window)]  # fmt: skip
    model.log(sent)
    end = T0 + timedelta(hours=1)
    before = model.run(T0, end)
    assert before["labels"] == {"coverage": 0.0, "mature": False}
    assert before["estimated_reason"] is None
    estimated = before["estimated"]
    assert set(estimated) == set(estimation.METRICS)
    for found in estimated.values():
        assert found["lower"] <= found["value"] <= found["upper"]
    model.label([{"prediction_id": f"w-{i}", "label": int(y)} for i, y in enumerate(labels)])
    after = model.run(T0, end)
    assert after["labels"] == {"coverage": 1.0, "mature": True}
    assert after["estimated"] == estimated  # from the scores alone: labels change nothing
    for name in estimation.METRICS:
        realized = after["accuracy"][name]
        assert estimated[name]["lower"] <= realized <= estimated[name]["upper"], name
        low, high = after["accuracy_intervals"][name]
        assert low <= realized <= high
    series = api.get(f"{model.path}/runs").json()
    assert series[0]["estimated"]["roc_auc"] == estimated["roc_auc"]
    # a baseline from the labeled window keeps its pairs too
    response = api.post(
        f"{model.path}/baselines",
        json={
            "name": "first-window",
            "from_window": {"start": T0.isoformat(), "end": end.isoformat()},
        },
    )
    assert response.status_code == 201, response.text
    assert response.json()["calibration"]["labeled_rows"] == 600


def test_runs_say_why_they_have_no_estimate(api: TestClient) -> None:
    unlabeled = factories.model(api, task="binary_classification")
    unlabeled.baseline(factories.baseline_records(300))
    unlabeled.log(factories.predictions(50, start=T0))
    run = unlabeled.run(T0, T0 + timedelta(hours=1))
    assert (run["estimated"], run["estimated_reason"]) == (None, "baseline_without_labels")
    margins = factories.model(api, task="binary_classification")
    margins.baseline(factories.baseline_records(
        300, prediction=lambda i: i % 7 - 3.0, label=lambda i: int(i % 7 > 3)))  # fmt: skip
    margins.log(factories.predictions(50, start=T0, prediction=lambda i: i % 7 - 3.0))
    run = margins.run(T0, T0 + timedelta(hours=1))
    assert run["estimated_reason"] == "baseline_scores_outside_unit_interval"
    regression = factories.model(api, task="regression")
    regression.baseline(factories.baseline_records(300, label=lambda i: i / 10))
    regression.log(factories.predictions(50, start=T0))
    run = regression.run(T0, T0 + timedelta(hours=1))
    # a regression model's baseline with labels backs direct loss estimation instead
    assert run["estimated_reason"] is None
    assert set(run["estimated"]) == {"mae", "rmse"}
