"""Paired intervals of a shadow version's metric differences (driftwatch.stats.paired):
checked against a published example, scipy and the methods' definitions, and by simulation
(fixed seeds) for their coverage of the true difference and their power."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from scipy import stats
from sklearn import metrics

from driftwatch.monitoring import accuracy, versions
from driftwatch.stats import paired

FloatArray = np.ndarray[Any, np.dtype[np.float64]]


def test_matched_proportions_give_agrestis_published_wald_interval() -> None:
    """Agresti, Categorical Data Analysis (section on matched pairs): approval of the
    President in two surveys of the same 1600 people, cells 794, 150, 86, 570: difference
    0.59 - 0.55 = 0.04, Wald 95% interval (0.021, 0.059), McNemar z = 4.17."""
    found = paired.matched_proportions(150, 86, 1600, pseudo=0)
    assert found.value == pytest.approx(0.04)
    assert (found.lower, found.upper) == pytest.approx((0.021, 0.059), abs=5e-4)
    assert (150 - 86) / math.sqrt(150 + 86) == pytest.approx(4.17, abs=5e-3)
    assert found.p_value == pytest.approx(stats.binomtest(86, 236, 0.5).pvalue)
    assert found.p_value < 1e-4
    adjusted = paired.matched_proportions(150, 86, 1600)  # Agresti-Min: 1/2 in each cell
    assert adjusted.lower == pytest.approx(found.lower, abs=1e-3)
    assert (
        paired.matched_proportions(0, 0, 50).lower < 0 < paired.matched_proportions(0, 0, 50).upper
    )


@pytest.mark.parametrize(("b", "c", "n"), [(3, 9, 40), (0, 5, 30), (12, 12, 200), (40, 10, 500)])
def test_mcnemars_exact_p_value_is_the_binomial_of_the_discordant_pairs(
    b: int, c: int, n: int
) -> None:
    """As statsmodels' ``mcnemar(table, exact=True)``: twice the smaller binomial tail."""
    expected = min(1.0, 2 * stats.binom.cdf(min(b, c), b + c, 0.5))
    assert paired.matched_proportions(b, c, n).p_value == pytest.approx(expected)


def _placements(truth: FloatArray, scores: FloatArray) -> tuple[FloatArray, FloatArray]:
    """DeLong's structural components by their definition, O(m n): each positive's share of
    negatives it outscores (ties half), each negative's share of positives outscoring it."""
    positives, negatives = scores[truth == 1], scores[truth == 0]
    psi = (positives[:, None] > negatives[None, :]) + 0.5 * (
        positives[:, None] == negatives[None, :]
    )
    return psi.mean(axis=1), psi.mean(axis=0)


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_delong_follows_its_definition_and_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    truth = (rng.random(150) < 0.4).astype(float)
    first = np.round(truth * 0.8 + rng.normal(size=150), 1)  # rounded: ties
    second = np.round(truth * 0.4 + rng.normal(size=150) + 0.3 * first, 1)
    found = paired.delong(truth, first, second)
    assert found is not None
    expected = metrics.roc_auc_score(truth, first) - metrics.roc_auc_score(truth, second)
    assert found.value == pytest.approx(expected)
    (v10_a, v01_a), (v10_b, v01_b) = _placements(truth, first), _placements(truth, second)
    m, n = int(truth.sum()), int((1 - truth).sum())
    variance = (np.var(v10_a - v10_b, ddof=1) / m) + (np.var(v01_a - v01_b, ddof=1) / n)
    se = math.sqrt(variance)
    assert (found.lower, found.upper) == pytest.approx((expected - 1.96 * se, expected + 1.96 * se),
                                                       abs=1e-4)  # fmt: skip
    assert found.p_value == pytest.approx(2 * stats.norm.sf(abs(expected) / se))


@pytest.mark.parametrize("seed", [5, 6, 7])
def test_the_paired_mean_is_scipys_paired_t(seed: int) -> None:
    rng = np.random.default_rng(seed)
    a, b = rng.normal(1, 1, 80), rng.normal(1.2, 1, 80)
    found = paired.paired_mean(a - b)
    assert found is not None
    expected = stats.ttest_rel(a, b)
    interval = expected.confidence_interval(0.95)
    assert (found.lower, found.upper) == pytest.approx((interval.low, interval.high))
    assert found.p_value == pytest.approx(expected.pvalue)


# -- by simulation: coverage of the true difference, and power ----------------------------------

REPS = 300  # coverage within 0.92-0.98 at REPS: its sd at 95% is 1.3 points


def _covered(intervals: list[paired.PairedInterval | None], truth: float) -> float:
    assert all(found is not None for found in intervals)
    return sum(f.lower <= truth <= f.upper for f in intervals if f is not None) / len(intervals)


def test_the_accuracy_interval_covers_the_true_difference() -> None:
    """Served right with probability 0.80, the shadow 0.84 (correlated through a shared
    difficulty): the true difference is 0.04."""
    rng = np.random.default_rng(11)
    found = []
    for _ in range(REPS):
        hard = rng.random(400)
        served, shadow = hard < 0.80, hard < 0.84
        flip = rng.random(400) < 0.1  # some rows the two get right independently
        served[flip] = rng.random(int(flip.sum())) < 0.80
        shadow[flip] = rng.random(int(flip.sum())) < 0.84
        found.append(paired.matched_proportions(int((shadow & ~served).sum()),
                                                int((~shadow & served).sum()), 400))  # fmt: skip
    assert 0.92 <= _covered(found, 0.04) <= 0.98


def _binormal(rng: np.random.Generator, truth: FloatArray, separation: float,
              shared: FloatArray) -> FloatArray:  # fmt: skip
    """Scores normal with unit variance, apart by ``separation`` between the classes: AUC
    Phi(separation / sqrt 2). ``shared``: noise both models share (their correlation)."""
    own = rng.normal(size=truth.size)
    return truth * separation + 0.6 * shared + 0.8 * own


