"""The calibrated verdict (CONTRACT section 7): a p-value for every column at the window's real
sample sizes, Benjamini-Hochberg across the window's columns, and what the window can detect.

Pure numpy/scipy. The method, for a statistician to check (the README's "Calibrated verdicts"
says the same in prose):

- p-value tests (ks, chisquare, z, anderson, cramer_von_mises, mannw, t_test, g_test,
  fisher_exact, TVD, empirical_mmd, es): the p-value is the test's own score.
- binned distances (jensenshannon, psi, kl_div, hellinger): the score is a function of the
  two samples' counts in bins that depend only on the pooled sample (Sturges edges of the
  pooled range and size, or the pooled distinct values, or the categories). Under no drift
  the rows are exchangeable, so the reference's counts given the pooled counts are
  multivariate hypergeometric: ``NULL_DRAWS`` such draws give the permutation null of the
  score at the exact sizes, in O(bins) each.
- wasserstein and ed: the null is bootstrapped from the baseline (a reference of n rows and a
  current of m rows drawn with replacement from it, scored by the test itself), at sizes
  capped at ``MAX_SIMULATED_ROWS`` and rounded to a size class, and scaled to the real sizes:
  both are root-type (n m / (n + m) times the squared score converges in distribution), so
  the squared score scales with 1/n + 1/m. Prepared once per (baseline column, test, sizes)
  and kept in ``NULL_CACHE``.
- the tail: with R draws an empirical p-value cannot go below 1/(R + 1), while the levels
  after the correction are ~1e-5. Where fewer than ``TAIL_MIN_EXCEEDANCES`` draws reach the
  observed value, p comes from a fitted tail (see ``Null``): for the binned distances a gamma
  fitted by moments to T (their squared score, or the divergence itself: asymptotically a
  scaled chi-square); for wasserstein and ed a generalized Pareto fitted to the top 10% of
  the draws (peaks over a threshold), never lighter than exponential.
- Benjamini-Hochberg at the window's level across its tested columns; a distance must also
  reach its threshold.
- clustered rows (``drift.cluster_by``: many rows per user or session are not independent, and
  every null above then is too narrow): the null is a permutation of whole clusters between
  baseline and window, made for each window (see ``cluster_evidence``).
"""

from __future__ import annotations

import math
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from threading import Lock

import numpy as np
from scipy import optimize, special, stats

from driftwatch.stats import binning, ecdf_tests
from driftwatch.stats.registry import StatTest
from driftwatch.stats.samples import CategoricalPair, FloatArray, IntArray, NumericalPair, Pair

# Clustered rows (drift.cluster_by): draws of the cluster permutation null, per window and
# column, and the pooled rows each draw holds at most (whole clusters are sampled down to it).
CLUSTER_NULL_DRAWS = 400
CLUSTER_MAX_ROWS = 4_000

NULL_DRAWS = 400  # R: draws of the no-drift distribution (binned distances, per window)
BOOTSTRAP_NULL_DRAWS = 1000  # R for wasserstein and ed (prepared once, cached)
PARETO_TAIL_SHARE = 0.1  # the generalized Pareto tail is fitted to the top 10% of draws
INTERVAL_DRAWS = 100  # bootstrap draws of the effect interval
MAX_SIMULATED_ROWS = 1_000  # bootstrap samples (wasserstein, ed) are at most this large
EXACT_SIZE_MAX_ROWS = 64  # up to this many rows a sample is simulated at its exact size
TAIL_MIN_EXCEEDANCES = 10  # fewer null draws at or above the observed: the gamma tail
INTERVAL_LEVEL = 0.95
SEED = 14
# Power the window must have against a change of the threshold's size (p-value tests).
REQUIRED_POWER = 0.8
MEAN_SHIFT_SD = 0.5  # numerical: a shift of the mean by half a standard deviation
MASS_MOVED = 0.1  # categorical: 10% of the rows move from one category to another

BINNED = frozenset({"jensenshannon", "psi", "kl_div", "hellinger"})
BOOTSTRAPPED = frozenset({"wasserstein", "ed"})
ROOT_TYPE = frozenset({"wasserstein", "ed", "jensenshannon", "hellinger"})  # else divergence
# T = score**power, the statistic whose tail is fitted: the squared score of a root-type
# distance (then ~ a weighted chi-square), the score of a divergence; but the normed
# Wasserstein distance itself (an L1 norm: its square's tail is too variable to fit).
POWER = {"wasserstein": 1, "ed": 2, "jensenshannon": 2, "hellinger": 2, "psi": 1, "kl_div": 1}


