"""Drift scores of a window known only by its summary (``summaries.NumericalSummary``) against
the baseline's exact sorted values, each with a bound on its error.

The window's CDF is bounded everywhere by its fine bins: for any t, with the bins sorted,

- ``lower(t)``: the count of the bins whose upper bound is below t (every value in them < t),
  ``n`` from the window's maximum on;
- ``upper(t)``: the count of the bins whose lower bound is at most t (no value of a later bin
  is <= t), 0 below the window's minimum;

so ``lower(t) <= #{x < t} <= #{x <= t} <= upper(t)``; where a KLL sketch is kept, its rank
+- ``KLL_RANK_ERROR`` narrows the two (a 99% bound, not a certain one). The point estimate
spreads each bin's count evenly over its width (rounded to whole counts, clamped to the
bounds). Each score is evaluated at the point estimate; its bound comes from the extreme
values the CDF bounds allow (see each function, and the README's Summaries section).

A column whose values the summary counts exactly (at most 32 distinct values) needs none of
this: ``exact_values`` gives the window's sorted values, and every test runs as on rows.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
from datasketches import frequent_items_error_type
from scipy.spatial import distance
from scipy.stats import _stats_py

from driftwatch.stats import binning, ecdf_tests
from driftwatch.stats.kolmogorov import kstwo_sf
from driftwatch.stats.samples import FloatArray, IntArray
from driftwatch.stats.summaries import (
    FREQUENT_EPSILON,
    KLL_RANK_ERROR,
    CategoricalSummary,
    NumericalSummary,
    bin_bounds,
)

# Tests computed from a summary with a bound; any other needs raw rows (or exact values).
BOUNDED = frozenset({"ks", "wasserstein", "jensenshannon", "psi", "kl_div"})


_NO_FALSE_NEGATIVES = frequent_items_error_type.NO_FALSE_NEGATIVES
SKETCH_GRID = 2000  # pieces cut at the sketch's quantiles, where one is kept
JS_MAX = math.log(2)  # the largest JS divergence (natural log): disjoint supports


class NeedsRows(ValueError):
    """The test cannot be computed with a bound from this summary."""


def exact_values(summary: NumericalSummary) -> FloatArray | None:
    """The window's sorted values when the summary counts them exactly, else None."""
    if summary.values is None:
        return None
    values = np.fromiter(summary.values.keys(), dtype=np.float64, count=len(summary.values))
    counts = np.fromiter(summary.values.values(), dtype=np.int64, count=len(summary.values))
    order = np.argsort(values)
    return np.repeat(values[order], counts[order])


class WindowCdf:
    """Bounds and an estimate of the window's count of values <= t (or < t), from its bins."""

    def __init__(self, summary: NumericalSummary) -> None:
        self.n = summary.count
        self.minimum, self.maximum = summary.minimum, summary.maximum
        self.low, self.high = bin_bounds(summary.keys)
        self.counts = summary.counts.astype(np.float64)
        self.cumulative = np.concatenate(([0.0], np.cumsum(self.counts)))
        self.kll = summary.kll

    def bounds(self, points: FloatArray) -> tuple[FloatArray, FloatArray]:
        below = self.cumulative[np.searchsorted(self.high, points, side="left")]
        upper = self.cumulative[np.searchsorted(self.low, points, side="right")]
        lower = np.where(points > self.maximum, float(self.n), below)
        upper = np.where(points < self.minimum, 0.0, upper)
        if self.kll is not None and len(points):
            ranks = np.asarray(self.kll.get_cdf(points.tolist(), True)[:-1]) * self.n
            slack = KLL_RANK_ERROR * self.n
            lower = np.maximum(lower, np.floor(ranks - slack))
            upper = np.minimum(upper, np.ceil(ranks + slack))
            lower = np.minimum(lower, upper)
        return lower, upper

    def estimate(self, points: FloatArray) -> FloatArray:
        """Counts <= t, each bin's values spread evenly over its width, rounded and clamped."""
        at = np.clip(np.searchsorted(self.low, points, side="right") - 1, 0, None)
        if not len(self.low):
            return np.zeros(len(points))
        width = self.high[at] - self.low[at]
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            share = np.where(width > 0, (points - self.low[at]) / width, 1.0)
        share = np.clip(np.nan_to_num(share, nan=1.0), 0.0, 1.0)
        guess = np.rint(self.cumulative[at] + self.counts[at] * share)
        if self.kll is not None:  # kept where it ranks better than the bins
            guess = np.rint(np.asarray(self.kll.get_cdf(points.tolist(), True)[:-1]) * self.n)
        lower, upper = self.bounds(points)
        clamped: FloatArray = np.clip(guess, lower, upper)
        return clamped


