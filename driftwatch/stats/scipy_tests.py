"""Tests Evidently delegates to scipy as-is: anderson, mannw, t_test, es (numerical, p-values).

Each calls the same scipy function with the same arguments as Evidently (on the sorted arrays,
which these functions sort or reduce anyway). Drift when p < threshold.

- ``anderson`` (default threshold 0.1): ``anderson_ksamp([ref, cur])`` midrank variant; its
  p-value is interpolated from a table and clipped to [0.001, 0.25] (scipy warns when it
  clips). Fewer than two distinct values in total: NaN (Evidently raises).
- ``mannw`` (default threshold 0.05): ``mannwhitneyu(ref, cur, alternative="less")``: a one-sided
  test (drift flagged when the reference tends to be *smaller*), as in Evidently.
- ``t_test`` (default threshold 0.05): ``ttest_ind(ref, cur)``, equal variances. NaN when both
  samples are constant and equal, or too small (scipy returns NaN, Evidently reports it).
- ``es`` (default threshold 0.05): ``epps_singleton_2samp(ref, cur)``. Evidently raises when the
  pooled interquartile range is 0 (the test scales by it): NaN here. NaN too where scipy
  returns it (fewer than 5 values in a sample).

NaN scores are reported by the registry as "no drift" (p = 1); see ``registry``.
"""

from __future__ import annotations

import inspect
import math

import numpy as np
from scipy import stats

from driftwatch.stats.samples import NumericalPair

# scipy 1.17 replaced ``midrank`` by ``variant`` and warns unless ``variant`` is given; both
# spellings select the midrank statistic Evidently's bare call gets.
_ANDERSON_HAS_VARIANT = "variant" in inspect.signature(stats.anderson_ksamp).parameters


def anderson(pair: NumericalPair) -> float:
    if pair.n_unique < 2 or pair.n_reference + pair.n_current < 3:
        return math.nan
    samples = [pair.reference, pair.current]
    if _ANDERSON_HAS_VARIANT:
        return float(stats.anderson_ksamp(samples, variant="midrank").pvalue)
    return float(stats.anderson_ksamp(samples)[2])


def mannw(pair: NumericalPair) -> float:
    return float(stats.mannwhitneyu(x=pair.reference, y=pair.current, alternative="less")[1])


def t_test(pair: NumericalPair) -> float:
    return float(stats.ttest_ind(pair.reference, pair.current)[1])


def es(pair: NumericalPair) -> float:
    pooled = np.concatenate((pair.reference, pair.current))
    if stats.iqr(pooled) == 0:
        return math.nan
    return float(stats.epps_singleton_2samp(pair.reference, pair.current)[1])
