"""Every run splits its window by model_version (CONTRACT section 10): a rollout is visible as
each served version's rows, accuracy and prediction drift."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sklearn import metrics

from driftwatch.core.result import RunResult
from driftwatch.core.vocabulary import metric_problem
from driftwatch.monitoring import versions
from tests.factories import T0, baseline_records, labels, model, predictions

HOUR = timedelta(hours=1)


def _scores(seed: int, count: int, shift: float = 0.0) -> list[float]:
    rng = np.random.default_rng(seed)
    return [round(float(v), 4) for v in np.clip(rng.beta(2, 2, count) + shift, 0, 1)]


def test_a_window_of_one_version_is_that_version(api: TestClient) -> None:
    m = model(api)
    scores = _scores(1, 2000)
    m.baseline(baseline_records(2000, prediction=lambda i: scores[i]))
    window = _scores(2, 300)
    m.log(predictions(300, prediction=lambda i: window[i], model_version="v1"))
    m.label(labels([f"p-{i}" for i in range(300)], label=lambda i: int(window[i] > 0.5)))
    run = m.run(T0, T0 + HOUR)
    assert len(run["versions"]) == 1
    (only,) = run["versions"]
    assert (only["model_version"], only["role"], only["rows"], only["labeled_rows"]) == (
        "v1", "served", 300, 300,
    )  # fmt: skip
    assert only["accuracy"] == run["accuracy"]
    assert only["prediction"] == run["prediction"]


def test_a_rollout_shows_each_versions_drift_and_accuracy(api: TestClient) -> None:
    m = model(api)
    scores = _scores(3, 3000)
    m.baseline(baseline_records(3000, prediction=lambda i: scores[i]))
    old, new = _scores(4, 600), _scores(5, 400, shift=0.35)  # the new version scores higher
    records = predictions(600, prediction=lambda i: old[i], model_version="v1")
    records += predictions(400, prediction=lambda i: new[i], model_version="v2", prefix="q",
                           start=T0 + timedelta(seconds=1))  # fmt: skip
    m.log(records)
    truth = np.random.default_rng(6)
    old_labels = (truth.random(600) < 0.5).astype(int).tolist()
    new_labels = (truth.random(300) < 0.5).astype(int).tolist()  # 300 of 400 labeled
    m.label(labels([f"p-{i}" for i in range(600)], label=lambda i: old_labels[i]))
    m.label(labels([f"q-{i}" for i in range(300)], label=lambda i: new_labels[i]))
    run = m.run(T0, T0 + HOUR)
    assert run["rows"] == 1000
    by_version = {v["model_version"]: v for v in run["versions"]}
    assert [v["model_version"] for v in run["versions"]] == ["v1", "v2"]  # largest first
    assert (by_version["v1"]["rows"], by_version["v1"]["labeled_rows"]) == (600, 600)
    assert (by_version["v2"]["rows"], by_version["v2"]["labeled_rows"]) == (400, 300)
    assert by_version["v2"]["prediction"]["drifted"] is True
    assert by_version["v1"]["prediction"]["drifted"] is False
    expected = metrics.accuracy_score(new_labels, [int(s >= 0.5) for s in new[:300]])
    assert by_version["v2"]["accuracy"]["accuracy"] == pytest.approx(expected)
    expected = metrics.roc_auc_score(old_labels, old)
    assert by_version["v1"]["accuracy"]["roc_auc"] == pytest.approx(expected)

    # the rule metrics of each version
    flat = RunResult.model_validate(run).metrics()
    assert flat["version[v2].prediction.drifted"] == 1.0
    assert flat["version[v2].labeled_rows"] == 300
    assert flat["version[v1].accuracy.roc_auc"] == pytest.approx(expected)


def test_predictions_without_a_version_are_one_slice(api: TestClient) -> None:
    m = model(api)
    m.baseline(baseline_records(500))
    m.log(predictions(40))
    m.log(predictions(10, prefix="v", model_version="canary"))
    run = m.run(T0, T0 + HOUR)
    assert [(v["model_version"], v["rows"]) for v in run["versions"]] == [
        (None, 40),
        ("canary", 10),
    ]


@pytest.mark.parametrize(
    ("metric", "known"),
    [
        ("version[v5].accuracy.f1", True),
        ("version[2026-11.b].rows", True),
        ("version[v5].prediction.drifted", True),
        ("version[v5].accuracy.nope", False),
        ("version[].rows", False),
    ],
)
def test_version_metrics_are_in_the_vocabulary(metric: str, known: bool) -> None:
    assert (metric_problem(metric) is None) is known


def _ages(seed: int, count: int, shift: float = 0.0) -> list[float]:
    return [round(float(v), 2) for v in np.random.default_rng(seed).normal(40 + shift, 10, count)]


def test_each_served_version_gets_its_features_drift_from_the_window_read(
    api: TestClient,
) -> None:
    """A rollout whose new version serves other traffic (older users): its features drift
    and the old version's do not; each version's scores are those of a window holding that
    version's rows alone, so the rows were matched to their versions (interleaved, and over
    batches sent out of time order)."""
    base = _ages(7, 3000)
    feats = lambda ages: lambda i: {"age": ages[i], "state": ("CA", "NY", "TX")[i % 3]}  # noqa: E731
    old, new = _ages(8, 900), _ages(9, 600, shift=8)
    v1 = predictions(900, features=feats(old), model_version="v1",
                     step=timedelta(seconds=3))  # fmt: skip
    v2 = predictions(600, features=feats(new), model_version="v2", prefix="q",
                     start=T0 + timedelta(seconds=1), step=timedelta(seconds=4))  # fmt: skip
    records = [r for pair in zip(v1[:600], v2, strict=True) for r in pair] + v1[600:]
    both = model(api)
    both.baseline(baseline_records(3000, features=feats(base)))
    both.log(records[750:])  # the later half first
    both.log(records[:750])
    run = both.run(T0, T0 + HOUR)
    by_version = {v["model_version"]: v for v in run["versions"]}
    drifted = {name: {f["name"]: f["drifted"] for f in v["features"]}
               for name, v in by_version.items()}  # fmt: skip
    assert drifted == {"v1": {"age": False, "state": False}, "v2": {"age": True, "state": False}}
    assert by_version["v2"]["dataset"]["drifted_share"] == pytest.approx(0.5)
    alone = model(api)
    alone.baseline(baseline_records(3000, features=feats(base)))
    alone.log(v2)
    own = alone.run(T0, T0 + HOUR)
    assert [f["score"] for f in by_version["v2"]["features"]] == pytest.approx(
        [f["score"] for f in own["features"]]
    )
    flat = RunResult.model_validate(run).metrics()
    assert flat["version[v2].dataset.drifted_share"] == pytest.approx(0.5)
    assert flat["version[v1].dataset.drifted"] == 0.0


def test_a_version_of_few_rows_is_insufficient_not_no_drift(api: TestClient) -> None:
    feats = lambda ages: lambda i: {"age": ages[i], "state": ("CA", "NY", "TX")[i % 3]}  # noqa: E731
    m = model(api)
    m.baseline(baseline_records(3000, features=feats(_ages(7, 3000))))
    m.log(predictions(900, features=feats(_ages(8, 900)), model_version="v1"))
    m.log(predictions(12, features=feats(_ages(9, 12, shift=3)), model_version="canary",
                      prefix="c"))  # fmt: skip
    canary = next(v for v in m.run(T0, T0 + HOUR)["versions"] if v["model_version"] == "canary")
    assert canary["rows"] == 12
    assert {f["name"]: f["verdict"] for f in canary["features"]}["age"] == "insufficient"


@pytest.mark.parametrize("seed", range(4))
def test_binary_agreement_in_arrays_is_the_class_by_class_count(seed: int) -> None:
    """The array path of a binary shadow's agreement against the row-by-row rule: scores in
    [0, 1] at the threshold, margins at 0, missing predictions left out."""
    rng = np.random.default_rng(seed)

    def predictions(count: int) -> list[tuple[float | None, None]]:
        values = np.where(rng.random(count) < 0.2, rng.normal(0, 2, count), rng.random(count))
        return [(None if rng.random() < 0.05 else float(v), None) for v in values]

    shadow, served = predictions(500), predictions(500)
    pairs = [(versions._predicted_class(a[0], a[1], "binary_classification", 0.3),
              versions._predicted_class(b[0], b[1], "binary_classification", 0.3))
             for a, b in zip(shadow, served, strict=True)]  # fmt: skip
    known = [(a, b) for a, b in pairs if a is not None and b is not None]
    expected = sum(a == b for a, b in known) / len(known)
    found = versions._agreement("binary_classification", shadow, served, 0.3)
    assert found == pytest.approx(expected, abs=1e-12)