@dataclass(frozen=True)
class Bounded:
    """A score from a summary: its estimate, the interval the exact score lies in, and for
    p-value tests the p-value of the least drifted statistic allowed (for verdicts)."""

    score: float
    low: float
    high: float
    conservative: float  # ks: p at D - bound; others: the score

    @property
    def max_error(self) -> float:
        return max(self.high - self.score, self.score - self.low, 0.0)


def _grid(reference: FloatArray, cdf: WindowCdf) -> FloatArray:
    """The points where the window's bounds change (its bins' edges, just past their upper
    ends, its min and max), and the reference's ends: on each piece between two consecutive
    points the bounds are constant, and the reference CDF is read at the piece's ends."""
    low = min(float(reference[0]), cdf.minimum)
    high = max(float(reference[-1]), cdf.maximum)
    points = np.concatenate((
        cdf.low, cdf.high, np.nextafter(cdf.high, np.inf),
        [cdf.minimum, cdf.maximum, reference[0], reference[-1], np.nextafter(high, np.inf)],
    ))  # fmt: skip
    if cdf.kll is not None:  # the sketch's ranks change at its items: pieces between them
        shares = np.linspace(0.0, 1.0, SKETCH_GRID + 1).tolist()
        points = np.concatenate((points, np.asarray(cdf.kll.get_quantiles(shares))))
    points = points[np.isfinite(points)]
    return np.unique(np.clip(points, low, np.nextafter(high, np.inf)))


class ReferenceCdf:
    """The baseline's exact CDF ``F(t) = #{ref <= t} / n``, its integral and its quantiles,
    at any points, by binary search (no pass over the values per point)."""

    def __init__(self, reference: FloatArray) -> None:
        self.values = reference
        self.n = len(reference)
        steps = np.arange(1, self.n + 1) / self.n  # F on [ref[k], ref[k+1])
        self.integral = np.concatenate(([0.0], np.cumsum(np.diff(reference) * steps[:-1])))

    def at(self, points: FloatArray, *, left: bool = False) -> FloatArray:
        side: Literal["left", "right"] = "left" if left else "right"
        found: FloatArray = np.searchsorted(self.values, points, side=side) / self.n
        return found

    def integrate(self, points: FloatArray) -> FloatArray:
        """integral of F from ref[0] to each point (0 below ref[0])."""
        k = np.searchsorted(self.values, points, side="right") - 1
        inside = np.clip(k, 0, None)
        value = self.integral[inside] + (points - self.values[inside]) * (inside + 1) / self.n
        out: FloatArray = np.where(k < 0, 0.0, value)
        return out

    def quantile(self, shares: FloatArray) -> FloatArray:
        """The smallest t with F(t) >= share (-inf for shares <= 0, +inf above 1)."""
        rank = np.ceil(shares * self.n - 1e-9).astype(np.int64)
        inside = self.values[np.clip(rank - 1, 0, self.n - 1)]
        out: FloatArray = np.where(rank <= 0, -np.inf, np.where(rank > self.n, np.inf, inside))
        return out

    def above(self, level: FloatArray, a: FloatArray, b: FloatArray) -> FloatArray:
        """integral over [a, b] of max(F - level, 0), per piece."""
        start = np.clip(self.quantile(level), a, b)
        out: FloatArray = self.integrate(b) - self.integrate(start) - level * (b - start)
        return np.maximum(out, 0.0)

    def below(self, level: FloatArray, a: FloatArray, b: FloatArray) -> FloatArray:
        """integral over [a, b] of max(level - F, 0), per piece."""
        stop = np.clip(self.quantile(level), a, b)
        out: FloatArray = level * (stop - a) - (self.integrate(stop) - self.integrate(a))
        return np.maximum(out, 0.0)


