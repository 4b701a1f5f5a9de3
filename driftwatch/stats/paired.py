"""Paired 95% intervals for a metric difference between two models scored on the same rows
(a shadow version against the served one, CONTRACT section 10). Pure numpy/scipy.

The methods, for a statistician to check (the README's "Model versions in a window" says the
same in prose):

- accuracy (classes): the rows are matched pairs, so the difference of the two accuracies is
  ``(b - c) / n`` with b the rows only the first model gets right and c those only the second
  does. The interval is the Wald interval for matched proportions (Agresti, Categorical Data
  Analysis, 3rd ed., section 11.1.1) after adding 1/2 to each of the four cells (Agresti and
  Min 2005, "Simple improved confidence intervals for comparing matched proportions",
  Statistics in Medicine 24: 729-740), which keeps its coverage when b + c is small and its
  width above 0 when the models never disagree; the p-value is McNemar's exact test (the
  binomial of b among the b + c discordant rows at 1/2).
- roc_auc: DeLong, DeLong and Clarke-Pearson (1988), in the midrank form of Sun and Xu
  (2014): each model's structural components over positives and negatives, their covariance
  across the two models, and a normal interval for the difference.
- a metric that is a mean over rows (mae, log_loss): the paired t interval of the per-row
  differences (scipy's ``ttest_rel``).
- rmse: the delta method on the two mean squared errors, whose joint covariance is estimated
  from the per-row pairs: ``sqrt(A) - sqrt(B)`` has the gradient ``(1 / 2 sqrt(A), -1 / 2
  sqrt(B))``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import stats

FloatArray = npt.NDArray[np.float64]
LEVEL = 0.95


@dataclass(frozen=True, slots=True)
class PairedInterval:
    value: float  # the first model's metric minus the second's
    lower: float
    upper: float
    p_value: float | None
    method: str


def matched_proportions(
    b: int, c: int, n: int, *, pseudo: float = 0.5, level: float = LEVEL
) -> PairedInterval:
    """The difference of two paired proportions, ``(b - c) / n``: b of the n rows count for
    the first model alone, c for the second alone. ``pseudo`` is added to each of the four
    cells before the Wald interval (0: Agresti's plain Wald interval)."""
    z = float(stats.norm.ppf(0.5 + level / 2))
    b_, c_, n_ = b + pseudo, c + pseudo, n + 4 * pseudo
    centre = (b_ - c_) / n_
    spread = z * math.sqrt(max((b_ + c_) - (b_ - c_) ** 2 / n_, 0.0)) / n_
    p_value = float(stats.binomtest(min(b, c), b + c, 0.5).pvalue) if b + c else 1.0
    return PairedInterval(value=(b - c) / n, lower=centre - spread, upper=centre + spread,
                          p_value=p_value, method="mcnemar")  # fmt: skip


def _components(
    positives: FloatArray, negatives: FloatArray
) -> tuple[float, FloatArray, FloatArray]:
    """One model's AUC and DeLong's structural components, by midranks (Sun and Xu 2014):
    V10 per positive (the share of negatives it outscores, ties half), V01 per negative."""
    m, n = len(positives), len(negatives)
    within_positive = stats.rankdata(positives)
    within_negative = stats.rankdata(negatives)
    pooled = stats.rankdata(np.concatenate([positives, negatives]))
    v10 = (pooled[:m] - within_positive) / n
    v01 = 1 - (pooled[m:] - within_negative) / m
    auc = float((pooled[:m].sum() - m * (m + 1) / 2) / (m * n))
    return auc, v10, v01


def delong(
    truth: FloatArray, first: FloatArray, second: FloatArray, *, level: float = LEVEL
) -> PairedInterval | None:
    """The first model's ROC AUC minus the second's on the same rows (``truth`` 0/1), with
    DeLong's interval; None without both classes."""
    positive = truth == 1
    m, n = int(positive.sum()), int((~positive).sum())
    if m < 2 or n < 2:
        return None
    auc_a, v10_a, v01_a = _components(first[positive], first[~positive])
    auc_b, v10_b, v01_b = _components(second[positive], second[~positive])
    s10, s01 = np.cov(np.vstack([v10_a, v10_b])), np.cov(np.vstack([v01_a, v01_b]))
    covariance = s10 / m + s01 / n
    variance = float(covariance[0, 0] + covariance[1, 1] - 2 * covariance[0, 1])
    difference = auc_a - auc_b
    se = math.sqrt(max(variance, 0.0))
    z = float(stats.norm.ppf(0.5 + level / 2))
    p_value = float(2 * stats.norm.sf(abs(difference) / se)) if se > 0 else None
    return PairedInterval(value=difference, lower=difference - z * se,
                          upper=difference + z * se, p_value=p_value, method="delong")  # fmt: skip


def paired_mean(differences: FloatArray, *, level: float = LEVEL) -> PairedInterval | None:
    """The mean of per-row differences with the paired t interval; None under 2 rows."""
    count = len(differences)
    if count < 2:
        return None
    mean = float(differences.mean())
    se = float(differences.std(ddof=1)) / math.sqrt(count)
    t = float(stats.t.ppf(0.5 + level / 2, count - 1))
    p_value = float(2 * stats.t.sf(abs(mean) / se, count - 1)) if se > 0 else None
    return PairedInterval(value=mean, lower=mean - t * se, upper=mean + t * se,
                          p_value=p_value, method="paired_t")  # fmt: skip


def rmse_difference(
    first_errors: FloatArray, second_errors: FloatArray, *, level: float = LEVEL
) -> PairedInterval | None:
    """The first model's RMSE minus the second's on the same rows, from each row's errors,
    with a delta-method interval; None under 2 rows or with an RMSE of 0."""
    count = len(first_errors)
    if count < 2:
        return None
    squares = np.vstack([first_errors**2, second_errors**2])
    a, b = squares.mean(axis=1)
    if not (a > 0 and b > 0):
        return None
    gradient = np.array([1 / (2 * math.sqrt(a)), -1 / (2 * math.sqrt(b))])
    variance = float(gradient @ np.cov(squares) @ gradient) / count
    difference = math.sqrt(a) - math.sqrt(b)
    se = math.sqrt(max(variance, 0.0))
    z = float(stats.norm.ppf(0.5 + level / 2))
    p_value = float(2 * stats.norm.sf(abs(difference) / se)) if se > 0 else None
    return PairedInterval(value=difference, lower=difference - z * se,
                          upper=difference + z * se, p_value=p_value,
                          method="delta_method")  # fmt: skip
