"""Multiclass models with per-class probabilities (CONTRACT section 9): ingest of
``"prediction": {"cat": 0.7, ...}`` and the SDK's ``prediction_scores=``, realized one-vs-rest
metrics against scikit-learn, their intervals' coverage, and CBPE one class against the rest
by simulation with fixed seeds (calibrated and miscalibrated probabilities), then end to end
through a real collector."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sklearn import metrics

import driftwatch
from driftwatch.monitoring import accuracy, estimation, intervals
from driftwatch.monitoring import estimation_multiclass as em
from tests import factories
from tests.conftest import ADMIN_KEY, LiveServer, admin_http

CLASSES = ["bird", "cat", "dog"]
T0 = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)


def _draw(rng: np.random.Generator, n: int, k: int = 3, spread: float = 1.5) -> Any:
    """True class probabilities (softmax of normal logits) and labels drawn from them."""
    logits = rng.normal(size=(n, k)) * spread
    p = np.exp(logits)
    p /= p.sum(axis=1, keepdims=True)
    labels = (rng.random(n)[:, None] >= np.cumsum(p, axis=1)[:, :-1]).sum(axis=1)
    return p, labels


def _sharpened(p: Any) -> Any:
    """Ranks each row's classes as ``p`` does, but far from calibrated (overconfident)."""
    s = p**3
    return s / s.sum(axis=1, keepdims=True)


def _ovr_auc(labels: Any, scores: Any) -> float:
    """scikit-learn's one-vs-rest macro ROC AUC; for rows that do not sum to 1 (rounded), which
    it refuses so, the same average over the indicator columns."""
    if scores.shape[1] == 2:  # scikit-learn's binary case: the second class's probability
        return float(metrics.roc_auc_score(labels, scores[:, 1]))
    if np.allclose(scores.sum(axis=1), 1):
        return float(metrics.roc_auc_score(labels, scores, multi_class="ovr", average="macro"))
    indicator = np.eye(scores.shape[1])[labels]
    return float(metrics.roc_auc_score(indicator, scores, average="macro"))


def _realized(labels: Any, scores: Any) -> dict[str, float]:
    called = np.argmax(scores, axis=1)
    return {
        "roc_auc": _ovr_auc(labels, scores),
        "accuracy": metrics.accuracy_score(labels, called),
        "f1": metrics.f1_score(labels, called, average="macro", zero_division=0),
        "precision": metrics.precision_score(labels, called, average="macro", zero_division=0),
        "recall": metrics.recall_score(labels, called, average="macro", zero_division=0),
    }


# -- realized metrics against scikit-learn ------------------------------------------------------


def _labeled(scores: Any, labels: Any, classes: list[str]) -> accuracy.Labeled:
    n = len(labels)
    return accuracy.Labeled(
        prediction_values=np.full(n, np.nan),
        prediction_classes=[classes[int(i)] for i in np.argmax(scores, axis=1)],
        label_values=np.full(n, np.nan),
        label_classes=[classes[int(i)] for i in labels],
        prediction_scores=scores,
        score_classes=classes,
    )