def ks_p_value(statistic: float, n: int, m: int) -> float:
    """The two-sample KS p-value of ``statistic`` as ``scipy.stats.ks_2samp`` (method "auto")
    gives it: its exact distribution up to 10,000 values a sample, else the asymptotic
    ``kstwo`` at the effective size. Either is non-increasing in the statistic."""
    statistic = float(np.clip(statistic, 0, 1))
    if max(n, m) <= ecdf_tests.KS_EXACT_MAX_N:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            success, _d, p = _stats_py._attempt_exact_2kssamp(
                n, m, math.gcd(n, m), statistic, "two-sided"
            )
        if success:
            return float(np.clip(p, 0, 1))
    larger, smaller = sorted([float(n), float(m)], reverse=True)
    effective = larger * smaller / (larger + smaller)
    return float(np.clip(kstwo_sf(statistic, float(np.round(effective))), 0, 1))


def ks(reference: FloatArray, summary: NumericalSummary) -> Bounded:
    """D between the bounds over the pieces where the window's bounds L, U are constant (the
    reference CDF is monotone, so its extremes on a piece are at its ends): D_high = max of
    F_ref(b-) - L and U - F_ref(a), D_low = max of F_ref(b-) - U and L - F_ref(a); the
    p-value at D estimated, and at D_low (the verdict's)."""
    cdf = WindowCdf(summary)
    ref = ReferenceCdf(reference)
    n, m = len(reference), cdf.n
    points = _grid(reference, cdf)
    a, b = points[:-1], points[1:]
    lower, upper = cdf.bounds(a)
    lower, upper = lower / m, upper / m
    if cdf.kll is not None:  # the sketch's ranks may rise inside a piece: its end's bound
        upper = np.maximum(upper, cdf.bounds(np.nextafter(b, -np.inf))[1] / m)
    f_start, f_end = ref.at(a), ref.at(b, left=True)
    d_high = float(np.max(np.maximum(f_end - lower, upper - f_start), initial=0.0))
    d_low = float(np.max(np.maximum(f_end - upper, lower - f_start), initial=0.0))
    estimate = cdf.estimate(points) / m
    d_hat = max(
        float(np.max(np.abs(ref.at(points) - estimate))),
        float(np.max(np.abs(f_end - cdf.estimate(np.nextafter(b, -np.inf)) / m))),
    )
    d_hat = min(max(d_hat, d_low), d_high)
    p = ks_p_value(d_hat, n, m)
    p_low, p_high = ks_p_value(d_high, n, m), ks_p_value(d_low, n, m)
    return Bounded(score=p, low=p_low, high=p_high, conservative=p_high)


def wasserstein(reference: FloatArray, summary: NumericalSummary) -> Bounded:
    """W1 = integral of |F_ref - F_cur| over the pieces where the window's bounds L <= U are
    constant, each piece's integral taken exactly against the reference's CDF (by its
    integral and quantiles): at most |F_ref - (L+U)/2| + (U-L)/2, at least
    max(0, F_ref - U, L - F_ref); the estimate with the window's CDF at the piece's middle.
    Normed by max(std(ref), 0.001) as Evidently."""
    cdf = WindowCdf(summary)
    ref = ReferenceCdf(reference)
    m = cdf.n
    points = _grid(reference, cdf)
    a, b = points[:-1], points[1:]
    lower, upper = cdf.bounds(a)
    lower, upper = lower / m, upper / m
    if cdf.kll is not None:
        upper = np.maximum(upper, cdf.bounds(np.nextafter(b, -np.inf))[1] / m)
    middle = (lower + upper) / 2
    spread = ref.above(middle, a, b) + ref.below(middle, a, b)
    high = float(np.sum(spread + (upper - lower) / 2 * (b - a)))
    low = float(np.sum(ref.above(upper, a, b) + ref.below(lower, a, b)))
    guess_level = np.clip(cdf.estimate((a + b) / 2) / m, lower, upper)
    guess = float(np.sum(ref.above(guess_level, a, b) + ref.below(guess_level, a, b)))
    guess = min(max(guess, low), high)
    norm = max(float(np.std(reference)), ecdf_tests.WASSERSTEIN_MIN_NORM)
    return Bounded(score=guess / norm, low=low / norm, high=high / norm, conservative=guess / norm)


