"""Tests on the per-value counts of the two samples: chisquare, z, g_test, fisher_exact.

All score a p-value; drift when p < threshold. Evidently allows them on categorical columns
only; its default rule also runs chisquare and z on numerical columns with at most 5 distinct
values, which here see ``NumericalPair.counts()`` (see ``samples``).

- ``chisquare`` (default threshold 0.05): **deliberately not Evidently's.** Evidently runs a
  goodness-of-fit test of the current counts against the reference frequencies taken as exact,
  which ignores the reference's own sampling noise and raises false alarms. Here it is the
  two-sample test of independence, ``scipy.stats.chi2_contingency`` on the 2 x K table of
  reference and current counts (scipy defaults, so Yates' correction when K = 2). One category
  (K = 1) gives p = 1.
- ``z`` (default threshold 0.05): Evidently's two-proportion z-test of "value != the smallest
  value" (its ``sorted(keys)[0]``), two-sided, p = 2 * (1 - Phi(|z|)); p = 1 when both samples
  hold the same single value.
- ``g_test`` (default threshold 0.1): ``scipy.stats.power_divergence(cur, ref_expected,
  lambda_="log-likelihood")``. Evidently passes the raw reference counts as expected
  frequencies, so scipy raises unless both samples have the same size; here the expected counts
  are scaled to the current total (``ref * n_cur / n_ref``, as Evidently's chisquare does),
  which is the identical computation when the sizes are equal. One category gives p = 1 (scipy
  returns NaN, zero degrees of freedom).
- ``fisher_exact`` (default threshold 0.1): ``scipy.stats.fisher_exact`` on the 2 x 2 table of
  the two categories' counts in current and reference. Evidently raises unless the samples have
  equal length; the test is well defined for any sizes, so it runs. One category gives p = 1
  (as Evidently, through its placeholder category). More than two categories: ValueError, as
  Evidently (a binary test on a non-binary column is a configuration error, not data to score).
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from driftwatch.stats.samples import Pair


def chisquare(pair: Pair) -> float:
    reference, current = pair.counts()
    if reference.size < 2:
        return 1.0
    return float(stats.chi2_contingency(np.vstack((reference, current)))[1])


def z(pair: Pair) -> float:
    reference, current = pair.counts()
    n1, n2 = pair.n_reference, pair.n_current
    if reference.size == 1:
        return 1.0
    # Evidently codes each value 0 if it equals the smallest value, else 1, and sums the codes.
    p1 = float(n1 - reference[0]) / n1
    p2 = float(n2 - current[0]) / n2
    pooled = float(p1 * n1 + p2 * n2) / (n1 + n2)
    statistic = (p1 - p2) / np.sqrt(pooled * (1 - pooled) * (1.0 / n1 + 1.0 / n2))
    return float(2 * (1 - stats.norm.cdf(np.abs(statistic))))


def g_test(pair: Pair) -> float:
    reference, current = pair.counts()
    if reference.size < 2:
        return 1.0
    expected = reference * (pair.n_current / pair.n_reference)
    return float(stats.power_divergence(current, expected, lambda_="log-likelihood")[1])


def fisher_exact(pair: Pair) -> float:
    reference, current = pair.counts()
    if reference.size == 1:
        return 1.0
    if reference.size > 2:
        raise ValueError(
            f"fisher_exact needs a binary column; found {reference.size} categories over "
            "reference and current"
        )
    table = np.array([[current[0], current[1]], [reference[0], reference[1]]])
    return float(stats.fisher_exact(table)[1])
