"""Drift scores of a window's summary against a baseline known only by its summary too (a
trailing or lag baseline, merged from per-window summaries), each with a bound on its error.

``from_summary`` compares a window's summary with a baseline's exact sorted values; here both
sides are ``summaries.NumericalSummary``. Both are binned on the same fixed log-linear bins
(``summaries.bin_keys``, the same for every model and span), so both CDFs are exact at every
edge of the union of their bins, and within one bin each side's CDF lies between its counts
below and above the bin. With ``R_i``, ``C_i`` the shares of each side below union bin i and
``R_i+1``, ``C_i+1`` those below its end:

- ``ks``: ``D >= D_low = max_i |R_i - C_i|`` (attained at a point between the bins: it is the
  largest value of each side below the bin, or the bin's edge) and
  ``D <= D_high = max_i max(R_i+1 - C_i, C_i+1 - R_i)``. Each side spread evenly over its bins
  makes their difference linear inside a bin, so the estimate is ``D_low`` itself.
- ``wasserstein``: ``integral |F_ref - F_cur|``, exact over the gaps between bins (both CDFs
  constant there), per bin at most ``width * max(R_i+1 - C_i, C_i+1 - R_i)``, at least
  ``width * max(0, R_i - C_i+1, C_i - R_i+1)``, estimated with both sides spread evenly (the
  integral of the absolute value of a linear function). Normed by the baseline's standard
  deviation (exact, from its moments) as Evidently.
- ``jensenshannon``, ``psi``: Evidently's Sturges bins of the pooled sample (exact: from the
  pooled min, max and count) with each side's bin counts bounded as ``from_summary`` bounds a
  window's; each term is a perspective function ``q phi(p / q)`` (jointly convex, zero at
  ``p = q``, increasing in ``|p - q|`` along each axis), so over the box of (p, q) its maximum
  is at a corner, its minimum 0 where the ranges overlap, else at the nearest corner.

A KLL sketch a summary keeps is not used by ``ks`` and ``wasserstein`` here (the bins alone
bound both sides): a column whose values spread little against their magnitude (one bin)
gets honest but wide bounds. Pure: numpy and scipy only.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.spatial import distance

from driftwatch.stats import binning, ecdf_tests
from driftwatch.stats.from_summary import (
    JS_MAX,
    Bounded,
    NeedsRows,
    Term,
    WindowCdf,
    _filled_range,
    _js_term,
    ks_p_value,
)
from driftwatch.stats.samples import FloatArray, IntArray
from driftwatch.stats.summaries import NumericalSummary, bin_bounds

BOUNDED = frozenset({"ks", "wasserstein", "jensenshannon", "psi"})


class _Union:
    """Both sides on the union of their bins: per bin its (clipped) bounds and each side's
    share of values below its start and below its end."""

    def __init__(self, reference: NumericalSummary, current: NumericalSummary) -> None:
        keys = np.union1d(reference.keys, current.keys)
        self.low, self.high = bin_bounds(keys)
        pooled_min = min(reference.minimum, current.minimum)
        pooled_max = max(reference.maximum, current.maximum)
        self.low = np.maximum(self.low, pooled_min)  # the outer bins end at the extremes
        self.high = np.maximum(np.minimum(self.high, pooled_max), self.low)
        self.ref_before, self.ref_after = self._shares(keys, reference)
        self.cur_before, self.cur_after = self._shares(keys, current)
        self.gaps = np.maximum(self.low[1:] - self.high[:-1], 0.0)

    @staticmethod
    def _shares(keys: IntArray, side: NumericalSummary) -> tuple[FloatArray, FloatArray]:
        counts = np.zeros(len(keys), dtype=np.float64)
        counts[np.searchsorted(keys, side.keys)] = side.counts
        cumulative = np.concatenate(([0.0], np.cumsum(counts))) / side.count
        return cumulative[:-1], cumulative[1:]


def ks(reference: NumericalSummary, current: NumericalSummary) -> Bounded:
    """The two-sample KS p-value of the estimated D (``D_low``) and its bounds."""
    both = _Union(reference, current)
    d_low = float(max(np.max(np.abs(both.ref_before - both.cur_before), initial=0.0),
                      np.max(np.abs(both.ref_after - both.cur_after), initial=0.0)))  # fmt: skip
    d_high = float(np.max(np.maximum(both.ref_after - both.cur_before,
                                     both.cur_after - both.ref_before), initial=0.0))  # fmt: skip
    n, m = reference.count, current.count
    p_estimate = ks_p_value(d_low, n, m)
    return Bounded(score=p_estimate, low=ks_p_value(d_high, n, m), high=p_estimate,
                   conservative=p_estimate)  # fmt: skip


def _linear_abs_integral(start: FloatArray, end: FloatArray) -> FloatArray:
    """integral over [0, 1] of |start + (end - start) s| ds."""
    same_sign = start * end >= 0
    magnitude = np.abs(start) + np.abs(end)
    with np.errstate(invalid="ignore", divide="ignore"):
        crossing = np.where(magnitude > 0, (start**2 + end**2) / (2 * magnitude), 0.0)
    out: FloatArray = np.where(same_sign, magnitude / 2, crossing)
    return out


def wasserstein(reference: NumericalSummary, current: NumericalSummary) -> Bounded:
    """Normed W1 between the two summaries, with its bounds."""
    both = _Union(reference, current)
    width = both.high - both.low
    gap = float(np.sum(np.abs(both.ref_after[:-1] - both.cur_after[:-1]) * both.gaps))
    start = both.ref_before - both.cur_before
    end = both.ref_after - both.cur_after
    guess = gap + float(np.sum(width * _linear_abs_integral(start, end)))
    high = gap + float(np.sum(width * np.maximum(both.ref_after - both.cur_before,
                                                 both.cur_after - both.ref_before)))  # fmt: skip
    low = gap + float(np.sum(width * np.maximum.reduce([
        np.zeros(len(width)), both.ref_before - both.cur_after, both.cur_before - both.ref_after,
    ])))  # fmt: skip
    guess = min(max(guess, low), high)
    std = math.sqrt(max(reference.m2, 0.0) / reference.count)
    norm = max(std, ecdf_tests.WASSERSTEIN_MIN_NORM)
    return Bounded(score=guess / norm, low=low / norm, high=high / norm, conservative=guess / norm)


def _side_counts(cdf: WindowCdf, edges: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """One side's estimated counts in Evidently's bins, and bounds on each."""
    inner = edges[1:-1]
    lower, upper = cdf.bounds(inner)
    guess = cdf.estimate(np.nextafter(inner, -np.inf))  # counts < edge
    total = np.array([float(cdf.n)])
    cum_low = np.concatenate(([0.0], lower, total))
    cum_high = np.concatenate(([0.0], upper, total))
    cum_guess = np.concatenate(([0.0], guess, total))
    minimum = np.clip(cum_low[1:] - cum_high[:-1], 0, None)
    return np.diff(cum_guess), minimum, cum_high[1:] - cum_low[:-1]


def binned_counts(
    reference: NumericalSummary, current: NumericalSummary
) -> tuple[tuple[FloatArray, FloatArray, FloatArray], tuple[FloatArray, FloatArray, FloatArray]]:
    """Both sides' (estimate, minimum, maximum) counts in the pooled sample's Sturges bins."""
    low = min(reference.minimum, current.minimum)
    high = max(reference.maximum, current.maximum)
    edges = binning.sturges_edges(low, high, reference.count + current.count)
    return _side_counts(WindowCdf(reference), edges), _side_counts(WindowCdf(current), edges)


def _box_extremes(
    term: Term, p: tuple[FloatArray, FloatArray], q: tuple[FloatArray, FloatArray]
) -> tuple[float, float]:  # fmt: skip
    """Bounds of sum_i term(p_i, q_i) over p_i, q_i in their ranges, for a perspective term
    (see the module's docstring)."""
    (p_low, p_high), (q_low, q_high) = p, q
    corners = [term(a, b) for a in (p_low, p_high) for b in (q_low, q_high)]
    highest = float(np.sum(np.maximum.reduce(corners)))
    apart_above = p_low > q_high  # p surely above q: nearest corner (p_low, q_high)
    apart_below = p_high < q_low
    lowest = np.where(apart_above, term(p_low, q_high),
                      np.where(apart_below, term(p_high, q_low), 0.0))  # fmt: skip
    return float(np.sum(lowest)), highest


def _psi_term(a: FloatArray, b: FloatArray) -> FloatArray:
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where((a > 0) & (b > 0), (a - b) * np.log(a / b), 0.0)
    return np.asarray(out, dtype=np.float64)


def binned(name: str, reference: NumericalSummary, current: NumericalSummary) -> Bounded:
    """jensenshannon or psi on Evidently's bins, both sides' counts estimated and bounded."""
    if name not in {"jensenshannon", "psi"}:
        raise NeedsRows(f"{name!r} is not computed from two summaries")
    reference_side, current_side = binned_counts(reference, current)
    (ref_guess, ref_min, ref_max), (cur_guess, cur_min, cur_max) = reference_side, current_side
    n, m = reference.count, current.count
    p, q = ref_guess / n, cur_guess / m
    if name == "jensenshannon":
        score = float(distance.jensenshannon(p, q, None))
        low, high = _box_extremes(_js_term, (ref_min / n, ref_max / n), (cur_min / m, cur_max / m))
        return _clamped(score, math.sqrt(max(low, 0.0)), math.sqrt(min(high, JS_MAX)))
    p_filled, q_filled = binning.fill_empty_bins(p), binning.fill_empty_bins(q)
    score = float(np.sum((p_filled - q_filled) * np.log(p_filled / q_filled)))
    p_range = _filled_range(ref_min / n, ref_max / n, n)
    q_range = _filled_range(cur_min / m, cur_max / m, m)
    return _clamped(score, *_box_extremes(_psi_term, p_range, q_range))


def _clamped(score: float, low: float, high: float) -> Bounded:
    low, high = min(low, score), max(high, score)
    return Bounded(score=score, low=low, high=high, conservative=score)


def score(name: str, reference: NumericalSummary, current: NumericalSummary) -> Bounded:
    """The named test's score of ``current`` against ``reference``, both summaries."""
    if name == "ks":
        return ks(reference, current)
    if name == "wasserstein":
        return wasserstein(reference, current)
    if name in {"jensenshannon", "psi"}:
        return binned(name, reference, current)
    raise NeedsRows(
        f"{name!r} is not computed between two summaries (a trailing or lag baseline is one: "
        f"{', '.join(sorted(BOUNDED))} are)"
    )


PSEUDO_SAMPLE_SIZE = 4_000


def pseudo_sample(summary: NumericalSummary, size: int = PSEUDO_SAMPLE_SIZE) -> FloatArray:
    """The summary's distribution as ``size`` sorted values: the quantiles at (k + 1/2) / size
    of its CDF, each bin's values spread evenly over it. The calibrated verdict's bootstrap null
    resamples at most 1,000 values a side from it (its shape is what matters, to the bins'
    0.78% resolution)."""
    low, high = bin_bounds(summary.keys)
    low = np.maximum(low, summary.minimum)
    high = np.maximum(np.minimum(high, summary.maximum), low)
    cumulative = np.concatenate(([0.0], np.cumsum(summary.counts.astype(np.float64))))
    ranks = (np.arange(size) + 0.5) / size * summary.count
    at = np.clip(np.searchsorted(cumulative, ranks, side="right") - 1, 0, len(low) - 1)
    share = (ranks - cumulative[at]) / np.maximum(summary.counts[at], 1)
    values: FloatArray = np.sort(low[at] + np.clip(share, 0.0, 1.0) * (high[at] - low[at]))
    return values


def rounded_counts(estimate: FloatArray) -> IntArray:
    """Estimated bin counts as whole counts (for permutation nulls)."""
    counts: IntArray = np.rint(estimate).astype(np.int64)
    return counts
