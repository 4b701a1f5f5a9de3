"""The drift tests of the public contract, Evidently 0.7's default choice among them, and
``evaluate``: one column's test result.

Each ``StatTest`` carries Evidently's name, the column kinds Evidently accepts it for when asked
by name, its default threshold and how a score is compared with the threshold:

======================  ======================  =========  =================================
name                    kinds                   threshold  drift when
======================  ======================  =========  =================================
ks                      numerical               0.05       p <= threshold
chisquare               categorical             0.05       p < threshold
z                       categorical             0.05       p < threshold
wasserstein             numerical               0.1        distance >= threshold
jensenshannon           numerical, categorical  0.1        distance >= threshold
psi                     numerical, categorical  0.1        distance >= threshold
kl_div                  numerical, categorical  0.1        distance >= threshold
hellinger               numerical, categorical  0.1        distance >= threshold
TVD                     categorical             0.1        p < threshold
anderson                numerical               0.1        p < threshold
cramer_von_mises        numerical               0.1        p <= threshold
ed                      numerical               0.1        distance > threshold
mannw                   numerical               0.05       p < threshold
t_test                  numerical               0.05       p < threshold
empirical_mmd           numerical               0.1        p < threshold
g_test                  categorical             0.1        p < threshold
fisher_exact            categorical             0.1        p < threshold
es                      numerical               0.05       p < threshold
======================  ======================  =========  =================================

The comparisons are Evidently's own: ks and cramer_von_mises are its two inclusive p-value
tests, ed its one strict distance test. fisher_exact is the one test with a limit beyond its
kinds: a column of at most two categories (``max_categories``).

Results where Evidently would raise or return NaN (empty sample, too few values, constant data
for some tests; see each test's module) are reported as "no evidence of drift": score 1.0 for a
p-value test, 0.0 for a distance, never drifted.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from driftwatch.stats import binned_tests, count_tests, ecdf_tests, permutation_tests, scipy_tests
from driftwatch.stats.samples import CategoricalPair, NumericalPair, Pair

NUMERICAL = "numerical"
CATEGORICAL = "categorical"
KINDS = frozenset({NUMERICAL, CATEGORICAL})

# Evidently's default rule: up to this many reference rows, hypothesis tests; beyond, distances.
SMALL_REFERENCE_MAX_ROWS = 1000
# ... and numerical columns with at most this many distinct values are treated as categories.
FEW_VALUES_MAX_UNIQUE = 5
# ... among which at most this many distinct values calls for the z-test.
BINARY_MAX_UNIQUE = 2

NumericalScore = Callable[[NumericalPair], float]
CategoricalScore = Callable[[CategoricalPair], float]


@dataclass(frozen=True)
class StatTest:
    """A drift test.

    ``pvalue``: the score is a p-value (drift when it is small) rather than a distance (drift
    when it is large). ``inclusive``: a score exactly equal to the threshold counts as drift
    (ks and cramer_von_mises among p-value tests; every distance test but ed). Use
    ``is_drift`` rather than re-deriving the comparison.

    ``on_numerical``/``on_categorical`` compute the score for each kind of pair. A test may be
    computable on a kind it is not allowed for when requested by name: Evidently's default rule
    runs chisquare and z on numerical columns with few distinct values, which its registry
    refuses when asked for explicitly.

    ``max_categories``: the most categories (over reference and current) the test can compare
    (fisher_exact: 2); None when any number will do. ``refusal`` says whether a test applies.
    """

    name: str
    kinds: frozenset[str]
    default_threshold: float
    pvalue: bool
    inclusive: bool
    on_numerical: NumericalScore | None = field(default=None, repr=False, compare=False)
    on_categorical: CategoricalScore | None = field(default=None, repr=False, compare=False)
    max_categories: int | None = None

    def refusal(self, kind: str, categories: int | None = None) -> str | None:
        """Why the test cannot apply to a column of ``kind`` holding ``categories`` categories
        (or at least that many), or None when it can."""
        if kind not in self.kinds:
            allowed = " and ".join(sorted(self.kinds))
            return f"{self.name!r} applies to {allowed} columns, not {kind} ones"
        if (
            categories is not None
            and self.max_categories is not None
            and categories > self.max_categories
        ):
            return f"{self.name!r} compares at most {self.max_categories} categories"
        return None

    @property
    def no_drift_score(self) -> float:
        """The score reported when the test cannot say anything: p = 1, or distance 0."""
        return 1.0 if self.pvalue else 0.0

    def is_drift(self, score: float, threshold: float) -> bool:
        if math.isnan(score):
            return False
        if self.pvalue:
            return score <= threshold if self.inclusive else score < threshold
        return score >= threshold if self.inclusive else score > threshold

    def score(self, pair: Pair) -> float:
        """The test's score on ``pair``; the no-drift score where the test is undefined."""
        if pair.n_reference == 0 or pair.n_current == 0:
            return self.no_drift_score
        if isinstance(pair, NumericalPair):
            if self.on_numerical is None:
                raise ValueError(f"stattest {self.name!r} cannot run on a numerical column")
            value = self.on_numerical(pair)
        else:
            if self.on_categorical is None:
                raise ValueError(f"stattest {self.name!r} cannot run on a categorical column")
            value = self.on_categorical(pair)
        return self.no_drift_score if math.isnan(value) else float(value)


