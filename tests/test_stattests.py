"""driftwatch.stats against Evidently 0.7's own stattests (and scipy), on generated data.

Every comparison runs Evidently the way ``get_one_column_drift`` does for one column: +-inf ->
NaN, dropna, ``get_stattest`` (default rule or by name), threshold None. driftwatch gets the same
raw values through ``NumericalPair.from_unsorted`` / ``CategoricalPair.from_values``.

Scores must agree to ``rel=1e-6`` (``abs=1e-12`` for scores at zero), verdicts exactly, except
where driftwatch deliberately differs (each such test says against what it compares instead):
chisquare is scipy's two-sample ``chi2_contingency``; g_test and fisher_exact also run on
samples of unequal size (Evidently raises there); the randomised tests (TVD, empirical_mmd)
are compared with Evidently run on the rows in the order driftwatch keeps them (sorted / grouped
by category), with the same seed. Categorical Hellinger adds its terms in set order in
Evidently (it varies with PYTHONHASHSEED for strings), so it gets ``abs=1e-7``: the distance is
``sqrt(1 - s)``, and a 1e-16 change of s near 1 moves it by up to ~1e-8.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats

os.environ["DO_NOT_TRACK"] = "1"

from evidently.legacy.calculations.stattests import registry as ev_registry
from evidently.legacy.core import ColumnType

from driftwatch.stats import (
    STATTESTS,
    CategoricalPair,
    NumericalPair,
    Pair,
    default_stattest,
    evaluate,
    get,
    permutation_tests,
)
from driftwatch.stats.binning import histogram_counts, sturges_edges
from driftwatch.stats.ecdf import Pooled
from driftwatch.stats.kolmogorov import kstwo_sf

pytestmark = pytest.mark.filterwarnings("ignore")

REL = 1e-6
ABS = 1e-12
NUMERICAL_TESTS = sorted(name for name, t in STATTESTS.items() if "numerical" in t.kinds)
CATEGORICAL_TESTS = sorted(name for name, t in STATTESTS.items() if "categorical" in t.kinds)
EV_KIND = {"numerical": ColumnType.Numerical, "categorical": ColumnType.Categorical}


# --------------------------------------------------------------------------------------------
# Data: raw columns as a user would log them (NaN / inf / None included).


@dataclass(frozen=True)
class Case:
    name: str
    kind: str
    reference: Any  # np.ndarray for numerical, list for categorical
    current: Any


def _normal(seed: int, n_ref: int, n_cur: int, shift: float = 0.0, scale: float = 1.0) -> Case:
    rng = np.random.default_rng(seed)
    return Case(
        f"normal{n_ref}v{n_cur}s{shift}x{scale}",
        "numerical",
        rng.normal(10, 2, n_ref),
        rng.normal(10 + shift, 2 * scale, n_cur),
    )


def _with_missing(seed: int, n_ref: int, n_cur: int, shift: float) -> Case:
    rng = np.random.default_rng(seed)
    reference, current = rng.gamma(2, 3, n_ref), rng.gamma(2, 3, n_cur) + shift
    for values in (reference, current):
        values[rng.choice(values.size, values.size // 10, replace=False)] = np.nan
        values[rng.choice(values.size, 3, replace=False)] = np.inf
        values[rng.choice(values.size, 2, replace=False)] = -np.inf
    return Case(f"missing{n_ref}v{n_cur}s{shift}", "numerical", reference, current)


def _integers(seed: int, n_ref: int, n_cur: int, lam_ref: float, lam_cur: float) -> Case:
    """Integer dtype, heavy ties (Poisson)."""
    rng = np.random.default_rng(seed)
    return Case(
        f"poisson{n_ref}v{n_cur}l{lam_ref}-{lam_cur}",
        "numerical",
        rng.poisson(lam_ref, n_ref),
        rng.poisson(lam_cur, n_cur),
    )


def _few_values(seed: int, n_ref: int, n_cur: int, values: int, drift: bool) -> Case:
    rng = np.random.default_rng(seed)
    p_ref = np.full(values, 1 / values)
    p_cur = np.linspace(1, 3, values) / np.linspace(1, 3, values).sum() if drift else p_ref
    support = np.arange(values, dtype=float) * 1.5
    return Case(
        f"values{values}n{n_ref}v{n_cur}d{drift}",
        "numerical",
        rng.choice(support, n_ref, p=p_ref),
        rng.choice(support, n_cur, p=p_cur),
    )


def _unseen_numbers(seed: int) -> Case:
    """Current holds values the reference never had."""
    rng = np.random.default_rng(seed)
    return Case(
        "unseen_numbers",
        "numerical",
        rng.integers(0, 4, 900).astype(float),
        rng.integers(2, 7, 700).astype(float),
    )


def _binary_integers(seed: int) -> Case:
    """int64 0/1 columns: numpy's integer bin-width rule changes Hellinger's bins."""
    rng = np.random.default_rng(seed)
    return Case("binary_ints", "numerical", rng.integers(0, 2, 800), rng.integers(0, 3, 500) // 2)


def _categories(
    seed: int, n_ref: int, n_cur: int, cats: int, drift: bool, unseen: int = 0, none: bool = False
) -> Case:
    rng = np.random.default_rng(seed)
    labels = np.array([f"c{i:02d}" for i in range(cats + unseen)], dtype=object)
    p_ref = np.r_[np.linspace(3, 1, cats), np.zeros(unseen)]
    p_cur = np.r_[np.linspace(1, 3, cats), np.full(unseen, 1.0)] if drift else p_ref.copy()
    reference = list(rng.choice(labels, n_ref, p=p_ref / p_ref.sum()))
    current = list(rng.choice(labels, n_cur, p=p_cur / p_cur.sum()))
    if none:
        for values in (reference, current):
            for i in rng.choice(len(values), len(values) // 8, replace=False):
                values[i] = None if i % 2 else np.nan
    return Case(
        f"cats{cats}+{unseen}n{n_ref}v{n_cur}d{drift}none{none}",
        "categorical",
        reference,
        current,
    )


NUMERICAL_CASES = [
    _normal(1, 600, 450),
    _normal(2, 600, 450, shift=0.6),
    _normal(3, 1000, 800, shift=0.05),  # boundary: 1000 reference rows -> hypothesis tests
    _normal(4, 1001, 800, shift=0.05),  # 1001 -> distances
    _normal(5, 2500, 2000),
    _normal(6, 2500, 2000, scale=1.4),
    _with_missing(7, 900, 700, 0.0),
    _with_missing(8, 1600, 1200, 1.5),
    _integers(9, 800, 600, 6, 6),
    _integers(10, 1500, 1300, 30, 31),  # > 20 distinct reference values, integer dtype
    _integers(11, 1500, 1300, 6, 8),  # few distinct values, integer dtype
    _few_values(12, 800, 500, 2, False),
    _few_values(13, 800, 500, 3, True),
    _few_values(14, 800, 500, 5, False),
    _few_values(15, 800, 500, 6, True),
    _few_values(16, 1500, 900, 5, True),
    _unseen_numbers(17),
    _binary_integers(18),
]
CATEGORICAL_CASES = [
    _categories(21, 700, 500, 4, False),
    _categories(22, 700, 500, 4, True),
    _categories(23, 800, 600, 6, True, unseen=2),
    _categories(24, 900, 600, 5, False, none=True),
    _categories(25, 1000, 700, 2, False),  # binary
    _categories(26, 1001, 700, 2, True),
    _categories(27, 2000, 1500, 8, False, unseen=1),
    _categories(28, 2000, 1500, 8, True, none=True),
]


def numerical_pair(case: Case) -> NumericalPair:
    return NumericalPair.from_unsorted(case.reference, case.current)


def categorical_pair(case: Case) -> CategoricalPair:
    return CategoricalPair.from_values(case.reference, case.current)


def pair_of(case: Case) -> Pair:
    return numerical_pair(case) if case.kind == "numerical" else categorical_pair(case)


# --------------------------------------------------------------------------------------------
# Evidently, run as get_one_column_drift runs it.


def _clean(values: Any) -> pd.Series:
    series = pd.Series(values)
    return series.replace([-np.inf, np.inf], np.nan).dropna()


@dataclass(frozen=True)
class Reference:
    stattest: str
    score: float
    threshold: float
    drifted: bool


def evidently(reference: Any, current: Any, kind: str, stattest: str | None) -> Reference:
    ref, cur = _clean(reference), _clean(current)
    test = ev_registry.get_stattest(ref, cur, EV_KIND[kind], stattest)
    result = test(ref.copy(), cur.copy(), EV_KIND[kind], None)
    return Reference(
        test.name, float(result.drift_score), result.actual_threshold, bool(result.drifted)
    )


def assert_matches(ours: Any, expected: Reference, *, abs_tol: float = ABS) -> None:
    assert ours.stattest == expected.stattest
    assert ours.threshold == expected.threshold
    assert ours.score == pytest.approx(expected.score, rel=REL, abs=abs_tol)
    assert ours.drifted is expected.drifted


# Tests whose reference is not (plain) Evidently: see the dedicated tests below.
SEPARATELY_CHECKED = {"chisquare", "TVD", "empirical_mmd", "g_test", "fisher_exact"}


@pytest.mark.parametrize("case", NUMERICAL_CASES, ids=lambda c: c.name)
@pytest.mark.parametrize("name", [n for n in NUMERICAL_TESTS if n not in SEPARATELY_CHECKED])
def test_numerical_matches_evidently(case: Case, name: str) -> None:
    ours = evaluate(numerical_pair(case), kind="numerical", stattest=name)
    assert_matches(ours, evidently(case.reference, case.current, "numerical", name))


@pytest.mark.parametrize("case", CATEGORICAL_CASES, ids=lambda c: c.name)
@pytest.mark.parametrize("name", [n for n in CATEGORICAL_TESTS if n not in SEPARATELY_CHECKED])
def test_categorical_matches_evidently(case: Case, name: str) -> None:
    ours = evaluate(categorical_pair(case), kind="categorical", stattest=name)
    expected = evidently(case.reference, case.current, "categorical", name)
    assert_matches(ours, expected, abs_tol=1e-7 if name == "hellinger" else ABS)


@pytest.mark.parametrize("case", NUMERICAL_CASES + CATEGORICAL_CASES, ids=lambda c: c.name)
def test_default_rule_matches_evidently(case: Case) -> None:
    ours = evaluate(pair_of(case), kind=case.kind)
    expected = evidently(case.reference, case.current, case.kind, None)
    if expected.stattest == "chisquare":
        # Same test chosen, same threshold; the score is the two-sample test (see below).
        assert (ours.stattest, ours.threshold) == (expected.stattest, expected.threshold)
        expected_score = _contingency_pvalue(case)
        assert ours.score == pytest.approx(expected_score, rel=REL, abs=ABS)
        assert ours.drifted is (expected_score < 0.05)
    else:
        assert_matches(ours, expected)


# --------------------------------------------------------------------------------------------
# chisquare: scipy's two-sample chi2_contingency, not Evidently's goodness-of-fit.


def _contingency_pvalue(case: Case) -> float:
    ref, cur = _clean(case.reference), _clean(case.current)
    table = pd.DataFrame({"ref": ref.value_counts(), "cur": cur.value_counts()}).fillna(0)
    if len(table) < 2:
        return 1.0
    return float(stats.chi2_contingency(table.to_numpy().T)[1])


@pytest.mark.parametrize("case", NUMERICAL_CASES + CATEGORICAL_CASES, ids=lambda c: c.name)
def test_chisquare_is_two_sample_contingency_test(case: Case) -> None:
    pair = pair_of(case)
    result = STATTESTS["chisquare"].score(pair)
    expected = _contingency_pvalue(case)
    assert result == pytest.approx(expected, rel=REL, abs=ABS)
    if case.kind == "categorical":
        verdict = evaluate(pair, kind="categorical", stattest="chisquare")
        assert verdict.drifted is (expected < 0.05)
        assert verdict.threshold == 0.05


def test_chisquare_does_not_alarm_where_goodness_of_fit_does() -> None:
    """Small reference, same distribution: Evidently's test treats the reference frequencies as
    exact and flags drift far more often than its 5% level; the two-sample test does not."""
    rng = np.random.default_rng(0)
    probabilities = [0.5, 0.3, 0.15, 0.05]
    ours_alarms = evidently_alarms = 0
    for _ in range(200):
        ref = list(rng.choice(list("abcd"), 60, p=probabilities))
        cur = list(rng.choice(list("abcd"), 900, p=probabilities))
        ours_alarms += evaluate(
            CategoricalPair.from_values(ref, cur), kind="categorical", stattest="chisquare"
        ).drifted
        evidently_alarms += evidently(ref, cur, "categorical", "chisquare").drifted
    assert ours_alarms <= 20  # ~5% of 200, with slack
    assert evidently_alarms > 2 * ours_alarms


# --------------------------------------------------------------------------------------------
# g_test and fisher_exact: Evidently for equal sizes; otherwise the documented extension.


def _equal_size(case: Case, size: int) -> Case:
    """The first ``size`` present values of each sample (Evidently needs equal sizes)."""
    return Case(
        case.name + "_equal",
        case.kind,
        list(_clean(case.reference))[:size],
        list(_clean(case.current))[:size],
    )


@pytest.mark.parametrize("case", CATEGORICAL_CASES, ids=lambda c: c.name)
def test_g_test(case: Case) -> None:
    same_size = _equal_size(case, 500)
    ours = evaluate(categorical_pair(same_size), kind="categorical", stattest="g_test")
    assert_matches(ours, evidently(same_size.reference, same_size.current, "categorical", "g_test"))

    pair = categorical_pair(case)
    ref, cur = pair.counts()
    expected = stats.power_divergence(cur, ref * cur.sum() / ref.sum(), lambda_="log-likelihood")
    ours = evaluate(pair, kind="categorical", stattest="g_test")
    assert ours.score == pytest.approx(expected.pvalue, rel=REL, abs=ABS)
    assert ours.drifted is bool(expected.pvalue < 0.1)


BINARY_CASES = [c for c in CATEGORICAL_CASES if len(categorical_pair(c).categories) == 2]


@pytest.mark.parametrize("case", BINARY_CASES, ids=lambda c: c.name)
def test_fisher_exact(case: Case) -> None:
    same_size = _equal_size(case, 600)
    ours = evaluate(categorical_pair(same_size), kind="categorical", stattest="fisher_exact")
    reference = evidently(same_size.reference, same_size.current, "categorical", "fisher_exact")
    assert_matches(ours, reference)

    pair = categorical_pair(case)
    ref, cur = pair.counts()
    expected = stats.fisher_exact([[cur[0], cur[1]], [ref[0], ref[1]]]).pvalue
    ours = evaluate(pair, kind="categorical", stattest="fisher_exact")
    assert ours.score == pytest.approx(expected, rel=REL, abs=ABS)


def test_z_compares_evidentlys_smallest_category() -> None:
    """With more than two categories the z-test is "smallest value vs the rest": 2 < 10 < 30
    numerically, though "10" < "2" as text."""
    rng = np.random.default_rng(2)
    reference = list(rng.choice([2, 10, 30], 400, p=[0.2, 0.5, 0.3]))
    current = list(rng.choice([2, 10, 30], 300, p=[0.2, 0.3, 0.5]))
    pair = CategoricalPair.from_values(reference, current)
    assert pair.categories == ["2", "10", "30"]
    ours = evaluate(pair, kind="categorical", stattest="z")
    assert_matches(ours, evidently(reference, current, "categorical", "z"))


def test_fisher_exact_refuses_more_than_two_categories() -> None:
    pair = CategoricalPair.from_values(["a", "b"] * 5, ["a", "c"] * 5)
    with pytest.raises(ValueError, match="binary"):
        evaluate(pair, kind="categorical", stattest="fisher_exact")


# --------------------------------------------------------------------------------------------
# Randomised tests: Evidently on the rows in driftwatch's order, same seed.


def _grouped_rows(pair: CategoricalPair) -> tuple[pd.Series, pd.Series]:
    """The rows in driftwatch's canonical order, as integer codes: small non-negative ints keep
    Python's set order (which Evidently's key order comes from) equal to category order."""
    codes = np.arange(len(pair.categories))
    return (
        pd.Series(np.repeat(codes, pair.reference_counts)),
        pd.Series(np.repeat(codes, pair.current_counts)),
    )


@pytest.mark.parametrize("case", CATEGORICAL_CASES[:6], ids=lambda c: c.name)
def test_tvd_is_evidentlys_procedure(case: Case) -> None:
    pair = categorical_pair(case)
    ref, cur = _grouped_rows(pair)
    expected = ev_registry.get_stattest(ref, cur, ColumnType.Categorical, "TVD")(
        ref, cur, ColumnType.Categorical, None
    )
    ours = evaluate(pair, kind="categorical", stattest="TVD")
    assert (ours.score, ours.drifted) == (float(expected.drift_score), bool(expected.drifted))
    assert ours.threshold == 0.1


def test_tvd_large_inputs_draw_the_same_null_distribution(monkeypatch: pytest.MonkeyPatch) -> None:
    """Above TVD_EXACT_MAX_ROWS the permuted counts are drawn directly (multivariate
    hypergeometric): the p-value must agree with the shuffling procedure to Monte Carlo error."""
    rng = np.random.default_rng(3)
    labels = list("abcde")
    for p_cur in ([0.3, 0.25, 0.2, 0.15, 0.1], [0.295, 0.25, 0.205, 0.15, 0.1]):
        pair = CategoricalPair.from_values(
            list(rng.choice(labels, 6000, p=[0.3, 0.25, 0.2, 0.15, 0.1])),
            list(rng.choice(labels, 5000, p=p_cur)),
        )
        shuffled = permutation_tests.tvd(pair)
        monkeypatch.setattr(permutation_tests, "TVD_EXACT_MAX_ROWS", 0)
        drawn = permutation_tests.tvd(pair)
        monkeypatch.undo()
        # Two independent estimates from 1000 draws each: sd of the difference <= 0.023.
        assert drawn == pytest.approx(shuffled, abs=0.08)


@pytest.mark.parametrize(
    "case",
    [c for c in NUMERICAL_CASES if c.name.startswith(("normal600", "poisson800", "values3"))],
    ids=lambda c: c.name,
)
def test_empirical_mmd_is_evidentlys_procedure(case: Case) -> None:
    pair = numerical_pair(case)
    ref, cur = pd.Series(pair.reference), pd.Series(pair.current)
    np.random.seed(0)  # Evidently draws from numpy's global generator, unseeded
    expected = ev_registry.get_stattest(ref, cur, ColumnType.Numerical, "empirical_mmd")(
        ref, cur, ColumnType.Numerical, None
    )
    ours = evaluate(pair, kind="numerical", stattest="empirical_mmd")
    assert ours.score == pytest.approx(float(expected.drift_score), rel=REL, abs=ABS)
    assert ours.drifted is bool(expected.drifted)


def test_mmd_matrix_product_equals_permuted_matrix_sums() -> None:
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(70, 1)), rng.normal(0.3, 1, size=(50, 1))
    kernel = permutation_tests._kernel_matrix(x, y)
    state = np.random.RandomState(1)
    indices = np.stack([state.permutation(120) for _ in range(20)])
    fast = permutation_tests._mmd_of_partitions(kernel, 50, indices)
    literal = [permutation_tests._mmd(kernel[i][:, i], 50) for i in indices]
    np.testing.assert_allclose(fast, literal, rtol=0, atol=1e-12)


def test_empirical_mmd_subsamples_large_inputs() -> None:
    rng = np.random.default_rng(8)
    same = NumericalPair.from_unsorted(rng.normal(size=5000), rng.normal(size=4000))
    shifted = NumericalPair.from_unsorted(rng.normal(size=5000), rng.normal(0.3, 1, size=4000))
    first = evaluate(same, kind="numerical", stattest="empirical_mmd")
    assert first == evaluate(same, kind="numerical", stattest="empirical_mmd")
    assert not first.drifted
    assert evaluate(shifted, kind="numerical", stattest="empirical_mmd").drifted


# --------------------------------------------------------------------------------------------
# Paths that only large inputs take.


def test_ks_asymptotic_path_matches_scipy() -> None:
    rng = np.random.default_rng(11)
    for shift in (0.0, 0.03):
        reference = np.round(rng.normal(size=12_000), 2)  # ties
        current = np.round(rng.normal(shift, 1, size=10_500), 2)
        ours = evaluate(
            NumericalPair.from_unsorted(reference, current), kind="numerical", stattest="ks"
        )
        expected = stats.ks_2samp(reference, current).pvalue
        assert ours.score == pytest.approx(expected, rel=REL, abs=ABS)
        assert ours.drifted is bool(expected <= 0.05)


@pytest.mark.parametrize("n", [141, 1000, 20_000])
@pytest.mark.parametrize("nx2", [0.3, 2.0, 2.2, 5.0, 40.0, 369.0, 370.0])
def test_kstwo_sf_equals_scipy(n: int, nx2: float) -> None:
    statistic = math.sqrt(nx2 / n)
    expected = stats.kstwo.sf(statistic, n)
    assert kstwo_sf(statistic, n) == pytest.approx(expected, rel=1e-8, abs=1e-300)


# --------------------------------------------------------------------------------------------
# Cramer-von Mises on small samples, where Evidently's exact path raises.


@pytest.mark.parametrize(("n_ref", "n_cur"), [(2, 2), (3, 4), (6, 5), (10, 15), (20, 20), (5, 21)])
def test_cramer_von_mises_small_samples(n_ref: int, n_cur: int) -> None:
    rng = np.random.default_rng(n_ref * 100 + n_cur)
    reference, current = rng.normal(size=n_ref), rng.normal(0.8, 1, size=n_cur)
    ours = evaluate(
        NumericalPair.from_unsorted(reference, current),
        kind="numerical",
        stattest="cramer_von_mises",
    )
    try:
        expected = evidently(reference, current, "numerical", "cramer_von_mises").score
    except TypeError:  # numpy casting error in Evidently's integer frequency tables
        expected = stats.cramervonmises_2samp(reference, current, method="exact").pvalue
    assert ours.score == pytest.approx(expected, rel=REL, abs=ABS)


# --------------------------------------------------------------------------------------------
# Degenerate inputs: never raise; Evidently's value where it has one, else "no drift".

DEGENERATE = {
    "single_same": ([1.0], [1.0]),
    "single_different": ([1.0], [2.0]),
    "constant_same": ([3.0] * 50, [3.0] * 40),
    "constant_different": ([3.0] * 50, [4.0] * 40),
    "constant_reference": ([3.0] * 50, list(np.linspace(0, 6, 40))),
    "constant_current": (list(np.linspace(0, 6, 50)), [3.0] * 40),
    "two_each": ([1.0, 2.0], [1.0, 3.0]),
    "three_total": ([1.0, 2.0], [3.0]),
    "equal_length_constant": ([3.0] * 40, [3.0] * 40),
}


def _evidently_or_none(reference: Any, current: Any, kind: str, name: str) -> float | None:
    try:
        np.random.seed(0)
        score = evidently(reference, current, kind, name).score
    except (ValueError, TypeError, ZeroDivisionError, IndexError):
        return None
    return None if math.isnan(score) else score


def _degenerate_expectation(reference: Any, current: Any, kind: str, name: str) -> float | None:
    """What driftwatch documents for this input: Evidently's value, or one of the documented
    replacements; None means "the no-drift score"."""
    if name == "chisquare":
        return _contingency_pvalue(Case("", kind, reference, current))
    if name == "empirical_mmd":
        ref, cur = pd.Series(sorted(reference)), pd.Series(sorted(current))
        return _evidently_or_none(ref, cur, kind, name)
    if name == "TVD":
        return _evidently_or_none(sorted(reference), sorted(current), kind, name)
    if name == "fisher_exact":
        pair = CategoricalPair.from_values(reference, current)
        ref, cur = pair.counts()
        return None if ref.size == 1 else float(stats.fisher_exact([cur, ref]).pvalue)
    if name == "g_test":
        pair = CategoricalPair.from_values(reference, current)
        ref, cur = pair.counts()
        if ref.size == 1:
            return None
        scaled = ref * cur.sum() / ref.sum()
        return float(stats.power_divergence(cur, scaled, lambda_="log-likelihood").pvalue)
    if name == "cramer_von_mises" and 2 <= min(len(reference), len(current)):
        if max(len(reference), len(current)) <= 20:
            return float(stats.cramervonmises_2samp(reference, current, method="exact").pvalue)
    return _evidently_or_none(reference, current, kind, name)


@pytest.mark.parametrize("data", list(DEGENERATE), ids=str)
@pytest.mark.parametrize(
    ("kind", "name"),
    [("numerical", n) for n in NUMERICAL_TESTS] + [("categorical", n) for n in CATEGORICAL_TESTS],
)
def test_degenerate_inputs(data: str, kind: str, name: str) -> None:
    reference, current = DEGENERATE[data]
    test = get(name)
    if kind == "numerical":
        pair: Pair = NumericalPair.from_unsorted(np.array(reference), np.array(current))
    else:
        pair = CategoricalPair.from_values(reference, current)
    if name == "fisher_exact" and pair.n_unique > 2:
        pytest.skip("fisher_exact refuses non-binary columns (tested above)")
    ours = evaluate(pair, kind=kind, stattest=name)
    expected = _degenerate_expectation(reference, current, kind, name)
    if expected is None:
        assert (ours.score, ours.drifted) == (test.no_drift_score, False)
    else:
        assert ours.score == pytest.approx(expected, rel=REL, abs=ABS)
        assert ours.drifted is test.is_drift(float(expected), test.default_threshold)


@pytest.mark.parametrize("name", sorted(STATTESTS))
@pytest.mark.parametrize("empty", ["current", "reference", "both"])
def test_empty_sample_is_no_drift(name: str, empty: str) -> None:
    test = get(name)
    values = {"reference": [1.0, 2.0, 3.0], "current": [2.0, 2.5]}
    values = {side: [] if empty in (side, "both") else v for side, v in values.items()}
    for kind in sorted(test.kinds):
        if kind == "numerical":
            pair: Pair = NumericalPair.from_unsorted(values["reference"], values["current"])
        else:
            pair = CategoricalPair.from_values(values["reference"], values["current"])
        result = evaluate(pair, kind=kind, stattest=name)
        assert (result.score, result.drifted) == (test.no_drift_score, False)


def test_all_missing_current_is_no_drift() -> None:
    pair = NumericalPair.from_unsorted(np.arange(50.0), np.array([np.nan, np.inf, -np.inf]))
    assert pair.n_current == 0
    result = evaluate(pair, kind="numerical")
    assert (result.stattest, result.score, result.drifted) == ("ks", 1.0, False)


# --------------------------------------------------------------------------------------------
# The default rule and the declarations.


def _rule_case(kind: str, n_reference: int, n_unique: int) -> tuple[pd.Series, pd.Series]:
    values = np.arange(n_unique, dtype=float)
    reference = np.resize(values[: max(1, n_unique - 1)], n_reference)  # current adds one value
    current = np.resize(values, max(10, n_unique))
    if kind == "categorical":
        return pd.Series([f"v{v:g}" for v in reference]), pd.Series([f"v{v:g}" for v in current])
    return pd.Series(reference), pd.Series(current)


@pytest.mark.parametrize("kind", ["numerical", "categorical"])
@pytest.mark.parametrize("n_reference", [1, 999, 1000, 1001, 5000])
@pytest.mark.parametrize("n_unique", [1, 2, 3, 5, 6, 40])
def test_default_stattest_is_evidentlys_rule(kind: str, n_reference: int, n_unique: int) -> None:
    ref, cur = _rule_case(kind, n_reference, n_unique)
    assert len(ref) == n_reference
    assert pd.concat([ref, cur]).nunique() == n_unique
    expected = ev_registry._get_default_stattest(ref, cur, EV_KIND[kind])
    ours = default_stattest(kind, n_reference, n_unique)
    assert (ours.name, ours.default_threshold) == (expected.name, expected.default_threshold)
    pair = (
        NumericalPair.from_unsorted(ref.to_numpy(), cur.to_numpy())
        if kind == "numerical"
        else CategoricalPair.from_values(list(ref), list(cur))
    )
    assert (pair.n_reference, pair.n_unique) == (n_reference, n_unique)
    assert evaluate(pair, kind=kind).stattest == expected.name


def test_registry_declares_evidentlys_tests() -> None:
    kinds = {ColumnType.Numerical: "numerical", ColumnType.Categorical: "categorical"}
    for name, test in STATTESTS.items():
        evidently_tests = ev_registry._registered_stat_tests[name]
        evidently_test = next(iter(evidently_tests.values()))
        assert test.name == evidently_test.name
        assert test.kinds == {kinds[k] for k in evidently_test.allowed_feature_types}
        assert test.default_threshold == evidently_test.default_threshold
    assert len(STATTESTS) == 18


@pytest.mark.parametrize(
    ("name", "pvalue", "inclusive"),
    [
        ("ks", True, True),
        ("cramer_von_mises", True, True),
        ("mannw", True, False),
        ("ed", False, False),
        ("wasserstein", False, True),
        ("psi", False, True),
    ],
)
def test_threshold_comparison(name: str, pvalue: bool, inclusive: bool) -> None:
    test = get(name)
    assert (test.pvalue, test.inclusive) == (pvalue, inclusive)
    assert test.is_drift(0.1, 0.1) is inclusive
    assert test.is_drift(0.05, 0.1) is pvalue
    assert test.is_drift(0.2, 0.1) is not pvalue
    assert test.is_drift(math.nan, 0.1) is False


def test_evaluate_refuses_wrong_kind_and_unknown_names() -> None:
    numerical = NumericalPair.from_unsorted([1.0, 2.0, 3.0], [1.0, 2.0])
    categorical = CategoricalPair.from_values(["a", "b"], ["a"])
    with pytest.raises(ValueError, match=r"'ks'.*categorical"):
        evaluate(categorical, kind="categorical", stattest="ks")
    with pytest.raises(ValueError, match=r"'chisquare'.*numerical"):
        evaluate(numerical, kind="numerical", stattest="chisquare")
    with pytest.raises(ValueError, match="known stattests: ks, chisquare"):
        get("nope")
    with pytest.raises(ValueError, match="kind"):
        evaluate(numerical, kind="text")
    with pytest.raises(ValueError, match="NumericalPair"):
        evaluate(categorical, kind="numerical")


def test_explicit_threshold_is_used() -> None:
    pair = numerical_pair(NUMERICAL_CASES[1])
    loose = evaluate(pair, kind="numerical", stattest="wasserstein", threshold=5.0)
    expected = evidently(
        NUMERICAL_CASES[1].reference, NUMERICAL_CASES[1].current, "numerical", "wasserstein"
    )
    assert (loose.threshold, loose.drifted) == (5.0, False)
    assert loose.score == pytest.approx(expected.score, rel=REL)


# --------------------------------------------------------------------------------------------
# Building blocks, against the numpy/scipy functions they replace.


@pytest.mark.parametrize("seed", range(20))
def test_sturges_edges_and_counts_equal_numpy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    size = int(rng.integers(1, 5000))
    integer = bool(seed % 2)
    values = (
        rng.integers(-30, int(rng.integers(-29, 60)), size)
        if integer
        else rng.normal(0, 10.0 ** rng.integers(-3, 4), size)
    )
    edges = sturges_edges(values.min(), values.max(), values.size, integer=integer)
    np.testing.assert_array_equal(edges, np.histogram_bin_edges(values, bins="sturges"))
    counts = histogram_counts(np.sort(values).astype(float), edges)
    np.testing.assert_array_equal(counts, np.histogram(values, edges)[0])


def test_pooled_sample_reproduces_scipy_internals() -> None:
    rng = np.random.default_rng(4)
    pair = NumericalPair.from_unsorted(rng.integers(0, 30, 400), rng.integers(5, 40, 300) / 1.0)
    pooled = Pooled.of(pair)
    ranks = stats.rankdata(np.concatenate((pair.reference, pair.current)))
    rx, ry = pooled.midranks()
    np.testing.assert_array_equal(rx, ranks[:400])
    np.testing.assert_array_equal(ry, ranks[400:])
    assert ecdf_score("wasserstein", pair) == stats.wasserstein_distance(
        pair.reference, pair.current
    ) / max(np.std(pair.reference), 0.001)
    assert ecdf_score("ed", pair) == pytest.approx(
        stats.energy_distance(pair.reference, pair.current), rel=1e-12
    )


def ecdf_score(name: str, pair: NumericalPair) -> float:
    compute: Callable[[NumericalPair], float] | None = get(name).on_numerical
    assert compute is not None
    return compute(pair)


def test_pairs_clean_like_evidently() -> None:
    pair = NumericalPair.from_unsorted(
        np.array([3.0, np.nan, 1.0, np.inf, 2.0, 2.0]), np.array([-np.inf, 5.0, 2.0])
    )
    np.testing.assert_array_equal(pair.reference, [1.0, 2.0, 2.0, 3.0])
    np.testing.assert_array_equal(pair.current, [2.0, 5.0])
    assert (pair.n_unique, pair.n_unique_reference) == (4, 3)
    values, ref, cur = pair.value_counts()
    np.testing.assert_array_equal(values, [1.0, 2.0, 3.0, 5.0])
    np.testing.assert_array_equal(ref, [1, 2, 1, 0])
    np.testing.assert_array_equal(cur, [0, 1, 0, 1])
    categorical = CategoricalPair.from_values(
        ["b", None, "a", float("nan"), "b"], ["c", pd.NA, "a", float("inf")]
    )
    assert categorical.categories == ["a", "b", "c"]
    np.testing.assert_array_equal(categorical.reference_counts, [1, 2, 0])
    np.testing.assert_array_equal(categorical.current_counts, [1, 0, 1])
    with pytest.raises(ValueError, match="sorted"):
        NumericalPair(np.array([2.0, 1.0]), np.array([1.0]))


def test_results_are_deterministic() -> None:
    for case in (NUMERICAL_CASES[1], CATEGORICAL_CASES[1]):
        for name in sorted(n for n, t in STATTESTS.items() if case.kind in t.kinds):
            if name == "fisher_exact":
                continue
            first = evaluate(pair_of(case), kind=case.kind, stattest=name)
            assert first == evaluate(pair_of(case), kind=case.kind, stattest=name)


def test_default_tests_emit_no_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        evaluate(numerical_pair(NUMERICAL_CASES[0]), kind="numerical")
        evaluate(categorical_pair(CATEGORICAL_CASES[0]), kind="categorical")


@pytest.mark.parametrize("name", sorted(STATTESTS))
def test_each_test_says_which_columns_it_cannot_apply_to(name: str) -> None:
    test = get(name)
    for kind in ("numerical", "categorical"):
        refusal = test.refusal(kind)
        assert (refusal is None) == (kind in test.kinds), (kind, refusal)
    if name == "fisher_exact":
        assert test.refusal("categorical", categories=2) is None
        assert test.refusal("categorical", categories=3) == (
            "'fisher_exact' compares at most 2 categories"
        )
    else:
        assert all(test.refusal(kind, categories=50) is None for kind in test.kinds)
