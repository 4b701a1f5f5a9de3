"""p-values of the two-sample Cramer-von Mises statistic, as Evidently computes them.

Ported from ``evidently/legacy/calculations/stattests/cramer_von_mises_stattest.py`` (itself a
copy of scipy's implementation, BSD-3-Clause; Evidently is Apache-2.0): same recursion, same
dtypes, same stopping rule, so the p-values are the same numbers.

References: Y. Xiao, A. Gordon, A. Yakovlev, "A C++ Program for the Cramer-Von Mises
Two-Sample Test", J. Stat. Soft. 17(8), 2006; T. W. Anderson, "On the Distribution of the
Two-Sample Cramer-von Mises Criterion", Ann. Math. Statist. 33(3), 1962; S. Csorgo and
J. Faraway, "The exact and asymptotic distributions of Cramer-von Mises statistics", 1996.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import gammaln, kv

from driftwatch.stats.samples import FloatArray


def exact_pvalue(u: float, m: int, n: int) -> float:
    """Exact p-value for the statistic U of samples of sizes m and n (Evidently's
    ``_pval_cvm_2samp_exact``).

    Evidently sizes its frequency tables with ``np.min_scalar_type(max(bound, C(m+n, m)))``.
    When the binomial (a float) is the larger, that is a float type and the tables are float16/
    32/64, whose rounding we keep. When the integer bound is larger, it is a small unsigned type
    and Evidently's ``tmp[0] += (a * v - b * u) ** 2`` raises a numpy casting error (int64 into
    uint8/uint16, e.g. for 2 vs 2 or 3 vs 4 values); there we use int64 tables, i.e. the exact
    count the algorithm is meant to produce.
    """
    lcm = np.lcm(m, n)
    a = lcm // m
    b = lcm // n
    mn = m * n
    zeta = lcm**2 * (m + n) * (6 * u - mn * (4 * mn - 1)) // (6 * mn**2)
    zeta_bound = lcm**2 * (m + n)
    combinations = math.factorial(m + n) / (math.factorial(m) * math.factorial(n))
    dtype = np.min_scalar_type(max(zeta_bound, combinations))
    if dtype.kind in "ui":
        dtype = np.dtype(np.int64)
    gs = [np.array([[0], [1]], dtype=dtype)] + [np.empty((2, 0), dtype=dtype) for _ in range(m)]
    for u_step in range(n + 1):
        next_gs = []
        tmp = np.empty((2, 0), dtype=dtype)
        for v, g in enumerate(gs):
            vi, i0, i1 = np.intersect1d(tmp[0], g[0], return_indices=True)
            tmp = np.concatenate(
                [np.stack([vi, tmp[1, i0] + g[1, i1]]), np.delete(tmp, i0, 1), np.delete(g, i1, 1)],
                1,
            )
            tmp[0] += (a * v - b * u_step) ** 2
            next_gs.append(tmp)
        gs = next_gs
    value, freq = gs[m]
    return float(np.float64(np.sum(freq[value >= zeta]) / combinations))


def _cdf_cvm_inf(x: FloatArray) -> FloatArray:
    """CDF of the limiting Cramer-von Mises distribution (Csorgo and Faraway, eq. 1.2)."""

    def term(x: FloatArray, k: int) -> FloatArray:
        u = np.exp(gammaln(k + 0.5) - gammaln(k + 1)) / (np.pi**1.5 * np.sqrt(x))
        y = 4 * k + 1
        q = y**2 / (16 * x)
        b = kv(0.25, q)
        result: FloatArray = u * np.sqrt(y) * np.exp(-q) * b
        return result

    total = np.zeros_like(x, dtype="float")
    pending = np.ones_like(x, dtype="bool")
    k = 0
    while np.any(pending):
        z = term(x[pending], k)
        total[pending] = total[pending] + z
        pending[pending] = np.abs(z) >= 1e-7
        k += 1
    return total


def asymptotic_pvalue(t: float, nx: int, ny: int) -> float:
    """p-value of the statistic T from the limiting distribution of the normalised statistic."""
    k, n = nx * ny, nx + ny
    et = (1 + 1 / n) / 6
    vt = (n + 1.0) * (4 * k * n - 3 * (nx**2 + ny**2) - 2 * k)
    vt = vt / (45 * n**2 * 4 * k)
    tn = 1 / 6 + (t - et) / np.sqrt(45 * vt)
    # Below 0.003 the limiting CDF is < 1.3e-18: the p-value is 1.
    if tn < 0.003:
        return 1.0
    survival = float(1.0 - _cdf_cvm_inf(np.asarray(tn)))
    return max(0.0, survival)