@dataclass(frozen=True)
class StatResult:
    stattest: str
    score: float
    threshold: float
    drifted: bool


def _p_value_test(
    name: str,
    kinds: frozenset[str],
    threshold: float,
    *,
    numerical: NumericalScore | None = None,
    categorical: CategoricalScore | None = None,
    inclusive: bool = False,
    max_categories: int | None = None,
) -> StatTest:
    return StatTest(name, kinds, threshold, True, inclusive, numerical, categorical, max_categories)


def _distance_test(
    name: str,
    kinds: frozenset[str],
    *,
    numerical: NumericalScore | None = None,
    categorical: CategoricalScore | None = None,
    inclusive: bool = True,
) -> StatTest:
    return StatTest(name, kinds, 0.1, False, inclusive, numerical, categorical)


_NUM = frozenset({NUMERICAL})
_CAT = frozenset({CATEGORICAL})
_BOTH = KINDS

_DECLARED = (
    _p_value_test("ks", _NUM, 0.05, numerical=ecdf_tests.ks, inclusive=True),
    _p_value_test(
        "chisquare", _CAT, 0.05, numerical=count_tests.chisquare, categorical=count_tests.chisquare
    ),
    _p_value_test("z", _CAT, 0.05, numerical=count_tests.z, categorical=count_tests.z),
    _distance_test("wasserstein", _NUM, numerical=ecdf_tests.wasserstein),
    _distance_test(
        "jensenshannon",
        _BOTH,
        numerical=binned_tests.jensenshannon,
        categorical=binned_tests.jensenshannon,
    ),
    _distance_test("psi", _BOTH, numerical=binned_tests.psi, categorical=binned_tests.psi),
    _distance_test("kl_div", _BOTH, numerical=binned_tests.kl_div, categorical=binned_tests.kl_div),
    _distance_test(
        "hellinger", _BOTH, numerical=binned_tests.hellinger, categorical=binned_tests.hellinger
    ),
    _p_value_test("TVD", _CAT, 0.1, categorical=permutation_tests.tvd),
    _p_value_test("anderson", _NUM, 0.1, numerical=scipy_tests.anderson),
    _p_value_test(
        "cramer_von_mises", _NUM, 0.1, numerical=ecdf_tests.cramer_von_mises, inclusive=True
    ),
    _distance_test("ed", _NUM, numerical=ecdf_tests.energy, inclusive=False),
    _p_value_test("mannw", _NUM, 0.05, numerical=scipy_tests.mannw),
    _p_value_test("t_test", _NUM, 0.05, numerical=scipy_tests.t_test),
    _p_value_test("empirical_mmd", _NUM, 0.1, numerical=permutation_tests.empirical_mmd),
    _p_value_test("g_test", _CAT, 0.1, categorical=count_tests.g_test),
    _p_value_test(
        "fisher_exact", _CAT, 0.1, categorical=count_tests.fisher_exact, max_categories=2
    ),
    _p_value_test("es", _NUM, 0.05, numerical=scipy_tests.es),
)

STATTESTS: dict[str, StatTest] = {test.name: test for test in _DECLARED}


def get(name: str) -> StatTest:
    try:
        return STATTESTS[name]
    except KeyError:
        known = ", ".join(STATTESTS)
        raise ValueError(f"unknown stattest {name!r}; known stattests: {known}") from None


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown column kind {kind!r}; expected one of {sorted(KINDS)}")


def default_stattest(kind: str, n_reference: int, n_unique: int) -> StatTest:
    """Evidently 0.7's ``_get_default_stattest``: ``n_reference`` is the reference row count
    after dropping missing values, ``n_unique`` the distinct values of reference + current."""
    _check_kind(kind)
    few_values = kind == CATEGORICAL or n_unique <= FEW_VALUES_MAX_UNIQUE
    if n_reference <= SMALL_REFERENCE_MAX_ROWS:
        if not few_values:
            return STATTESTS["ks"]
        return STATTESTS["chisquare" if n_unique > BINARY_MAX_UNIQUE else "z"]
    return STATTESTS["jensenshannon" if few_values else "wasserstein"]


def evaluate(
    pair: Pair, *, kind: str, stattest: str | None = None, threshold: float | None = None
) -> StatResult:
    """Run one column's drift test.

    ``stattest`` None: Evidently's default rule picks it. ``threshold`` None: the chosen test's
    default. Raises ValueError for an unknown test, an unknown kind, a test not allowed for
    ``kind``, or a pair that does not match ``kind``.
    """
    _check_kind(kind)
    expected = NumericalPair if kind == NUMERICAL else CategoricalPair
    if not isinstance(pair, expected):
        raise ValueError(f"a {kind} column needs a {expected.__name__}, got {type(pair).__name__}")
    if stattest is None:
        test = default_stattest(kind, pair.n_reference, pair.n_unique)
    else:
        test = get(stattest)
        if kind not in test.kinds:
            allowed = ", ".join(sorted(test.kinds))
            raise ValueError(
                f"stattest {test.name!r} does not apply to {kind} columns (only {allowed})"
            )
    actual_threshold = test.default_threshold if threshold is None else float(threshold)
    score = test.score(pair)
    return StatResult(test.name, score, actual_threshold, test.is_drift(score, actual_threshold))