@pytest.mark.parametrize(
    ("rows", "k", "decimals", "seed"),
    [(50, 3, None, 1), (400, 3, 2, 2), (1000, 5, None, 3), (300, 4, 1, 4), (80, 2, None, 5)],
)
def test_realized_multiclass_metrics_are_scikit_learns(
    rows: int, k: int, decimals: int | None, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    p, labels = _draw(rng, rows, k)
    scores = p if decimals is None else np.round(p, decimals)  # rounded: many ties
    classes = [f"c{j}" for j in range(k)]
    found, scored = accuracy.multiclass(_labeled(scores, labels, classes))
    expected = _realized(labels, scores)
    # scikit-learn's argmax is the first maximum too, so both predict the same classes
    assert found == pytest.approx(expected, abs=1e-12)
    assert scored.class_scores is not None
    bounds = intervals.intervals(scored, found)
    assert set(bounds) == set(expected)
    for name, (low, high) in bounds.items():
        assert low <= found[name] <= high, name


def test_a_class_missing_from_the_labels_is_left_out_of_the_auc() -> None:
    rng = np.random.default_rng(6)
    p, labels = _draw(rng, 300, 3)
    keep = labels != 2
    scores, labels = p[keep], labels[keep]
    found, _ = accuracy.multiclass(_labeled(scores, labels, ["a", "b", "c"]))
    binary = [metrics.roc_auc_score(labels == j, scores[:, j]) for j in (0, 1)]
    assert found["roc_auc"] == pytest.approx(np.mean(binary))


@pytest.mark.slow
def test_the_realized_auc_interval_covers_at_its_nominal_rate() -> None:
    rng = np.random.default_rng(7)
    big_p, big_labels = _draw(rng, 400_000, 3, spread=1.0)
    truth = accuracy.ovr_roc_auc(big_p, big_labels)
    assert truth is not None
    for rows in (80, 400):
        covered = []
        for _ in range(1000):
            p, labels = _draw(rng, rows, 3, spread=1.0)
            interval = intervals.ovr_delong(p, labels)
            assert interval is not None
            covered.append(interval[0] <= truth <= interval[1])
        # 95% of 1000: standard error 0.7 points
        assert 0.93 <= np.mean(covered) <= 0.97, (rows, np.mean(covered))


# -- CBPE one class against the rest ------------------------------------------------------------

WINDOWS = 200
ROWS = 300


def _simulate(transform: Any, seed: int) -> tuple[dict[str, float], dict[str, float], list[Any]]:
    """Windows each with a baseline of its own (the band holds the calibration's error too),
    whose labels are drawn from the true probabilities: each window's estimate from the
    ``transform``ed probabilities against its realized metrics."""
    rng = np.random.default_rng(seed)
    covered: dict[str, list[bool]] = {name: [] for name in em.METRICS}
    errors: dict[str, list[float]] = {name: [] for name in em.METRICS}
    checks = []
    for _ in range(WINDOWS):
        p, labels = _draw(rng, 3000)
        baseline = em.labeled_probabilities(transform(p), [CLASSES[i] for i in labels], CLASSES)
        checks.append(baseline.check)
        p, labels = _draw(rng, ROWS)
        scores = transform(p)
        estimated, reason = em.estimate(scores, CLASSES, baseline)
        assert reason is None
        assert estimated is not None
        for name, value in _realized(labels, scores).items():
            found = estimated[name]
            covered[name].append(found.lower <= value <= found.upper)
            errors[name].append(found.value - value)
    coverage = {name: float(np.mean(hits)) for name, hits in covered.items()}
    bias = {name: float(np.mean(values)) for name, values in errors.items()}
    return coverage, bias, checks


@pytest.mark.slow
@pytest.mark.timeout(900)  # 200 windows, each with 63 isotonic fits when miscalibrated
@pytest.mark.parametrize(
    ("transform", "calibrated", "seed"),
    [(lambda p: p, True, 7), (_sharpened, False, 8)],
    ids=["calibrated", "miscalibrated"],
)
def test_estimates_match_the_realized_metrics(transform: Any, calibrated: bool, seed: int) -> None:
    coverage, bias, checks = _simulate(transform, seed)
    print(f"coverage {coverage}, mean error {bias}")  # the README quotes them
    per_class = [c["calibrated"] for check in checks for c in check["per_class"].values()]
    if calibrated:  # the check passes calibrated probabilities at about its level, 95%
        assert 0.88 <= np.mean(per_class) <= 0.99
    else:
        assert not any(per_class)
    # 95% of 200 windows: standard error 1.5 points
    assert all(0.91 <= share <= 0.99 for share in coverage.values()), coverage
    assert all(abs(value) < 0.015 for value in bias.values()), bias


def test_miscalibrated_probabilities_mislead_without_the_isotonic_step() -> None:
    """What the calibration check is for: sharpened probabilities taken as they are promise
    far more accuracy than they deliver; recalibrated, the estimate is right."""
    rng = np.random.default_rng(23)
    p, labels = _draw(rng, 20_000)
    scores = _sharpened(p)
    window = em._Window.of(scores)
    naive = em.expected_metrics(scores, window)
    realized = _realized(labels, scores)
    assert naive["accuracy"] - realized["accuracy"] > 0.05
    baseline = em.labeled_probabilities(scores, [CLASSES[i] for i in labels], CLASSES)
    assert baseline.check["calibrated"] is False
    fixed = em.expected_metrics(em.calibrate(scores, baseline.calibrators(), None), window)
    assert abs(fixed["accuracy"] - realized["accuracy"]) < 0.01


def test_an_estimate_that_cannot_be_trusted_says_why() -> None:
    rng = np.random.default_rng(24)
    p, labels = _draw(rng, 1000)
    baseline = em.labeled_probabilities(p, [CLASSES[i] for i in labels], CLASSES)
    few = em.labeled_probabilities(p[:50], [CLASSES[i] for i in labels[:50]], CLASSES)
    missing = p[:10].copy()
    missing[3] = np.nan
    for scores, classes, base, reason in [
        (p[:10], CLASSES, None, estimation.BASELINE_WITHOUT_LABELS),
        (p[:10], CLASSES, few, estimation.TOO_FEW_BASELINE_LABELS),
        (None, None, baseline, estimation.SCORES_MISSING),
        (p[:0], CLASSES, baseline, estimation.NO_PREDICTIONS),
        (p[:10], ["ant", "bee", "cow"], baseline, em.CLASSES_DIFFER),
        (missing, CLASSES, baseline, estimation.SCORES_MISSING),
    ]:
        assert em.estimate(scores, classes, base) == (None, reason)
    one_class = em.labeled_probabilities(p, ["cat"] * len(p), CLASSES)
    assert one_class.check["reason"] == estimation.TOO_FEW_BASELINE_LABELS


# -- through the API ----------------------------------------------------------------------------


def _records(rng: np.random.Generator, n: int, prefix: str) -> tuple[list[dict[str, Any]], Any]:
    p, labels = _draw(rng, n)
    records = [
        {"prediction_id": f"{prefix}-{i}", "features": {"age": int(20 + i % 50), "state": "CA"},
         "prediction": {name: round(float(q), 6) for name, q in zip(CLASSES, row, strict=True)},
         "timestamp": (T0 + timedelta(seconds=5 * i)).isoformat()}
        for i, row in enumerate(p)
    ]  # fmt: skip
    return records, labels


def test_bad_probability_objects_are_refused_naming_the_record(api: TestClient) -> None:
    model = factories.model(api, task="multiclass_classification")
    good = {"cat": 0.7, "dog": 0.3}
    bad = [
        {"cat": 1.0},
        {"cat": 0.7, "dog": 0.4},
        {"cat": "high", "dog": 0.3},
        {"cat": 1.5, "dog": -0.5},
        {"cat": True, "dog": 0.0},
        {"cat": 0.5, "cow": 0.5},
        {"1": 0.5, "1.0": 0.5},
    ]
    records = [{"prediction_id": "ok-0", "features": {"age": 1, "state": "CA"},
                "prediction": good}] + [
        {"prediction_id": f"bad-{i}", "features": {"age": 1, "state": "CA"}, "prediction": value}
        for i, value in enumerate(bad)
    ]  # fmt: skip
    answer = model.log(records)
    assert answer["accepted"] == 1
    errors = {r["prediction_id"]: (r["index"], r["error"]) for r in answer["rejected"]}
    assert errors == {
        "bad-0": (1, "prediction: per-class probabilities name at least two classes, got "
                     "{'cat': 1.0}"),
        "bad-1": (2, "prediction: the class probabilities sum to 1.1; they must sum to 1 "
                     "(within 0.01)"),
        "bad-2": (3, "prediction['cat']: expected a probability in [0, 1], got 'high'"),
        "bad-3": (4, "prediction['cat']: expected a probability in [0, 1], got 1.5"),
        "bad-4": (5, "prediction['cat']: expected a probability in [0, 1], got True"),
        "bad-5": (6, "prediction: expected the probabilities of this model's classes 'cat', "
                     "'dog'; got 'cat', 'cow'"),
        "bad-6": (7, "prediction: class '1' is given twice"),
    }  # fmt: skip
    # the model's classes are now those stored: a later batch must name them
    later = model.log([{"prediction_id": "later", "features": {"age": 1, "state": "CA"},
                        "prediction": {"cat": 0.2, "cow": 0.8}}])  # fmt: skip
    assert later["rejected"][0]["error"].startswith(
        "prediction: expected the probabilities of this model's classes 'cat', 'dog'"
    )
    binary = factories.model(api, task="binary_classification")
    refused = binary.log([{"features": {"age": 1, "state": "CA"}, "prediction": good}])
    assert refused["accepted"] == 0
    assert refused["rejected"][0]["error"].startswith("prediction: expected a number")


def test_the_predicted_class_is_the_most_probable_first_in_sorted_order(api: TestClient) -> None:
    model = factories.model(api, task="multiclass_classification")
    model.baseline([{"features": {"age": i, "state": "CA"}, "prediction": "cat"}
                    for i in range(50)])  # fmt: skip
    tied = {"dog": 0.4, "cat": 0.4, "bird": 0.2}
    model.log([
        {"prediction_id": f"p-{i}", "features": {"age": i, "state": "CA"}, "prediction": tied,
         "timestamp": (T0 + timedelta(minutes=i)).isoformat()}
        for i in range(10)
    ] + [{"prediction_id": "plain", "features": {"age": 1, "state": "CA"}, "prediction": "dog",
          "timestamp": T0.isoformat()}])  # fmt: skip
    model.label([{"prediction_id": f"p-{i}", "label": "cat"} for i in range(10)]
                + [{"prediction_id": "plain", "label": "dog"}])  # fmt: skip
    run = model.run(T0, T0 + timedelta(hours=1))
    assert run["accuracy"]["accuracy"] == 1.0  # "cat" predicted (before "dog"), and "dog"
    assert run["prediction"] is not None  # the predicted class's drift is tested as before
    # a plain class among them: no probabilities for every row, so no estimate from them
    assert run["estimated_reason"] in (estimation.BASELINE_WITHOUT_LABELS,)


def test_estimates_then_realized_metrics_through_the_api(api: TestClient) -> None:
    rng = np.random.default_rng(31)
    model = factories.model(api, task="multiclass_classification")
    rows, truth = _records(rng, 2000, "b")
    made = model.baseline([{**r, "label": CLASSES[y]} for r, y in zip(rows, truth, strict=True)])
    assert made["calibration"]["kind"] == "multiclass"
    assert made["calibration"]["classes"] == CLASSES
    assert made["calibration"]["labeled_rows"] == 2000
    window, labels = _records(rng, 600, "w")
    model.log(window)
    end = T0 + timedelta(hours=1)
    before = model.run(T0, end)
    assert before["estimated_reason"] is None, before["estimated_reason"]
    estimated = before["estimated"]
    assert set(estimated) == set(em.METRICS)
    model.label([{"prediction_id": f"w-{i}", "label": CLASSES[y]} for i, y in enumerate(labels)])
    after = model.run(T0, end)
    assert after["estimated"] == estimated
    scores = np.array([[r["prediction"][c] for c in CLASSES] for r in window])
    assert after["accuracy"] == pytest.approx(_realized(labels, scores), abs=1e-12)
    for name in em.METRICS:
        realized = after["accuracy"][name]
        assert estimated[name]["lower"] <= realized <= estimated[name]["upper"], name
        low, high = after["accuracy_intervals"][name]
        assert low <= realized <= high
    response = api.post(
        f"{model.path}/baselines",
        json={"name": "first-window", "from_window": {"start": T0.isoformat(),
                                                       "end": end.isoformat()}},
    )  # fmt: skip
    assert response.status_code == 201, response.text
    assert response.json()["calibration"]["labeled_rows"] == 600


def test_per_class_probabilities_through_the_sdk(
    api: TestClient, live_server: LiveServer, tmp_path: Path
) -> None:
    rng = np.random.default_rng(41)
    model = factories.model(api, task="multiclass_classification")
    rows, truth = _records(rng, 1500, "b")
    model.baseline([{**r, "label": CLASSES[y]} for r, y in zip(rows, truth, strict=True)])
    p, labels = _draw(rng, 500)
    with driftwatch.Client(live_server.url, api_key=ADMIN_KEY, spool_dir=tmp_path) as client:
        ids = [
            client.log_prediction(
                model.name, {"age": 20 + i % 50, "state": "CA"},
                prediction_scores=dict(zip(CLASSES, row.tolist(), strict=True)),
                timestamp=T0 + timedelta(seconds=5 * i),
            )
            for i, row in enumerate(p)
        ]  # fmt: skip
        with pytest.raises(ValueError, match="not the most probable class"):
            client.log_prediction(model.name, {"age": 1}, "bird",
                                  prediction_scores={"bird": 0.1, "cat": 0.9})  # fmt: skip
        assert client.flush(timeout=30)
        end = T0 + timedelta(hours=1)
        span = {"start": T0.isoformat(), "end": end.isoformat()}
        with admin_http(live_server.url) as http:
            before = http.post(f"{model.path}/runs", json=span).json()
        assert before["rows"] == 500
        assert before["estimated_reason"] is None
        assert set(before["estimated"]) == set(em.METRICS)
        for pid, y in zip(ids, labels, strict=True):
            client.log_ground_truth(model.name, prediction_id=pid, label=CLASSES[y])
        assert client.flush(timeout=30)
    with admin_http(live_server.url) as http:
        after = http.post(f"{model.path}/runs", json=span).json()
    assert after["labels"] == {"coverage": 1.0, "mature": True}
    assert after["accuracy"] == pytest.approx(_realized(labels, p), abs=1e-12)
    assert after["estimated"] == before["estimated"]
    assert "roc_auc" in after["accuracy_intervals"]
