"""Drift of an embedding feature (CONTRACT section 11): Evidently 0.7's four embedding-drift
methods by name and default, each with a permutation p-value. Pure numpy/scipy/scikit-learn.

The methods, for a statistician to check (the README's "Embedding features" says the same):

- ``model`` (the default): a classifier told apart from the baseline. Up to ``SAMPLE_ROWS``
  rows of each side (uniform, without replacement) are pooled, labelled 1 (baseline) and 0
  (window), split in halves stratified by label; a logistic regression (L2, C = 1, on
  components standardised with the training half's mean and sd) is fitted to one half and
  scores the other. The score is the held-out ROC AUC; drift when >= 0.55. p-value: under no
  drift the held-out rows' labels are exchangeable given the fitted classifier, so the
  permutation distribution of the AUC is that of the Mann-Whitney U over the held-out scores
  (one-sided, normal approximation with the tie correction: scipy's ``mannwhitneyu``).
- ``distance``: the Euclidean distance between the baseline's mean vector (over all of its
  rows) and the window's (over all of its rows). p-value by permutation: ``PERMUTATIONS``
  random splits of the pooled samples (up to ``SAMPLE_ROWS`` a side) at the samples' sizes
  give the squared distance's null, which is scaled to the real sizes by
  (1/n + 1/m) / (1/n' + 1/m') (the squared distance between two means is a quadratic form of
  an asymptotically normal vector whose covariance scales exactly so); drift when p < 0.05.
- ``ratio``: the share of components whose own test drifts: Evidently's normed Wasserstein
  distance (W1 over the baseline component's sd, at least 0.001) >= 0.1 per component, on up
  to ``RATIO_SAMPLE_ROWS`` rows a side; drift when the share >= 0.2. p-value: the same share
  over ``RATIO_PERMUTATIONS`` random splits of the pooled samples.
- ``mmd``: the unbiased squared maximum mean discrepancy with a Gaussian kernel whose bandwidth
  is the median pairwise distance between the two samples (Evidently's rule), on up to
  ``MMD_SAMPLE_ROWS`` rows a side; score max(MMD², 0). p-value: MMD² over ``PERMUTATIONS``
  random relabellings of the pooled kernel matrix; drift when p < 0.05.

A permutation p-value is ``(1 + exceedances) / (R + 1)`` while at least ten draws reach the
observed score; beyond, it comes from a tail fitted to the draws (``calibration.Null``: a
gamma by moments for the squared distance and the share, a generalized Pareto for MMD²). Every
draw is seeded by the sample sizes, so a run computed again gives the same numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import stats

from driftwatch.stats.calibration import Null
from driftwatch.stats.registry import StatTest

Matrix = npt.NDArray[np.floating]
EMBEDDING = "embedding"

SAMPLE_ROWS = 5_000  # rows a side for model, and for the distance's permutation null
RATIO_SAMPLE_ROWS = 1_000  # rows a side for ratio (its null re-scores every component)
MMD_SAMPLE_ROWS = 1_000  # rows a side for mmd (its kernel matrix is (2k)² entries)
PERMUTATIONS = 200  # draws of the distance's and mmd's null
RATIO_PERMUTATIONS = 100
COMPONENT_THRESHOLD = 0.1  # ratio: a component drifts when its normed Wasserstein >= 0.1
MIN_NORM = 0.001  # Evidently's floor on the component's sd
SEED = 18

_KINDS = frozenset({EMBEDDING})
# Distances and shares (drift when the score reaches the threshold), and the two methods whose
# threshold is the p-value's level (``pvalue``: drift when the permutation p < threshold).
METHODS: dict[str, StatTest] = {
    test.name: test
    for test in (
        StatTest("model", _KINDS, 0.55, pvalue=False, inclusive=True),
        StatTest("distance", _KINDS, 0.05, pvalue=True, inclusive=False),
        StatTest("ratio", _KINDS, 0.2, pvalue=False, inclusive=True),
        StatTest("mmd", _KINDS, 0.05, pvalue=True, inclusive=False),
    )
}
DEFAULT_METHOD = "model"


@dataclass(frozen=True)
class EmbeddingDrift:
    """One embedding's test: its score, threshold and verdict by the method's own rule, its
    permutation p-value, the null (distances and shares: what the calibrated verdict's
    detectable score reads) and a 95% interval for the score where one is computed."""

    test: StatTest
    score: float
    threshold: float
    drifted: bool
    p_value: float
    null: Null | None
    effect_interval: tuple[float, float] | None
    sample_rows: tuple[int, int]  # rows of each side the score was computed on


def get(name: str | None) -> StatTest:
    method = METHODS.get(name or DEFAULT_METHOD)
    if method is None:
        raise ValueError(f"unknown embedding method {name!r}; known: {', '.join(METHODS)}")
    return method


def _rng(*keys: int) -> np.random.Generator:
    return np.random.default_rng([SEED, *keys])


def sample(matrix: Matrix, rows: int, rng: np.random.Generator) -> Matrix:
    """Up to ``rows`` rows, uniformly without replacement (all of them, in order, when fewer)."""
    if len(matrix) <= rows:
        return matrix
    return matrix[np.sort(rng.choice(len(matrix), size=rows, replace=False))]


def evaluate(
    name: str | None, reference: Matrix, current: Matrix, *,
    threshold: float | None = None, reference_mean: npt.NDArray[np.float64] | None = None,
    reference_rows: int | None = None,
) -> EmbeddingDrift:  # fmt: skip
    """Test ``current`` (the window's present vectors) against ``reference`` (the baseline's,
    or a sample of them: then ``reference_mean`` is the mean of all and ``reference_rows``
    how many there were). Both need at least two rows."""
    method = get(name)
    limit = method.default_threshold if threshold is None else float(threshold)
    if len(reference) < 2 or len(current) < 2:
        raise ValueError("an embedding test needs at least two vectors on each side")
    if method.name == "model":
        return _model(method, reference, current, limit)
    if method.name == "distance":
        mean = (
            reference.mean(axis=0, dtype=np.float64) if reference_mean is None else reference_mean
        )
        return _distance(method, reference, current, limit, mean, reference_rows or len(reference))
    if method.name == "ratio":
        return _ratio(method, reference, current, limit)
    return _mmd(method, reference, current, limit)


# -- model: a classifier told apart from the baseline --------------------------------------------


def _auc_null(scores: npt.NDArray[np.float64], labels: npt.NDArray[np.bool_]) -> Null:
    """The held-out AUC over random relabellings of the held-out rows (the rank-sum form)."""
    ranks = stats.rankdata(scores)
    positives, negatives = int(labels.sum()), int((~labels).sum())
    rng = _rng(positives, negatives, 1)
    draws = np.empty(PERMUTATIONS)
    for draw in range(PERMUTATIONS):
        chosen = rng.permutation(len(ranks))[:positives]
        draws[draw] = (ranks[chosen].sum() - positives * (positives + 1) / 2) / (
            positives * negatives
        )
    return Null.of(draws, 1, "gamma")


def _hanley_mcneil(auc: float, positives: int, negatives: int) -> tuple[float, float]:
    """A 95% normal interval for an AUC (Hanley and McNeil, 1982)."""
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    variance = (auc * (1 - auc) + (positives - 1) * (q1 - auc * auc)
                + (negatives - 1) * (q2 - auc * auc)) / (positives * negatives)  # fmt: skip
    half = 1.959964 * math.sqrt(max(variance, 0.0))
    return max(0.0, auc - half), min(1.0, auc + half)


def held_out_scores(
    reference: Matrix, current: Matrix, rng: np.random.Generator
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """The classifier's scores of the held-out half and their labels (True: baseline)."""
    from sklearn.linear_model import LogisticRegression  # a second to import: not at start-up

    data = np.vstack([reference, current]).astype(np.float64)
    labels = np.r_[np.ones(len(reference), dtype=bool), np.zeros(len(current), dtype=bool)]
    train = np.zeros(len(data), dtype=bool)
    for side in (np.flatnonzero(labels), np.flatnonzero(~labels)):  # stratified halves
        train[rng.choice(side, size=len(side) // 2, replace=False)] = True
    mean = data[train].mean(axis=0)
    scale = data[train].std(axis=0)
    scale[scale == 0] = 1.0
    standard = (data - mean) / scale
    classifier = LogisticRegression(C=1.0, max_iter=200)
    classifier.fit(standard[train], labels[train])
    return classifier.decision_function(standard[~train]), labels[~train]


def _model(method: StatTest, reference: Matrix, current: Matrix, limit: float) -> EmbeddingDrift:
    rng = _rng(len(reference), len(current), 0)
    reference, current = sample(reference, SAMPLE_ROWS, rng), sample(current, SAMPLE_ROWS, rng)
    scores, labels = held_out_scores(reference, current, rng)
    positives, negatives = scores[labels], scores[~labels]
    tested = stats.mannwhitneyu(positives, negatives, alternative="greater", method="asymptotic")
    auc = float(tested.statistic) / (len(positives) * len(negatives))
    return EmbeddingDrift(
        method, auc, limit, method.is_drift(auc, limit), float(tested.pvalue),
        _auc_null(scores, labels), _hanley_mcneil(auc, len(positives), len(negatives)),
        (len(reference), len(current)),
    )  # fmt: skip


# -- distance: Euclidean distance between the means ----------------------------------------------


def _distance(
    method: StatTest, reference: Matrix, current: Matrix, limit: float,
    reference_mean: npt.NDArray[np.float64], reference_rows: int,
) -> EmbeddingDrift:  # fmt: skip
    n, m = reference_rows, len(current)
    score = float(np.linalg.norm(current.mean(axis=0, dtype=np.float64) - reference_mean))
    rng = _rng(n, m, 2)
    pooled = np.vstack([sample(reference, SAMPLE_ROWS, rng), sample(current, SAMPLE_ROWS, rng)])
    pooled = pooled.astype(np.float64) - pooled.mean(axis=0, dtype=np.float64)
    n_s = min(len(reference), SAMPLE_ROWS)
    m_s = len(pooled) - n_s
    # Each draw's mean difference at once: a (draws, rows) matrix of +1/n_s and -1/m_s.
    weights = np.full((PERMUTATIONS, len(pooled)), -1.0 / m_s)
    for draw in range(PERMUTATIONS):
        weights[draw, rng.permutation(len(pooled))[:n_s]] = 1.0 / n_s
    draws = np.linalg.norm(weights @ pooled, axis=1)
    null = Null.of(draws, 2, "gamma").scaled((1 / n + 1 / m) / (1 / n_s + 1 / m_s))
    p_value = null.p_value(score)
    return EmbeddingDrift(method, score, limit, method.is_drift(p_value, limit), p_value, None,
                          None, (n, m))  # fmt: skip


# -- ratio: the share of drifted components ------------------------------------------------------


class _Components:
    """The pooled samples of ratio sorted once per component: a relabelling of the rows then
    re-scores every component with a cumulative sum (no sort), W1 being the integral of
    |F - G|, summed over the gaps between each component's sorted pooled values."""

    def __init__(self, pooled: Matrix) -> None:
        self.pooled = pooled
        # (components, rows): each component's rows in sorted order, contiguous
        self.order = np.ascontiguousarray(np.argsort(pooled, axis=0, kind="stable").T)
        ordered = np.take_along_axis(pooled.T, self.order, axis=1)
        self.gaps = np.diff(ordered, axis=1).astype(np.float32)
        self.buffer = np.empty_like(self.gaps)
        self.rank = np.arange(1, pooled.shape[0], dtype=np.float32)

    def share(self, is_reference: npt.NDArray[np.bool_]) -> float:
        """The share of components whose normed Wasserstein distance between the rows marked
        ``is_reference`` and the others reaches ``COMPONENT_THRESHOLD``."""
        n = int(is_reference.sum())
        m = len(is_reference) - n
        below = np.cumsum(is_reference[self.order], axis=1, dtype=np.int32)[:, :-1]
        # F - G after the k-th sorted value: (reference rows so far)(1/n + 1/m) - k/m
        difference = self.buffer
        np.multiply(below, np.float32(1 / n + 1 / m), out=difference, casting="unsafe")
        np.subtract(difference, self.rank / np.float32(m), out=difference)
        np.abs(difference, out=difference)
        distances = np.einsum("ij,ij->i", difference, self.gaps)
        norm = np.maximum(self.pooled[is_reference].std(axis=0), MIN_NORM)
        return float(np.mean(distances / norm >= COMPONENT_THRESHOLD))


def _ratio(method: StatTest, reference: Matrix, current: Matrix, limit: float) -> EmbeddingDrift:
    rng = _rng(len(reference), len(current), 3)
    reference = sample(reference, RATIO_SAMPLE_ROWS, rng)
    current = sample(current, RATIO_SAMPLE_ROWS, rng)
    components = _Components(np.vstack([reference, current]).astype(np.float64))
    is_reference = np.r_[np.ones(len(reference), bool), np.zeros(len(current), bool)]
    score = components.share(is_reference)
    draws = np.array([components.share(rng.permutation(is_reference).astype(bool))
                      for _ in range(RATIO_PERMUTATIONS)])  # fmt: skip
    null = Null.of(draws, 1, "gamma")
    return EmbeddingDrift(
        method,
        score,
        limit,
        method.is_drift(score, limit),
        null.p_value(score),
        null,
        None,
        (len(reference), len(current)),
    )


# -- mmd: maximum mean discrepancy ---------------------------------------------------------------


def _squared_distances(a: Matrix, b: Matrix) -> Matrix:
    distances = (a * a).sum(axis=1)[:, None] + (b * b).sum(axis=1)[None, :] - 2 * a @ b.T
    clipped: Matrix = np.maximum(distances, 0.0)
    return clipped


def _mmd_squared(kernel: Matrix, marks: Matrix, row_sums: Matrix, total: float) -> Matrix:
    """Unbiased MMD² for each column of ``marks`` (1 marks a reference row), from the kernel
    matrix: a'Ka, a'Kb and b'Kb (the diagonal, 1 for a Gaussian kernel, left out)."""
    n = marks.sum(axis=0)
    m = kernel.shape[0] - n
    kernel_marks = kernel @ marks
    within_reference = (marks * kernel_marks).sum(axis=0)
    across = (row_sums @ marks) - within_reference  # b'Ka = 1'Ka - a'Ka
    within_current = total - within_reference - 2 * across
    result: Matrix = (
        (within_reference - n) / (n * (n - 1))
        + (within_current - m) / (m * (m - 1))
        - 2 * across / (n * m)
    )
    return result


def _mmd(method: StatTest, reference: Matrix, current: Matrix, limit: float) -> EmbeddingDrift:
    rng = _rng(len(reference), len(current), 4)
    reference = sample(reference, MMD_SAMPLE_ROWS, rng).astype(np.float64)
    current = sample(current, MMD_SAMPLE_ROWS, rng).astype(np.float64)
    sigma2 = float(np.median(_squared_distances(reference, current)))
    pooled = np.vstack([reference, current])
    kernel = np.exp(-_squared_distances(pooled, pooled) / (sigma2 if sigma2 > 0 else 1.0))
    row_sums = kernel.sum(axis=0)
    total = float(row_sums.sum())
    observed = np.r_[np.ones(len(reference)), np.zeros(len(current))]
    marks = np.empty((len(pooled), PERMUTATIONS + 1))
    marks[:, 0] = observed
    for draw in range(1, PERMUTATIONS + 1):
        marks[:, draw] = rng.permutation(observed)
    values = _mmd_squared(kernel, marks, row_sums, total)
    raw, draws = float(values[0]), values[1:]
    # MMD² under no drift is centred near 0 and takes negative values: the null is of
    # MMD² - min(draws) + 1, a shift that changes no exceedance and no Pareto excess.
    shift = 1.0 - float(draws.min())
    null = Null.of(np.asarray(draws + shift, dtype=np.float64), 1, "pareto")
    p_value = null.p_value(raw + shift)
    return EmbeddingDrift(method, max(raw, 0.0), limit, method.is_drift(p_value, limit), p_value,
                          None, None, (len(reference), len(current)))  # fmt: skip