# -- the null distribution ---------------------------------------------------------------------

PARETO_GRID = 121  # values of theta = shape / scale tried before the fit is refined


def _pareto_profile(theta: FloatArray, excesses: FloatArray) -> tuple[FloatArray, FloatArray]:
    """For each theta = shape / scale > 0, the generalized Pareto shape that maximises the
    likelihood of ``excesses`` (location 0) at that theta, xi(theta) = mean(log1p(theta x)),
    and the negative log-likelihood there per excess, log(xi / theta) + xi + 1."""
    shape = np.log1p(np.multiply.outer(theta, excesses)).mean(axis=-1)
    loss: FloatArray = np.log(shape / theta) + shape + 1
    return shape, loss


def pareto_fit(excesses: FloatArray) -> tuple[float, float]:
    """The maximum likelihood shape and scale of a generalized Pareto distribution (location
    0) fitted to ``excesses``, the shape never below 0: a bounded tail is not trusted beyond
    the draws, so where no positive shape beats the exponential (shape 0, scale the mean
    excess) the fit is that exponential.

    The maximum is found on the profile likelihood in theta = shape / scale (Grimshaw, 1993:
    at a given theta the best shape is mean(log1p(theta x)), in closed form), over a log grid
    of theta from 1e-6 to 1e6 over the largest excess, refined by Brent's method around the
    grid's best. That is ``stats.genpareto.fit(excesses, floc=0)`` (scipy's Nelder-Mead on
    both parameters) with a global search in one dimension instead of a local one in two,
    vectorised (about 1 ms, where scipy's takes 8-16 ms a null)."""
    x = np.asarray(excesses, dtype=np.float64)
    mean, top = float(x.mean()), float(x.max())
    exponential = (0.0, mean)
    if not top > 0:
        return exponential
    logs = np.linspace(math.log(1e-6 / top), math.log(1e6 / top), PARETO_GRID)
    _, losses = _pareto_profile(np.exp(logs), x)
    best = int(np.argmin(losses))
    low, high = logs[max(best - 1, 0)], logs[min(best + 1, logs.size - 1)]
    refined = optimize.minimize_scalar(
        lambda t: float(_pareto_profile(np.exp(np.array([t])), x)[1][0]),
        bounds=(low, high), method="bounded", options={"xatol": 1e-9},
    )  # fmt: skip
    theta = math.exp(float(refined.x))
    shape, loss = _pareto_profile(np.array([theta]), x)
    if not float(loss[0]) < math.log(mean) + 1:  # no positive shape beats the exponential
        return exponential
    return float(shape[0]), float(shape[0]) / theta


@dataclass(frozen=True)
class Null:
    """Draws of T = score**power under no drift, and the tail fitted to them.

    ``tail`` "gamma": a gamma fitted by moments to all draws (``shape``, ``scale``), for the
    binned distances, whose T is asymptotically a scaled chi-square. "pareto": peaks over a
    threshold, a generalized Pareto fitted by maximum likelihood to the excesses of the top
    ``PARETO_TAIL_SHARE`` of draws over ``threshold`` (``shape`` its xi, never below 0: an
    exponential tail at the lightest), for wasserstein and ed, whose null has no closed form
    and, for heavy-tailed columns, a heavy tail."""

    draws: FloatArray  # ascending
    power: int
    tail: str
    shape: float
    scale: float
    threshold: float = 0.0
    share: float = 1.0  # the share of draws above ``threshold``

    @classmethod
    def of(cls, scores: FloatArray, power: int, tail: str) -> Null:
        draws = np.sort(np.asarray(scores, dtype=np.float64) ** power)
        mean, variance = float(draws.mean()), float(draws.var(ddof=1))
        if not (mean > 0 and variance > 0):
            return cls(draws, power, tail, math.nan, math.nan)
        if tail == "gamma":
            return cls(draws, power, tail, mean * mean / variance, variance / mean)
        kept = max(TAIL_MIN_EXCEEDANCES * 2, int(draws.size * PARETO_TAIL_SHARE))
        threshold = float(draws[draws.size - kept - 1] + draws[draws.size - kept]) / 2
        excesses = draws[draws.size - kept :] - threshold
        shape, scale = pareto_fit(excesses)
        return cls(draws, power, tail, shape, scale, threshold, kept / draws.size)

    def scaled(self, factor: float) -> Null:
        """The null at sizes whose 1/n + 1/m is ``factor`` times the simulated ones (root-type
        distances: the squared score scales with 1/n + 1/m)."""
        t = factor ** (self.power / 2)
        return Null(self.draws * t, self.power, self.tail, self.shape, self.scale * t,
                    self.threshold * t, self.share)  # fmt: skip

    @property
    def degenerate(self) -> bool:
        return math.isnan(self.shape)

    def _tail_sf(self, t: float) -> float:
        if self.tail == "gamma":
            return float(stats.gamma.sf(t, self.shape, scale=self.scale))
        excess = max(0.0, t - self.threshold)
        return self.share * float(stats.genpareto.sf(excess, self.shape, scale=self.scale))

    def _tail_isf(self, level: float) -> float:
        if self.tail == "gamma":
            return float(stats.gamma.isf(level, self.shape, scale=self.scale))
        excess = float(stats.genpareto.isf(level / self.share, self.shape, scale=self.scale))
        return self.threshold + excess

    def p_value(self, score: float) -> float:
        t = score**self.power
        draws = self.draws
        if self.degenerate:  # e.g. a constant baseline: anything beyond its draws is drift
            return 1.0 if t <= draws[-1] * (1 + 1e-9) + 1e-300 else 0.0
        exceed = draws.size - int(np.searchsorted(draws, t, side="left"))
        if exceed >= TAIL_MIN_EXCEEDANCES:
            return (1 + exceed) / (draws.size + 1)
        return self._tail_sf(t)

    def critical(self, level: float) -> float:
        """The smallest score whose p-value is at most ``level``."""
        draws = self.draws
        if self.degenerate:
            t = float(draws[-1])
        elif level * (draws.size + 1) >= TAIL_MIN_EXCEEDANCES + 1:
            # the empirical branch: p <= level once at most level * (R + 1) - 1 draws exceed
            allowed = math.floor(level * (draws.size + 1)) - 1
            t = float(draws[draws.size - allowed - 1]) if allowed < draws.size else 0.0
            t = math.nextafter(t, math.inf)
        else:
            t = self._tail_isf(level)
        return float(t ** (1 / self.power))


