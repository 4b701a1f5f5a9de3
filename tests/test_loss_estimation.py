"""Regression performance estimated before labels arrive (direct loss estimation, CONTRACT
section 9), by simulation with fixed seeds: a model whose errors depend on its inputs (it misses
a term, its noise is heteroscedastic), windows under covariate shift; estimates against the
metrics realized once labels are drawn, the bands' coverage of them; then end to end through the
API, labels arriving later, and the reasons a run gives for having no estimate."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sklearn import metrics

from driftwatch.core.specs import FeatureSpec
from driftwatch.monitoring import estimation_regression as dle
from driftwatch.storage.chunks import WindowColumns
from tests import factories

T0 = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
FEATURES = [FeatureSpec("x1", "numerical"), FeatureSpec("x2", "numerical"),
            FeatureSpec("plan", "categorical")]  # fmt: skip
PLANS = ["basic", "plus", "pro"]


def _draw(rng: np.random.Generator, n: int, shift: float = 0.0) -> tuple[WindowColumns, Any]:
    """Rows whose error grows with |x2| and on the "pro" plan; the model misses x2^2, so its
    error depends on x2 too. ``shift`` moves x1 and widens x2 (covariate shift)."""
    x1 = rng.normal(shift, 1.0, n)
    x2 = rng.uniform(-2.0, 2.0, n) * (1 - shift / 4)
    plan = rng.integers(0, 3, n)
    truth = 3 * x1 + x2**2 + plan
    y = truth + rng.normal(0.0, 1.0, n) * (0.5 + 0.8 * np.abs(x2) + 0.5 * (plan == 2))
    prediction = 3 * x1 + 1.3 + plan
    window = WindowColumns(
        timestamps_us=np.arange(n, dtype=np.int64), num_values=np.c_[x1, x2],
        cat_codes=plan[:, None].astype(np.int32), categories=[list(PLANS)],
        prediction_values=prediction.astype(np.float64),
        class_codes=np.full(n, -1, dtype=np.int32), classes=[],
    )  # fmt: skip
    return window, y


def _realized(window: WindowColumns, y: Any) -> dict[str, float]:
    return {
        "mae": metrics.mean_absolute_error(y, window.prediction_values),
        "rmse": math.sqrt(metrics.mean_squared_error(y, window.prediction_values)),
    }


def _baseline(rng: np.random.Generator, n: int = 3000) -> tuple[dle.LabeledRegression, Any]:
    window, y = _draw(rng, n)
    return dle.labeled_rows(window, FEATURES, np.arange(n), y), _realized(window, y)


@pytest.mark.slow
def test_the_band_covers_the_realized_error_at_its_nominal_rate() -> None:
    """200 windows of 500 rows under covariate shift, 8 per baseline of 3,000 labeled rows
    (25 baselines: the band holds the loss models' own error, which a baseline shares among its
    windows). The bands cover about 95%; the estimate follows the error as it moves."""
    rng = np.random.default_rng(20261204)
    covered: dict[str, list[bool]] = {name: [] for name in dle.METRICS}
    errors: dict[str, list[float]] = {name: [] for name in dle.METRICS}
    naive: dict[str, list[float]] = {name: [] for name in dle.METRICS}
    for _ in range(25):
        baseline, at_baseline = _baseline(rng)
        for shift in (0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.4):
            window, y = _draw(rng, 500, shift)
            estimated, reason = dle.estimate(window, FEATURES, baseline)
            assert reason is None
            assert estimated is not None
            realized = _realized(window, y)
            for name in dle.METRICS:
                found = estimated[name]
                assert found.lower <= found.value <= found.upper
                covered[name].append(found.lower <= realized[name] <= found.upper)
                errors[name].append(abs(found.value - realized[name]))
                naive[name].append(abs(at_baseline[name] - realized[name]))
    for name in dle.METRICS:
        coverage = float(np.mean(covered[name]))
        assert 0.91 <= coverage <= 0.99, (name, coverage)  # 95% within its binomial error
        # the baseline's own error as the guess for every window is off by far more
        assert np.mean(errors[name]) < 0.5 * np.mean(naive[name]), name


def test_the_estimate_tracks_an_error_that_grows_with_the_inputs() -> None:
    rng = np.random.default_rng(7)
    baseline, at_baseline = _baseline(rng, 4000)
    assert baseline.check["method"] == "direct_loss_estimation"
    assert baseline.check["labeled_rows"] == 4000
    window, y = _draw(rng, 5000, shift=1.0)
    estimated, reason = dle.estimate(window, FEATURES, baseline)
    assert reason is None
    assert estimated is not None
    realized = _realized(window, y)
    for name in dle.METRICS:
        # the window's error moved away from the baseline's; the estimate moved with it
        assert abs(realized[name] - at_baseline[name]) > 0.1
        assert abs(estimated[name].value - realized[name]) < 0.1, name
        assert estimated[name].lower <= realized[name] <= estimated[name].upper, name


def test_the_stored_rows_give_the_same_estimate() -> None:
    rng = np.random.default_rng(8)
    baseline, _ = _baseline(rng, 1000)
    again = dle.from_bytes(baseline.to_bytes(), baseline.check)
    np.testing.assert_array_equal(again.x, baseline.x)
    np.testing.assert_array_equal(again.y, baseline.y)
    window, _ = _draw(rng, 400, 0.5)
    assert dle.estimate(window, FEATURES, again) == dle.estimate(window, FEATURES, baseline)


def test_a_large_window_is_estimated_on_a_sample_with_its_error_in_the_band() -> None:
    rng = np.random.default_rng(9)
    baseline, _ = _baseline(rng, 2000)
    window, y = _draw(rng, dle.MAX_PREDICTED_ROWS * 3, 0.4)
    estimated, reason = dle.estimate(window, FEATURES, baseline)
    assert reason is None
    assert estimated is not None
    realized = _realized(window, y)
    for name in dle.METRICS:
        assert estimated[name].lower <= realized[name] <= estimated[name].upper, name


@pytest.mark.parametrize(
    ("rows", "reason"),
    [(0, "baseline_without_labels"), (dle.MIN_LABELED - 1, "too_few_baseline_labels")],
)
def test_a_baseline_that_cannot_back_an_estimate_says_why(rows: int, reason: str) -> None:
    window, y = _draw(np.random.default_rng(1), 500)
    baseline = dle.labeled_rows(window, FEATURES, np.arange(rows), y[:rows])
    assert baseline.check == {"kind": "regression", "reason": reason}
    assert dle.estimate(window, FEATURES, baseline) == (None, reason)


def test_a_window_the_baseline_does_not_cover_says_why() -> None:
    rng = np.random.default_rng(2)
    baseline, _ = _baseline(rng, 1000)
    far, _ = _draw(rng, 400, shift=6.0)  # x1 beyond the baseline's range in most rows
    assert dle.estimate(far, FEATURES, baseline) == (None, "window_outside_baseline_range")
    unseen, _ = _draw(rng, 400)
    unseen.categories = [["enterprise", "plus", "pro"]]  # a plan the baseline never held
    assert dle.estimate(unseen, FEATURES, baseline) == (None, "window_outside_baseline_range")
    unscored, _ = _draw(rng, 400)
    unscored.prediction_values[:] = np.nan
    assert dle.estimate(unscored, FEATURES, baseline) == (None, "predictions_missing")


# -- through the API ----------------------------------------------------------------------------


def _records(rng: np.random.Generator, n: int, shift: float = 0.0) -> tuple[list[Any], Any]:
    window, y = _draw(rng, n, shift)
    x = window.num_values
    records = [
        {"features": {"x1": round(float(a), 4), "x2": round(float(b), 4), "plan": PLANS[c]},
         "prediction": round(float(p), 4)}
        for a, b, c, p in zip(x[:, 0], x[:, 1], window.cat_codes[:, 0],
                              window.prediction_values, strict=True)
    ]  # fmt: skip
    return records, y


def test_estimates_then_realized_errors_as_labels_arrive(api: TestClient) -> None:
    rng = np.random.default_rng(11)
    model = factories.model(api, task="regression", features=[
        {"name": "x1", "kind": "numerical"}, {"name": "x2", "kind": "numerical"},
        {"name": "plan", "kind": "categorical"}])  # fmt: skip
    rows, truth = _records(rng, 2000)
    # labels as a CSV gives them: numbers as text
    made = model.baseline([{**r, "label": f"{y:.4f}"} for r, y in zip(rows, truth, strict=True)])
    assert made["calibration"]["kind"] == "regression"
    assert made["calibration"]["method"] == "direct_loss_estimation"
    assert made["calibration"]["labeled_rows"] == 2000
    window, labels = _records(rng, 800, shift=0.8)
    model.log([{**r, "prediction_id": f"w-{i}",
                "timestamp": (T0 + timedelta(seconds=4 * i)).isoformat()}
               for i, r in enumerate(window)])  # fmt: skip
    end = T0 + timedelta(hours=1)
    before = model.run(T0, end)
    assert before["labels"] == {"coverage": 0.0, "mature": False}
    assert before["estimated_reason"] is None
    estimated = before["estimated"]
    assert set(estimated) == {"mae", "rmse"}
    for found in estimated.values():
        assert 0 <= found["lower"] <= found["value"] <= found["upper"]
    model.label([{"prediction_id": f"w-{i}", "label": float(y)} for i, y in enumerate(labels)])
    after = model.run(T0, end)
    assert after["labels"] == {"coverage": 1.0, "mature": True}
    assert after["estimated"] == estimated  # from the features alone: labels change nothing
    for name in ("mae", "rmse"):
        realized = after["accuracy"][name]
        assert estimated[name]["lower"] <= realized <= estimated[name]["upper"], name
    series = api.get(f"{model.path}/runs").json()
    assert series[0]["estimated"]["mae"] == estimated["mae"]
    # a baseline from the labeled window keeps its rows too, and estimates from them
    response = api.post(
        f"{model.path}/baselines",
        json={"name": "first-window", "from_window": {"start": T0.isoformat(),
                                                       "end": end.isoformat()}},
    )  # fmt: skip
    assert response.status_code == 201, response.text
    assert response.json()["calibration"]["labeled_rows"] == 800
    again = model.run(T0, end)
    assert again["estimated_reason"] is None
    assert again["estimated"]["mae"]["value"] == pytest.approx(after["accuracy"]["mae"], rel=0.2)


def test_a_regression_run_says_why_it_has_no_estimate(api: TestClient) -> None:
    unlabeled = factories.model(api, task="regression")
    unlabeled.baseline(factories.baseline_records(300, prediction=lambda i: i / 3))
    unlabeled.log(factories.predictions(50, start=T0, prediction=lambda i: i / 3))
    run = unlabeled.run(T0, T0 + timedelta(hours=1))
    assert (run["estimated"], run["estimated_reason"]) == (None, "baseline_without_labels")
    few = factories.model(api, task="regression")
    made = few.baseline(factories.baseline_records(
        60, prediction=lambda i: i / 3, label=lambda i: i / 2))  # fmt: skip
    assert made["calibration"] == {"kind": "regression", "reason": "too_few_baseline_labels"}
    few.log(factories.predictions(50, start=T0, prediction=lambda i: i / 3))
    run = few.run(T0, T0 + timedelta(hours=1))
    assert (run["estimated"], run["estimated_reason"]) == (None, "too_few_baseline_labels")