def binned_counts(
    reference: FloatArray, summary: NumericalSummary
) -> tuple[IntArray, FloatArray, FloatArray, FloatArray]:
    """Evidently's Sturges bins of the pooled sample (edges from the pooled min, max and size:
    exact); the reference's counts, and the window's estimated counts with their bounds."""
    if len(np.unique(reference)) <= binning.MAX_DISTINCT_FOR_VALUE_BINS:
        raise NeedsRows("the baseline has at most 20 distinct values: bins per value")
    cdf = WindowCdf(summary)
    low = min(float(reference[0]), cdf.minimum)
    high = max(float(reference[-1]), cdf.maximum)
    # More than 32 distinct values: an integer column spans at least 32, so numpy's integer
    # rule (width >= 1) cannot change the edges below 2**31 values.
    edges = binning.sturges_edges(low, high, len(reference) + cdf.n)
    reference_counts = binning.histogram_counts(reference, edges)
    inner = edges[1:-1]
    lower, upper = cdf.bounds(inner)
    guess = cdf.estimate(np.nextafter(inner, -np.inf))  # counts < edge
    total = np.array([float(cdf.n)])
    cum_low = np.concatenate(([0.0], lower, total))
    cum_high = np.concatenate(([0.0], upper, total))
    cum_guess = np.concatenate(([0.0], guess, total))
    estimate = np.diff(cum_guess)
    minimum = np.clip(cum_low[1:] - cum_high[:-1], 0, None)
    maximum = cum_high[1:] - cum_low[:-1]
    return reference_counts, estimate, minimum, maximum


Term = Callable[[FloatArray, FloatArray], FloatArray]


def _extremes(term: Term, p: FloatArray, low: FloatArray, high: FloatArray) -> tuple[float, float]:
    """Bounds of sum_i term(p_i, q_i) over q_i in [low_i, high_i], each term convex in q with
    its minimum at q = p or at an end."""
    at = [term(p, low), term(p, high), term(p, np.clip(p, low, high))]
    return float(np.sum(np.minimum.reduce(at))), float(np.sum(np.maximum.reduce(at)))


def _xlogy_ratio(a: FloatArray, b: FloatArray) -> FloatArray:
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(a > 0, a * np.log(a / b), 0.0)
    return np.asarray(out, dtype=np.float64)


def _js_term(p: FloatArray, q: FloatArray) -> FloatArray:
    mid = (p + q) / 2
    return (_xlogy_ratio(p, mid) + _xlogy_ratio(q, mid)) / 2


def _filler(smallest: float) -> float:
    return smallest / 10**6 if smallest <= 0.0001 else 0.0001


def _filled_range(low: FloatArray, high: FloatArray, m: int) -> tuple[FloatArray, FloatArray]:
    """Bounds of each bin's frequency after Evidently's filling of empty bins, whose filler
    depends on the smallest non-zero frequency (itself bounded)."""
    possible = high > 0
    surely = low > 0
    smallest_low = float(np.min(np.maximum(low[possible], 1 / m))) if possible.any() else 1 / m
    smallest_high = float(np.min(high[surely])) if surely.any() else float(np.max(high))
    fill_low, fill_high = _filler(smallest_low), _filler(smallest_high)
    empty_possible = low <= 0
    new_low = np.where(empty_possible, np.minimum(fill_low, np.where(possible, 1 / m, fill_low)),
                       low)  # fmt: skip
    new_high = np.where(empty_possible, np.maximum(fill_high, high), high)
    return new_low, new_high


def binned(name: str, reference: FloatArray, summary: NumericalSummary) -> Bounded:
    """jensenshannon, psi, kl_div on the window's Sturges bins: the estimate from the
    estimated counts (computed as on rows), bounds from each bin's count range: every term is
    convex in the bin's window frequency, so it lies between its values at the ends and at
    q = p; summed over bins (a relaxation: it ignores that the counts sum to n)."""
    reference_counts, estimate, minimum, maximum = binned_counts(reference, summary)
    n, m = len(reference), summary.count
    p, q = reference_counts / n, estimate / m
    low, high = minimum / m, maximum / m
    if name == "jensenshannon":
        score = float(distance.jensenshannon(p, q, None))
        total_low, total_high = _extremes(_js_term, p, low, high)
        return _clamped(score, math.sqrt(max(total_low, 0.0)), math.sqrt(min(total_high, JS_MAX)))
    p_filled = binning.fill_empty_bins(p)
    q_filled = binning.fill_empty_bins(q)
    low, high = _filled_range(low, high, m)
    if name == "psi":
        score = float(np.sum((p_filled - q_filled) * np.log(p_filled / q_filled)))

        def psi_term(a: FloatArray, b: FloatArray) -> FloatArray:
            return np.asarray((a - b) * np.log(a / b), dtype=np.float64)

        return _clamped(score, *_extremes(psi_term, p_filled, low, high))
    if name == "kl_div":
        # scipy normalizes both: KL = sum p' ln p' - sum p' ln q + ln(sum q), p' = p / sum p
        p_norm = p_filled / p_filled.sum()
        q_norm = q_filled / q_filled.sum()
        score = float(np.sum(_xlogy_ratio(p_norm, q_norm)))
        entropy_part = float(np.sum(_xlogy_ratio(p_norm, np.ones(len(p_norm)))))

        def cross_term(a: FloatArray, b: FloatArray) -> FloatArray:
            return np.asarray(-a * np.log(b), dtype=np.float64)

        cross_low, cross_high = _extremes(cross_term, p_norm, low, high)
        sum_high = 1.0 + float(np.sum(np.where(minimum <= 0, high, 0.0)))
        return _clamped(score, entropy_part + cross_low, entropy_part + cross_high
                        + math.log(sum_high))  # fmt: skip
    raise NeedsRows(f"{name!r} is not computed from summaries")