def _size_class(rows: int) -> int:
    """The sample size a null is simulated at: exact when small, else a power of sqrt(2)
    (so that windows of similar sizes share one prepared null), at most the cap."""
    if rows <= EXACT_SIZE_MAX_ROWS:
        return rows
    return min(MAX_SIMULATED_ROWS, round(2 ** (round(2 * math.log2(rows)) / 2)))


def _rate(n: int, m: int) -> float:
    return 1 / n + 1 / m


class NullCache:
    """Prepared bootstrap nulls, least recently used first out. Keyed by the identity of the
    baseline's values array (an entry is dropped when that array is freed, so a changed
    baseline, being a new array, never reads an old entry), the test and the simulated
    sizes."""

    def __init__(self, size: int = 512) -> None:
        self.size = size
        self._items: OrderedDict[tuple[int, int, str, int, int], Null] = OrderedDict()
        self._lock = Lock()
        self.prepared = 0  # how many nulls were simulated (for tests)

    def _forget(self, owner_id: int) -> None:
        with self._lock:
            for key in [k for k in self._items if k[0] == owner_id]:
                del self._items[key]

    def get(self, baseline: FloatArray, test: StatTest, n: int, m: int) -> Null:
        key = (id(baseline), baseline.size, test.name, n, m)
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
                return found
        null = _bootstrap_null(baseline, test, n, m)
        with self._lock:
            if not any(k[0] == key[0] for k in self._items):
                weakref.finalize(baseline, self._forget, key[0])
            self._items[key] = null
            self.prepared += 1
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return null

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


NULL_CACHE = NullCache()


def _sorted_draws(
    values: FloatArray, size: int, draws: int, rng: np.random.Generator
) -> FloatArray:
    """``draws`` samples of ``size`` values drawn with replacement from ascending ``values``,
    each ascending: ``values`` is sorted, so sorting the drawn positions (small integers, the
    fastest sort numpy has) sorts the sample."""
    dtype = np.int32 if values.size < 2**31 else np.int64
    positions = np.sort(rng.integers(0, values.size, (draws, size), dtype=dtype), axis=1)
    drawn: FloatArray = values[positions]
    return drawn


UNIFORMS_KEPT = 8  # sets of sorted uniforms kept (8 MB each at 1000 draws x 1000 rows)
_uniforms: OrderedDict[tuple[int, int, int], FloatArray] = OrderedDict()
_uniforms_lock = Lock()