def test_the_delong_interval_covers_the_true_difference() -> None:
    rng = np.random.default_rng(12)
    truth_difference = stats.norm.cdf(1.3 / math.sqrt(2)) - stats.norm.cdf(1.0 / math.sqrt(2))
    found = []
    for _ in range(REPS):
        truth = (rng.random(400) < 0.4).astype(float)
        shared = rng.normal(size=400)
        found.append(paired.delong(truth, _binormal(rng, truth, 1.3, shared),
                                   _binormal(rng, truth, 1.0, shared)))  # fmt: skip
    assert 0.92 <= _covered(found, truth_difference) <= 0.98


def test_the_mae_and_rmse_intervals_cover_the_true_differences() -> None:
    """Errors normal: the served sd 1, the shadow's 0.9, correlated 0.7. True differences:
    MAE (0.9 - 1) sqrt(2 / pi), RMSE 0.9 - 1."""
    rng = np.random.default_rng(13)
    mae, rmse = [], []
    for _ in range(REPS):
        served = rng.normal(size=300)
        shadow = 0.9 * (0.7 * served + math.sqrt(1 - 0.49) * rng.normal(size=300))
        mae.append(paired.paired_mean(np.abs(shadow) - np.abs(served)))
        rmse.append(paired.rmse_difference(shadow, served))
    assert 0.92 <= _covered(mae, -0.1 * math.sqrt(2 / math.pi)) <= 0.98
    assert 0.92 <= _covered(rmse, -0.1) <= 0.98


def _scores(truth: FloatArray, noise: float, rng: np.random.Generator) -> list[float]:
    logits = (truth * 2 - 1) * 1.5 + rng.normal(scale=noise, size=truth.size)
    return [round(float(v), 5) for v in 1 / (1 + np.exp(-logits))]


@pytest.mark.slow
def test_an_equal_shadow_holds_0_about_95_percent_and_a_better_one_excludes_it() -> None:
    """Through ``versions.shadows`` (each metric by its method): a challenger as good as the
    served model gets intervals holding 0 about 95% of the time, for every metric; one
    clearly better gets intervals above 0 (below for log_loss) nearly always."""
    rng = np.random.default_rng(14)
    holds: dict[str, int] = {}
    better: dict[str, int] = {}
    methods: dict[str, str | None] = {}
    reps = 200
    for _ in range(reps):
        truth = (rng.random(600) < 0.5).astype(float)
        served = _scores(truth, 2.0, rng)
        same, sharper = _scores(truth, 2.0, rng), _scores(truth, 1.0, rng)
        rows = [("v5", same[i], None, served[i], None, truth[i], None) for i in range(600)]
        rows += [("v6", sharper[i], None, served[i], None, truth[i], None) for i in range(600)]
        equal, good = sorted(versions.shadows("binary_classification", rows),
                             key=lambda v: v.model_version or "")  # fmt: skip
        for name, difference in equal.delta.items():
            holds[name] = holds.get(name, 0) + (difference.lower <= 0 <= difference.upper)
            methods[name] = difference.method
        for name, difference in good.delta.items():
            side = difference.upper < 0 if name == "log_loss" else difference.lower > 0
            better[name] = better.get(name, 0) + side
    assert methods == {
        "accuracy": "mcnemar",
        "precision": "bootstrap",
        "recall": "bootstrap",
        "f1": "bootstrap",
        "roc_auc": "delong",
        "log_loss": "paired_t",
    }
    for name, count in holds.items():
        assert 0.92 <= count / reps <= 0.985, (name, count)
    for name in ("accuracy", "roc_auc", "log_loss", "f1"):
        assert better[name] / reps >= 0.9, (name, better[name])


def test_a_regression_shadow_gets_mae_and_rmse_deltas_with_their_methods() -> None:
    rng = np.random.default_rng(15)
    truth = rng.normal(10, 3, 500)
    served = truth + rng.normal(0, 1.0, 500)
    shadow = truth + rng.normal(0, 0.6, 500)
    rows = [("v2", shadow[i], None, served[i], None, truth[i], None) for i in range(500)]
    (found,) = versions.shadows("regression", rows)
    assert found.delta["mae"].method == "paired_t"
    assert found.delta["rmse"].method == "delta_method"
    assert found.delta["mae"].upper < 0  # the shadow is better
    assert found.delta["rmse"].upper < 0
    expected = metrics.mean_absolute_error(truth, shadow) - metrics.mean_absolute_error(
        truth, served
    )
    assert found.delta["mae"].value == pytest.approx(expected)
    assert {found.delta[name].method for name in ("r2", "mape")} == {"bootstrap"}


@pytest.mark.parametrize("seed", [1, 2])
def test_the_counted_regression_bootstrap_gives_the_metrics_themselves(seed: int) -> None:
    rng = np.random.default_rng(seed)
    truth = np.round(rng.normal(5, 2, 200), 1)
    truth[:5] = 0  # MAPE leaves these out
    values = truth + rng.normal(0, 1, 200)
    weights = rng.integers(0, 3, (2, 200)).astype(float)
    counted = versions.weighted_regression_metrics(values, truth, weights)
    for draw in range(2):
        rows = np.repeat(np.arange(200), weights[draw].astype(int))
        expected = accuracy.compute("regression", accuracy.Labeled(
            prediction_values=values[rows], prediction_classes=[None] * rows.size,
            label_values=truth[rows], label_classes=[None] * rows.size))  # fmt: skip
        assert expected is not None
        for name, value in expected.items():
            assert counted[name][draw] == pytest.approx(value, rel=1e-9), name
