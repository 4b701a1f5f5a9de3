"""95% intervals for the realized metrics of a window (CONTRACT section 9). Pure.

- ``accuracy``, and a binary model's ``precision`` and ``recall``: binomial proportions over
  their own denominators (all labeled rows; predicted positives; actual positives), Wilson
  score intervals.
- ``roc_auc``: DeLong's asymptotic variance (the two-sample U-statistic's structural
  components), a normal interval clipped to [0, 1]. A multiclass model's one-vs-rest macro
  AUC: the same structural components per class, combined row by row into the influence of
  each row on the macro average (its linearisation: rows are independent, the classes' AUCs
  are not), a normal interval from the sum of their squares (``ovr_delong``).
- Functions of the confusion matrix without an exact interval (``f1``; a multiclass model's
  macro ``precision``, ``recall``, ``f1``): a bootstrap of the rows is a multinomial draw of the
  confusion matrix's cells, so that is what is drawn (its cost does not grow with the rows).
- Means over rows and the rest (``log_loss``, ``mae``, ``rmse``, ``mape``, ``r2``): a percentile
  bootstrap over the labeled rows, vectorised; draws x rows resampled stays under
  ``BOOTSTRAP_CELLS``, and a window over ``MAX_RESAMPLED_ROWS`` rows is resampled m out of n.

Seeded: a window's intervals are the same each time it is computed.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
from scipy import stats

from driftwatch.monitoring.accuracy import Scored

Z95 = 1.959963984540054
SEED = 20261203
CELL_DRAWS = 4000  # multinomial draws of a confusion matrix (cheap: no row is touched)
MAX_ROW_DRAWS = 1000
MIN_ROW_DRAWS = 200
BOOTSTRAP_CELLS = 10_000_000  # draws x rows resampled, at most (beyond MIN_ROW_DRAWS)
MAX_RESAMPLED_ROWS = 50_000  # a larger window is resampled m out of n (``row_bootstrap``)
_CHUNK_CELLS = 2_000_000  # one block of draws x rows in memory at a time

FloatArray = npt.NDArray[np.float64]
Interval = tuple[float, float]


def wilson(successes: float, trials: float) -> Interval | None:
    """The Wilson score interval for a binomial proportion (None without trials)."""
    if trials <= 0:
        return None
    share = successes / trials
    z2 = Z95 * Z95
    centre = (share + z2 / (2 * trials)) / (1 + z2 / trials)
    half = Z95 * math.sqrt(share * (1 - share) / trials + z2 / (4 * trials * trials))
    half /= 1 + z2 / trials
    return max(0.0, centre - half), min(1.0, centre + half)


def delong(y_true: FloatArray, scores: FloatArray) -> Interval | None:
    """ROC AUC with DeLong's variance (ties count one half); None with fewer than two rows
    of either class."""
    positive, negative = scores[y_true == 1], scores[y_true == 0]
    m, n = len(positive), len(negative)
    if m < 2 or n < 2:
        return None
    ranks = stats.rankdata(np.concatenate([positive, negative]))
    auc = (ranks[:m].sum() - m * (m + 1) / 2) / (m * n)
    v10 = (ranks[:m] - stats.rankdata(positive)) / n  # per positive: share of negatives below
    v01 = 1 - (ranks[m:] - stats.rankdata(negative)) / m
    se = math.sqrt(v10.var(ddof=1) / m + v01.var(ddof=1) / n)
    return max(0.0, auc - Z95 * se), min(1.0, auc + Z95 * se)


def ovr_delong(scores: FloatArray, labels: npt.NDArray[np.int64]) -> Interval | None:
    """The one-vs-rest macro ROC AUC's interval (module docstring): for class k with m
    positives and n negatives, a positive row's component is the share of negatives it
    outranks (V10), a negative's the share of positives that outrank it (V01), AUC_k their
    mean; row i's influence on the macro AUC is the mean over the classes of
    (V10_ki - AUC_k) / m_k or (V01_ki - AUC_k) / n_k, whichever side it is on, and the
    variance the sum of the squared influences times N / (N - 1) (for two classes, DeLong's).
    None unless some class has two rows on either side."""
    total = len(labels)
    influence = np.zeros(total)
    aucs = []
    for k in range(scores.shape[1]):
        positive = labels == k
        m = int(positive.sum())
        n = total - m
        if m < 2 or n < 2:
            continue
        ranks = stats.rankdata(scores[:, k])
        v10 = (ranks[positive] - stats.rankdata(scores[positive, k])) / n
        v01 = 1 - (ranks[~positive] - stats.rankdata(scores[~positive, k])) / m
        auc = float(v10.mean())
        aucs.append(auc)
        influence[positive] += (v10 - auc) / m
        influence[~positive] += (v01 - auc) / n
    if not aucs:
        return None
    macro = float(np.mean(aucs))
    se = math.sqrt(float(np.sum((influence / len(aucs)) ** 2)) * total / (total - 1))
    return max(0.0, macro - Z95 * se), min(1.0, macro + Z95 * se)


def _percentile(draws: FloatArray) -> Interval | None:
    finite = draws[np.isfinite(draws)]
    if len(finite) < len(draws) * 0.9:  # the metric is undefined on too many draws
        return None
    low, high = np.percentile(finite, [2.5, 97.5])
    return float(low), float(high)


def _f1(tp: FloatArray, fp: FloatArray, fn: FloatArray) -> FloatArray:
    denominator = 2 * tp + fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), 0.0)


def _binary_cells(scored: Scored, rng: np.random.Generator) -> dict[str, Interval]:
    truth, predicted = scored.y_true.astype(bool), scored.y_pred.astype(bool)
    tp = int(np.sum(truth & predicted))
    fp = int(np.sum(~truth & predicted))
    fn = int(np.sum(truth & ~predicted))
    n = len(truth)
    out: dict[str, Interval | None] = {
        "accuracy": wilson(n - fp - fn, n),
        "precision": wilson(tp, tp + fp),
        "recall": wilson(tp, tp + fn),
    }
    shares = np.array([tp, fp, fn, n - tp - fp - fn]) / n
    cells: FloatArray = rng.multinomial(n, shares, size=CELL_DRAWS).astype(np.float64)
    out["f1"] = _percentile(_f1(cells[:, 0], cells[:, 1], cells[:, 2]))
    return {k: v for k, v in out.items() if v is not None}


def _class_cells(scored: Scored, rng: np.random.Generator) -> dict[str, Interval]:
    """Macro precision, recall and F1 of class names from multinomial draws of the K x K
    confusion matrix (a class absent from both truth and prediction of a draw is left out of
    its average, as scikit-learn leaves out labels it never sees)."""
    k, n = scored.classes, len(scored.y_true)
    flat = (scored.y_true * k + scored.y_pred).astype(np.int64)
    counts = np.bincount(flat, minlength=k * k).astype(np.float64)
    out: dict[str, Interval | None] = {"accuracy": wilson(float(np.trace(counts.reshape(k, k))), n)}
    draws = rng.multinomial(n, counts / n, size=CELL_DRAWS).reshape(CELL_DRAWS, k, k)
    tp = np.diagonal(draws, axis1=1, axis2=2).astype(np.float64)
    predicted, actual = draws.sum(axis=1), draws.sum(axis=2)
    present = (predicted + actual) > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(predicted > 0, tp / np.maximum(predicted, 1), 0.0)
        recall = np.where(actual > 0, tp / np.maximum(actual, 1), 0.0)
        f1 = _f1(tp, predicted - tp, actual - tp)
    shown = present.sum(axis=1)
    for name, per_class in (("precision", precision), ("recall", recall), ("f1", f1)):
        out[name] = _percentile((per_class * present).sum(axis=1) / np.maximum(shown, 1))
    return {key: v for key, v in out.items() if v is not None}


RowStatistic = Callable[[npt.NDArray[np.int64]], FloatArray]


def row_bootstrap(n: int, statistic: RowStatistic, rng: np.random.Generator) -> FloatArray:
    """``statistic`` of bootstrap resamples of ``n`` rows (it takes a draws x rows index block
    and returns one value per draw, or a row of values per draw). Over ``MAX_RESAMPLED_ROWS``
    rows, resamples of that many rows stand in for resamples of all (the m-out-of-n bootstrap):
    each draw's distance from the full sample's value is scaled by sqrt(m / n), as the
    statistic's spread shrinks with the square root of the rows (means and smooth functions of
    means). Draws x rows resampled stays under ``BOOTSTRAP_CELLS``."""
    m = min(n, MAX_RESAMPLED_ROWS)
    draws = int(min(MAX_ROW_DRAWS, max(MIN_ROW_DRAWS, BOOTSTRAP_CELLS // max(m, 1))))
    block = max(1, _CHUNK_CELLS // max(m, 1))
    values = np.concatenate([
        statistic(rng.integers(0, n, size=(min(block, draws - done), m)))
        for done in range(0, draws, block)
    ])  # fmt: skip
    if m == n:
        return values
    full = statistic(np.arange(n)[None, :])
    return full + (values - full) * math.sqrt(m / n)


def _regression(scored: Scored, rng: np.random.Generator) -> dict[str, Interval]:
    y, error = scored.y_true, scored.y_pred - scored.y_true
    absolute, squared = np.abs(error), error * error
    nonzero = (y != 0).astype(np.float64)
    relative = np.divide(absolute, np.abs(y), out=np.zeros_like(y), where=y != 0)

    def every(index: npt.NDArray[np.int64]) -> FloatArray:
        truth = y[index]
        spread = ((truth - truth.mean(axis=1, keepdims=True)) ** 2).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            r2 = 1 - squared[index].sum(axis=1) / spread
            mape = relative[index].sum(axis=1) / nonzero[index].sum(axis=1)
        return np.stack([absolute[index].mean(axis=1), np.sqrt(squared[index].mean(axis=1)),
                         r2, mape], axis=1)  # fmt: skip

    draws = row_bootstrap(len(y), every, rng)
    out: dict[str, Interval | None] = {
        name: _percentile(draws[:, i]) for i, name in enumerate(("mae", "rmse", "r2", "mape"))
    }
    return {k: v for k, v in out.items() if v is not None}


def _log_loss(scored: Scored, rng: np.random.Generator) -> Interval | None:
    assert scored.scores is not None
    p = np.clip(scored.scores, 1e-15, 1 - 1e-15)
    loss = -(scored.y_true * np.log(p) + (1 - scored.y_true) * np.log(1 - p))
    return _percentile(row_bootstrap(len(loss), lambda index: loss[index].mean(axis=1), rng))


def intervals(scored: Scored, realized: dict[str, float]) -> dict[str, Interval]:
    """A 95% interval for each metric in ``realized`` that one can be given for."""
    rng = np.random.default_rng(SEED)
    if len(scored.y_true) == 0:
        return {}
    out: dict[str, Interval | None]
    if scored.kind == "regression":
        out = dict(_regression(scored, rng))
    elif scored.kind == "classes":
        out = dict(_class_cells(scored, rng))
        if scored.class_scores is not None and scored.score_labels is not None:
            out["roc_auc"] = ovr_delong(scored.class_scores, scored.score_labels)
    else:
        out = dict(_binary_cells(scored, rng))
        if scored.scores is not None and "roc_auc" in realized:
            out["roc_auc"] = delong(scored.y_true, scored.scores)
        if scored.scores is not None and "log_loss" in realized:
            out["log_loss"] = _log_loss(scored, rng)
    return {
        name: (float(interval[0]), float(interval[1]))
        for name, interval in out.items()
        if name in realized and interval is not None
    }