def _sorted_uniforms(draws: int, size: int, stream: int) -> FloatArray:
    """``draws`` rows of ``size`` sorted uniforms on [0, 1), seeded by the sizes and
    ``stream`` alone (read-only): every baseline column bootstrapped at these sizes takes its
    rows at the same positions, drawn once a process (the lock: once, however many columns
    ask at the same moment)."""
    key = (draws, size, stream)
    with _uniforms_lock:
        found = _uniforms.get(key)
        if found is None:
            # the order statistics of ``size`` uniforms are the partial sums of size + 1
            # exponentials over their total (Renyi's representation): sorted with no sort
            rng = np.random.default_rng([SEED, stream, size, draws])
            sums = np.cumsum(rng.standard_exponential((draws, size + 1)), axis=1)
            found = np.divide(sums[:, :size], sums[:, size:], out=sums[:, :size])
            found = np.ascontiguousarray(found)
            found.flags.writeable = False
            _uniforms[key] = found
            while len(_uniforms) > UNIFORMS_KEPT:
                _uniforms.popitem(last=False)
        else:
            _uniforms.move_to_end(key)
        return found


def _resampled(values: FloatArray, uniforms: FloatArray) -> FloatArray:
    """Samples drawn with replacement from ascending ``values``, each ascending: row i of
    ``uniforms`` (sorted, on [0, 1)) picks positions floor(u x size), uniform on the rows and
    sorted, so the sample comes out sorted with no sort."""
    dtype = np.int32 if values.size < 2**31 else np.int64
    positions = np.minimum((uniforms * values.size).astype(dtype), values.size - 1)
    drawn: FloatArray = values[positions]
    return drawn


def _quantile_grid(n: int, m: int) -> tuple[FloatArray, IntArray, IntArray]:
    """The steps of two empirical quantile functions of n and m values: widths, and which
    order statistic of each sample holds on each step."""
    grid = np.union1d(np.arange(1, n + 1) / n, np.arange(1, m + 1) / m)
    widths = np.diff(grid, prepend=0.0)
    middles = grid - widths / 2
    return widths, (middles * n).astype(np.int64), (middles * m).astype(np.int64)


def _batch_scores(test: StatTest, reference: FloatArray, current: FloatArray) -> FloatArray:
    """The test's score on each row of two stacks of ascending samples."""
    if test.name == "wasserstein":
        # W1 is the integral of the gap between the two quantile functions (scipy's value);
        # of equal sizes, the mean gap between order statistics of the same rank. (Summed by
        # numpy, not a BLAS matrix product: its threads are slower on arrays this small.)
        norms = np.maximum(reference.std(axis=1), ecdf_tests.WASSERSTEIN_MIN_NORM)
        if reference.shape[1] == current.shape[1]:
            distances = np.abs(reference - current).mean(axis=1)
        else:
            widths, at_reference, at_current = _quantile_grid(reference.shape[1], current.shape[1])
            gaps = np.abs(reference[:, at_reference] - current[:, at_current])
            distances = np.einsum("ij,j->i", gaps, widths)
        scores: FloatArray = distances / norms
        return scores
    if test.name == "ed":
        # scipy's energy_distance: sqrt(2 * integral of (F - G)^2) over the pooled values
        n, m = reference.shape[1], current.shape[1]
        pooled = np.concatenate((reference, current), axis=1)
        order = np.argsort(pooled, axis=1, kind="stable")
        values = np.take_along_axis(pooled, order, axis=1)
        seen = np.cumsum(order < n, axis=1)[:, :-1]
        gaps = seen / n - (np.arange(1, n + m) - seen) / m
        integral = np.sum(gaps * gaps * np.diff(values, axis=1), axis=1)
        energy: FloatArray = np.sqrt(2) * np.sqrt(integral)
        return energy
    return np.array(
        [test.score(NumericalPair(r, c)) for r, c in zip(reference, current, strict=True)]
    )


NULL_BLOCK_DRAWS = 100  # draws scored at a time: their arrays stay in the CPU's caches


def _bootstrap_null(baseline: FloatArray, test: StatTest, n: int, m: int) -> Null:
    references = _sorted_uniforms(BOOTSTRAP_NULL_DRAWS, n, 0)
    currents = _sorted_uniforms(BOOTSTRAP_NULL_DRAWS, m, 1)
    blocks = range(0, BOOTSTRAP_NULL_DRAWS, NULL_BLOCK_DRAWS)
    scores = np.concatenate([
        _batch_scores(test, _resampled(baseline, references[start : start + NULL_BLOCK_DRAWS]),
                      _resampled(baseline, currents[start : start + NULL_BLOCK_DRAWS]))
        for start in blocks
    ])  # fmt: skip
    return Null.of(scores, POWER[test.name], "pareto")


# -- binned distances on many count tables at once ---------------------------------------------