def frequent_counts(
    categories: list[str], summary: CategoricalSummary
) -> tuple[FloatArray, FloatArray, FloatArray, dict[str, int]]:
    """A window past the category limit (frequent items) against the baseline's categories:
    per baseline category its estimated count and bounds, then one last entry for the rest
    (categories the baseline never saw, whose own split no distance with p = 0 terms linear
    in q needs); and the unseen categories the sketch lists, with their estimates."""
    assert summary.frequent is not None
    m = summary.count
    error = math.ceil(FREQUENT_EPSILON * m)  # any category's count is within this
    listed = {item[0]: item for item in summary.frequent.get_frequent_items(_NO_FALSE_NEGATIVES)}
    estimate: list[float] = []
    low: list[float] = []
    high: list[float] = []
    for name in categories:
        found = listed.get(name)
        counted = (0.0, 0.0, float(error)) if found is None else (
            float(found[1]), float(found[2]), float(found[3]))  # fmt: skip
        estimate.append(counted[0])
        low.append(counted[1])
        high.append(counted[2])
    known = set(categories)
    unseen = {name: int(item[1]) for name, item in listed.items() if name not in known}
    estimate.append(max(0.0, m - sum(estimate)))
    low.append(max(0.0, m - sum(high)))
    high.append(max(0.0, m - sum(low[:-1])))
    return np.asarray(estimate), np.asarray(low), np.asarray(high), unseen


def categorical_jensenshannon(
    categories: list[str], reference_counts: IntArray, summary: CategoricalSummary
) -> Bounded:
    """jensenshannon of a categorical column past the category limit: the baseline's exact
    frequencies against the window's frequent-items estimates (every count within
    ``FREQUENT_EPSILON`` of the window's size), the categories the baseline never saw pooled
    (their JS terms, q ln 2 / 2, are linear in q); bounds as for the binned distances."""
    estimate, low, high, _unseen = frequent_counts(categories, summary)
    m = summary.count
    p = np.append(reference_counts / reference_counts.sum(), 0.0)
    score = float(distance.jensenshannon(p, estimate / m, None))
    total_low, total_high = _extremes(_js_term, p, low / m, high / m)
    return _clamped(score, math.sqrt(max(total_low, 0.0)), math.sqrt(min(total_high, JS_MAX)))


def _clamped(score: float, low: float, high: float) -> Bounded:
    low, high = min(low, score), max(high, score)
    return Bounded(score=score, low=low, high=high, conservative=score)


def score(name: str, reference: FloatArray, summary: NumericalSummary) -> Bounded:
    """The named test's score from the window's summary, with its bounds."""
    if name == "ks":
        return ks(reference, summary)
    if name == "wasserstein":
        return wasserstein(reference, summary)
    if name in {"jensenshannon", "psi", "kl_div"}:
        return binned(name, reference, summary)
    raise NeedsRows(
        f"{name!r} needs the window's raw rows (from summaries: {', '.join(sorted(BOUNDED))})"
    )


def window_histogram(summary: NumericalSummary, edges: FloatArray) -> tuple[list[int], int, int]:
    """Estimated counts of the window in ``edges`` (last closed), below and above: charts."""
    cdf = WindowCdf(summary)
    below_edges = cdf.estimate(np.nextafter(edges, -np.inf))
    positions = below_edges.copy()
    positions[-1] = cdf.estimate(edges[-1:])[0]
    return (np.diff(positions).astype(np.int64).tolist(), int(positions[0]),
            int(cdf.n - positions[-1]))  # fmt: skip
