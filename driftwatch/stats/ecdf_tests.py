"""Tests read off the two empirical CDFs: ks, wasserstein, ed, cramer_von_mises (numerical only).

- ``ks``: Kolmogorov-Smirnov two-sample test, scipy's ``ks_2samp(ref, cur)`` (two-sided,
  method "auto"). Score: p-value; default threshold 0.05; drift when p <= threshold (the one
  p-value test Evidently compares inclusively, with cramer_von_mises).
- ``wasserstein``: scipy's ``wasserstein_distance(ref, cur)`` divided by
  ``max(std(ref), 0.001)`` (population std; a constant reference is normed by 0.001, as in
  Evidently). Score: distance; default threshold 0.1; drift when score >= threshold.
- ``ed``: scipy's ``energy_distance(ref, cur)``. Score: distance; default threshold 0.1; drift
  when score > threshold (strictly: Evidently's ``distance > threshold``).
- ``cramer_von_mises``: Evidently's own two-sample Cramer-von Mises test (a copy of an older
  scipy one). Score: p-value; default threshold 0.1; drift when p <= threshold.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from driftwatch.stats.cvm import asymptotic_pvalue, exact_pvalue
from driftwatch.stats.ecdf import Pooled
from driftwatch.stats.kolmogorov import kstwo_sf
from driftwatch.stats.samples import NumericalPair

# scipy's ks_2samp uses the exact distribution up to this sample size (its MAX_AUTO_N).
KS_EXACT_MAX_N = 10_000
# Evidently's Cramer-von Mises test is exact when the larger sample has at most this many values.
CVM_EXACT_MAX_N = 20
# Evidently norms the Wasserstein distance by the reference std, but never by less than this.
WASSERSTEIN_MIN_NORM = 0.001


def ks(pair: NumericalPair) -> float:
    """p-value of ``scipy.stats.ks_2samp(reference, current)``.

    Small samples go to scipy itself (its exact path is cheap there); above 10,000 values scipy
    uses the asymptotic ``kstwo`` distribution, and so do we (see ``kolmogorov``), with the
    statistic computed from the pooled sorted sample: the same divisions at the same points give
    the same D bit for bit.
    """
    n_ref, n_cur = pair.n_reference, pair.n_current
    if max(n_ref, n_cur) <= KS_EXACT_MAX_N:
        return float(stats.ks_2samp(pair.reference, pair.current).pvalue)
    statistic = ks_statistic(pair)
    larger, smaller = sorted([float(n_ref), float(n_cur)], reverse=True)
    effective_n = larger * smaller / (larger + smaller)
    return float(np.clip(kstwo_sf(statistic, float(np.round(effective_n))), 0, 1))


def ks_statistic(pair: NumericalPair) -> float:
    """The two-sample Kolmogorov-Smirnov statistic D = max |F - G|, from the pooled sorted
    sample."""
    if pair.n_reference == 0 or pair.n_current == 0:
        return 0.0
    reference_cdf, current_cdf = Pooled.of(pair).cdfs_at_run_ends()
    differences = reference_cdf - current_cdf
    return max(float(np.clip(-differences.min(), 0, 1)), float(differences.max()))


def wasserstein(pair: NumericalPair) -> float:
    """Evidently's normed Wasserstein distance: W1(ref, cur) / max(std(ref), 0.001)."""
    deltas, reference_cdf, current_cdf = Pooled.of(pair).cdfs_between_values()
    distance = float(np.dot(np.abs(reference_cdf - current_cdf), deltas))
    norm = max(float(np.std(pair.reference)), WASSERSTEIN_MIN_NORM)
    return distance / norm


def energy(pair: NumericalPair) -> float:
    """``scipy.stats.energy_distance(reference, current)``."""
    deltas, reference_cdf, current_cdf = Pooled.of(pair).cdfs_between_values()
    integral = float(np.dot(np.square(reference_cdf - current_cdf), deltas))
    return float(np.sqrt(2) * np.sqrt(integral))


def cramer_von_mises(pair: NumericalPair) -> float:
    """p-value of Evidently's ``_cvm_2samp(reference, current)`` (method "auto").

    NaN (reported as "no drift" by the registry) when a sample has fewer than 2 values, where
    Evidently raises. The exact path (both samples <= 20 values) follows Evidently, including
    its float frequency tables, except that it does not fail where Evidently's integer tables
    raise a numpy casting error (see ``cvm.exact_pvalue``).
    """
    nx, ny = pair.n_reference, pair.n_current
    if nx <= 1 or ny <= 1:
        return math.nan
    rx, ry = Pooled.of(pair).midranks()
    u = nx * np.sum((rx - np.arange(1, nx + 1)) ** 2)
    u += ny * np.sum((ry - np.arange(1, ny + 1)) ** 2)
    if max(nx, ny) <= CVM_EXACT_MAX_N:
        return exact_pvalue(float(u), nx, ny)
    k, n = nx * ny, nx + ny
    t = u / (k * n) - (4 * k - 1) / (6 * n)
    return asymptotic_pvalue(float(t), nx, ny)