def _binned_counts(pair: Pair, test: StatTest) -> tuple[IntArray, IntArray]:
    """The bin counts the test's score is computed from (see ``binned_tests``)."""
    if test.name != "hellinger" or isinstance(pair, CategoricalPair):
        return binning.binned_counts(pair)
    low = min(pair.reference[0], pair.current[0])
    high = max(pair.reference[-1], pair.current[-1])
    edges = binning.sturges_edges(low, high, pair.n_unique, integer=pair.integer_dtype)
    return (
        binning.histogram_counts(pair.reference, edges),
        binning.histogram_counts(pair.current, edges),
    )


def _fill(frequencies: FloatArray) -> FloatArray:
    """``binning.fill_empty_bins`` on each row."""
    masked = np.where(frequencies > 0, frequencies, np.inf)
    smallest = masked.min(axis=1, keepdims=True)
    filler = np.where(smallest <= 0.0001, smallest / 10**6, 0.0001)
    filled: FloatArray = np.where(frequencies == 0, filler, frequencies)
    return filled


def binned_scores(name: str, reference: IntArray, current: IntArray) -> FloatArray:
    """The score of each row of two count tables (R x bins), as the test computes it."""
    p = reference / reference.sum(axis=1, keepdims=True)
    q = current / current.sum(axis=1, keepdims=True)
    if name == "jensenshannon":
        mid = (p + q) / 2
        divergence = special.rel_entr(p, mid).sum(axis=1) + special.rel_entr(q, mid).sum(axis=1)
        scores: FloatArray = np.sqrt(np.maximum(divergence, 0) / 2)
    elif name == "hellinger":
        scores = np.sqrt(1 - np.clip(np.sqrt(p * q).sum(axis=1), 0, 1))
    elif name == "psi":
        p, q = _fill(p), _fill(q)
        scores = ((p - q) * np.log(p / q)).sum(axis=1)
    elif name == "kl_div":
        p, q = _fill(p), _fill(q)
        p, q = p / p.sum(axis=1, keepdims=True), q / q.sum(axis=1, keepdims=True)
        scores = special.rel_entr(p, q).sum(axis=1)
    else:
        raise ValueError(f"{name!r} is not a binned distance")
    return scores


def _permutation_null(test: StatTest, reference: IntArray, current: IntArray) -> Null:
    total = reference + current
    n = int(reference.sum())
    rng = np.random.default_rng([SEED, n, int(current.sum())])
    drawn = rng.multivariate_hypergeometric(total, n, size=NULL_DRAWS)
    scores = binned_scores(test.name, drawn, total - drawn)
    return Null.of(scores, POWER[test.name], "gamma")


# -- one column ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnEvidence:
    """One column's p-value, and what a verdict at a given level needs."""

    test: StatTest
    score: float
    threshold: float
    p_value: float
    null: Null | None  # distance tests
    n_eff: float
    effect_interval: tuple[float, float] | None

    def critical(self, level: float) -> float | None:
        """Distance tests: the smallest score significant at ``level``."""
        return None if self.null is None else self.null.critical(level)

    def detectable(self, level: float) -> float:
        critical = self.critical(level)
        if critical is None:
            return level
        return max(self.threshold, critical)

    def insufficient(self, level: float) -> bool:
        """Whether the window cannot tell a change of the threshold's size from noise."""
        critical = self.critical(level)
        if critical is not None:
            return critical > self.threshold
        return self.n_eff < required_n_eff(level, categorical=_counts_test(self.test))


def _counts_test(test: StatTest) -> bool:
    return "categorical" in test.kinds


def required_n_eff(level: float, *, categorical: bool) -> float:
    """n m / (n + m) for 80% power of a two-sided test at ``level`` (normal approximation):
    numerical, against a mean shift of 0.5 sd; categorical, against 10% of the rows moving
    between two categories (a change of 0.1 in one category's share, at the largest
    variance, share 0.5)."""
    z = float(stats.norm.isf(level / 2) + stats.norm.isf(1 - REQUIRED_POWER))
    if categorical:
        return z * z * 0.25 / MASS_MOVED**2
    return (z / MEAN_SHIFT_SD) ** 2


def _percentiles(values: FloatArray) -> tuple[float, float]:
    tail = (1 - INTERVAL_LEVEL) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def evidence(
    pair: Pair, test: StatTest, score: float, threshold: float, *, interval: bool = True
) -> ColumnEvidence:
    """The column's p-value at its sizes, its null (distance tests) and its effect interval
    (``interval`` False: none, for simulations that need only the p-value)."""
    n, m = pair.n_reference, pair.n_current
    n_eff = n * m / (n + m)
    if test.pvalue:
        return ColumnEvidence(test, score, threshold, float(score), None, n_eff, None)
    if test.name in BINNED:
        reference, current = _binned_counts(pair, test)
        null = _permutation_null(test, reference, current)
        effect = _binned_interval(test, reference, current) if interval else None
    elif test.name in BOOTSTRAPPED:
        assert isinstance(pair, NumericalPair)
        n_sim, m_sim = _size_class(n), _size_class(m)
        null = NULL_CACHE.get(pair.reference, test, n_sim, m_sim)
        null = null.scaled(_rate(n, m) / _rate(n_sim, m_sim))
        effect = _bootstrap_interval(pair, test, score) if interval else None
    else:  # a distance this module does not know: no calibration
        raise ValueError(f"no calibrated null for stattest {test.name!r}")
    return ColumnEvidence(test, score, threshold, null.p_value(score), null, n_eff, effect)


def _binned_interval(test: StatTest, reference: IntArray, current: IntArray) -> tuple[float, float]:
    """Percentile bootstrap: each sample's counts redrawn from its own proportions."""
    rng = np.random.default_rng([SEED + 1, int(reference.sum()), int(current.sum())])
    n, m = int(reference.sum()), int(current.sum())
    drawn_reference = rng.multinomial(n, reference / n, size=INTERVAL_DRAWS)
    drawn_current = rng.multinomial(m, current / m, size=INTERVAL_DRAWS)
    return _percentiles(binned_scores(test.name, drawn_reference, drawn_current))


def _bootstrap_interval(pair: NumericalPair, test: StatTest, score: float) -> tuple[float, float]:
    """Bootstrap of both samples at capped sizes; its spread around its median, scaled to the
    real sizes by sqrt(1/n + 1/m), around the observed score (the percentile interval itself
    when nothing is capped)."""
    n, m = pair.n_reference, pair.n_current
    n_sim, m_sim = min(n, MAX_SIMULATED_ROWS), min(m, MAX_SIMULATED_ROWS)
    rng = np.random.default_rng([SEED + 2, n, m])
    scores = _batch_scores(
        test,
        _sorted_draws(pair.reference, n_sim, INTERVAL_DRAWS, rng),
        _sorted_draws(pair.current, m_sim, INTERVAL_DRAWS, rng),
    )
    if n_sim == n and m_sim == m:
        return _percentiles(scores)
    factor = math.sqrt(_rate(n, m) / _rate(n_sim, m_sim))
    low, high = _percentiles(scores)
    middle = float(np.median(scores))
    return max(0.0, score - (middle - low) * factor), score + (high - middle) * factor


# -- the window: Benjamini-Hochberg -------------------------------------------------------------


def benjamini_hochberg(p_values: Sequence[float], alpha: float) -> list[bool]:
    """Which hypotheses the Benjamini-Hochberg step-up procedure rejects at ``alpha``: all
    with p <= alpha k / K for the largest k such that the k-th smallest p is <= alpha k / K."""
    count = len(p_values)
    if count == 0:
        return []
    ordered = np.sort(np.asarray(p_values, dtype=np.float64))
    passing = np.flatnonzero(ordered <= alpha * np.arange(1, count + 1) / count)
    if passing.size == 0:
        return [False] * count
    cutoff = ordered[passing[-1]]
    return [bool(p <= cutoff) for p in p_values]


@dataclass(frozen=True)
class Verdict:
    drifted: bool
    verdict: str  # "drift", "no_drift" or "insufficient"
    level: float  # the column's level after the correction
    detectable: float


def verdicts(columns: Sequence[ColumnEvidence], alpha: float) -> list[Verdict]:
    """The window's verdicts: BH across ``columns`` at ``alpha``; a distance must also reach
    its threshold. A column's level is BH's at the window's rejections: alpha k / K when
    rejected, alpha (k + 1) / K when not (what its p-value would have needed)."""
    rejected = benjamini_hochberg([c.p_value for c in columns], alpha)
    count, k = len(columns), sum(rejected)
    out: list[Verdict] = []
    for column, rejects in zip(columns, rejected, strict=True):
        level = alpha * (k if rejects else k + 1) / count
        drifted = rejects and (
            column.test.pvalue or column.test.is_drift(column.score, column.threshold)
        )
        if drifted:
            verdict = "drift"
        elif column.insufficient(level):
            verdict = "insufficient"
        else:
            verdict = "no_drift"
        out.append(Verdict(drifted, verdict, level, column.detectable(level)))
    return out


# -- clustered rows: whole clusters permuted ----------------------------------------------------


@dataclass(frozen=True)
class Clusters:
    """Which cluster (the unit rows come in: a user, a session) each value of a column's two
    samples belongs to. ``reference`` and ``current`` hold one cluster number per value, aligned
    with the pair: a numerical pair's sorted values; a categorical pair's rows, whose category
    (an index into the pair's categories) ``reference_categories`` and ``current_categories``
    give. Cluster numbers are per sample: the same user in baseline and window is two clusters
    (their rows lie in different times)."""

    reference: IntArray
    current: IntArray
    reference_categories: IntArray | None = None
    current_categories: IntArray | None = None

    @property
    def counts(self) -> tuple[int, int]:
        """How many clusters each sample holds."""
        return _clusters_in(self.reference), _clusters_in(self.current)


def _clusters_in(units: IntArray) -> int:
    return int(np.unique(units).size)


@dataclass(frozen=True)
class _Pooled:
    """Both samples' values grouped by cluster: ``order`` lists the pooled rows cluster by
    cluster, ``starts``/``sizes`` each cluster's run in it; clusters ``[0, k_reference)`` are
    the reference's."""

    values: FloatArray | IntArray  # numerical values, or category indexes
    order: IntArray
    starts: IntArray
    sizes: IntArray
    k_reference: int
    k_current: int

    @classmethod
    def of(cls, values: FloatArray | IntArray, reference: IntArray, current: IntArray) -> _Pooled:
        _, reference_units = np.unique(reference, return_inverse=True)
        _, current_units = np.unique(current, return_inverse=True)
        k_reference = int(reference_units.max()) + 1 if reference.size else 0
        units = np.concatenate((reference_units, current_units + k_reference))
        order = np.argsort(units, kind="stable")
        sizes = np.bincount(units, minlength=k_reference + int(current_units.max(initial=-1)) + 1)
        starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
        k_current = sizes.size - k_reference
        return cls(values, order, starts, sizes, k_reference, k_current)

    def rows(self, clusters: IntArray) -> IntArray:
        """The pooled rows of ``clusters``, in one vectorised gather."""
        sizes = self.sizes[clusters]
        total = int(sizes.sum())
        offsets = np.repeat(self.starts[clusters] - np.cumsum(sizes) + sizes, sizes)
        rows: IntArray = self.order[offsets + np.arange(total)]
        return rows

    def drawn(self, k_reference: int, k_current: int, rng: np.random.Generator,
              *, replace: bool) -> tuple[IntArray, IntArray]:  # fmt: skip
        """Clusters for one draw. ``replace`` False: a permutation, ``k_reference`` and
        ``k_current`` disjoint clusters from all of them; True: a bootstrap, each sample's
        clusters drawn with replacement from its own."""
        if replace:
            return (
                rng.integers(0, self.k_reference, k_reference),
                self.k_reference + rng.integers(0, self.k_current, k_current),
            )
        chosen = rng.permutation(self.k_reference + self.k_current)[: k_reference + k_current]
        return chosen[:k_reference], chosen[k_reference:]


def _cluster_pair(pooled: _Pooled, pair: Pair, reference: IntArray, current: IntArray) -> Pair:
    if isinstance(pair, NumericalPair):
        return NumericalPair(
            np.sort(pooled.values[pooled.rows(reference)]),
            np.sort(pooled.values[pooled.rows(current)]),
            integer_dtype=pair.integer_dtype,
        )
    size = len(pair.categories)
    return CategoricalPair(
        reference_counts=np.bincount(pooled.values[pooled.rows(reference)], minlength=size),
        current_counts=np.bincount(pooled.values[pooled.rows(current)], minlength=size),
        categories=pair.categories,
    )


def _pooled(pair: Pair, clusters: Clusters) -> _Pooled:
    if isinstance(pair, NumericalPair):
        values: FloatArray | IntArray = np.concatenate((pair.reference, pair.current))
    else:
        assert clusters.reference_categories is not None
        assert clusters.current_categories is not None
        values = np.concatenate((clusters.reference_categories, clusters.current_categories))
    return _Pooled.of(values, clusters.reference, clusters.current)


def _ks_statistic(pair: Pair) -> float:
    assert isinstance(pair, NumericalPair)
    return ecdf_tests.ks_statistic(pair)


# p-value tests whose cluster null is built on a cheaper statistic that orders windows as the
# p-value does at fixed sizes, root-type (sqrt(n m / (n + m)) times it converges), so that its
# draws are scaled to the real sizes as a distance's: ks's D (scipy's exact p-value costs
# milliseconds a draw).
CLUSTER_STATISTICS = {"ks": _ks_statistic}


def _cluster_scores(
    test: StatTest, pair: Pair, pooled: _Pooled, draws: int, *, replace: bool, seed: int
) -> tuple[FloatArray, FloatArray]:
    """The test's score on ``draws`` draws of whole clusters, and each draw's 1/n + 1/m.
    Every draw holds about ``CLUSTER_MAX_ROWS`` pooled rows at most: each sample keeps the same
    share of its clusters."""
    n, m = pair.n_reference, pair.n_current
    share = min(1.0, CLUSTER_MAX_ROWS / (n + m))
    k_reference = max(2, round(pooled.k_reference * share))
    k_current = max(2, round(pooled.k_current * share))
    if not replace:
        k_reference = min(k_reference, pooled.k_reference)
        k_current = min(k_current, pooled.k_current)
    rng = np.random.default_rng([seed, n, m, pooled.k_reference, pooled.k_current])
    scores = np.empty(draws)
    rates = np.empty(draws)
    score = CLUSTER_STATISTICS.get(test.name, test.score) if not replace else test.score
    for draw in range(draws):
        reference, current = pooled.drawn(k_reference, k_current, rng, replace=replace)
        drawn = _cluster_pair(pooled, pair, reference, current)
        scores[draw] = score(drawn)
        rates[draw] = _rate(max(drawn.n_reference, 1), max(drawn.n_current, 1))
    return scores, rates


def _minus_log(p_values: FloatArray | float) -> FloatArray:
    clipped: FloatArray = -np.log(np.clip(p_values, 1e-300, 1.0))
    return clipped


def cluster_evidence(
    pair: Pair, test: StatTest, score: float, threshold: float, clusters: Clusters,
    *, interval: bool = True,
) -> ColumnEvidence:  # fmt: skip
    """The column's evidence when its rows come in clusters: the null of its score from
    ``CLUSTER_NULL_DRAWS`` permutations of whole clusters between baseline and window.

    Draws are made at most ``CLUSTER_MAX_ROWS`` pooled rows large (each sample keeps the same
    share of its clusters, so the cluster sizes, and with them the design effect, stay what they
    are). A distance's draws are scaled to the window's real sizes by sqrt(1/n + 1/m) over the
    draw's, as the bootstrap null is; a p-value test's statistic is -log p, whose distribution
    under a cluster null depends on the design effect and not on the number of clusters, so it
    is taken as drawn (ks: its D instead, scaled as a distance, see ``CLUSTER_STATISTICS``).
    The tail beyond the draws is a generalized Pareto, as for the bootstrap
    null. For p-value tests the window's sample size in the power check counts clusters, not
    rows (conservative: a design effect of the whole cluster size)."""
    pooled = _pooled(pair, clusters)
    n, m = pair.n_reference, pair.n_current
    scores, rates = _cluster_scores(
        test, pair, pooled, CLUSTER_NULL_DRAWS, replace=False, seed=SEED
    )
    k_reference, k_current = pooled.k_reference, pooled.k_current
    n_eff = k_reference * k_current / max(1, k_reference + k_current)
    statistic = CLUSTER_STATISTICS.get(test.name)
    if statistic is not None:
        null = Null.of(scores * np.sqrt(_rate(n, m) / rates), 2, "pareto")
        p_value = null.p_value(statistic(pair))
        return ColumnEvidence(test, score, threshold, p_value, None, n_eff, None)
    if test.pvalue:
        null = Null.of(_minus_log(scores), 1, "pareto")
        p_value = null.p_value(float(_minus_log(score)))
        return ColumnEvidence(test, score, threshold, p_value, None, n_eff, None)
    power = POWER.get(test.name, 1)
    scaled = scores * np.sqrt(_rate(n, m) / rates)
    null = Null.of(scaled, power, "pareto")
    effect = _cluster_interval(test, pair, pooled, score) if interval else None
    return ColumnEvidence(test, score, threshold, null.p_value(score), null, n_eff, effect)


def _cluster_interval(
    test: StatTest, pair: Pair, pooled: _Pooled, score: float
) -> tuple[float, float]:
    """A cluster bootstrap: each sample's clusters redrawn with replacement from its own,
    spread scaled to the real sizes as in ``_bootstrap_interval``."""
    scores, rates = _cluster_scores(test, pair, pooled, INTERVAL_DRAWS, replace=True,
                                    seed=SEED + 3)  # fmt: skip
    factor = np.sqrt(_rate(pair.n_reference, pair.n_current) / rates)
    middle = float(np.median(scores))
    deviations = (scores - middle) * factor
    low, high = _percentiles(deviations)
    return max(0.0, score + low), score + high
