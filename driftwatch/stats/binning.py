"""Evidently's binning of two samples into comparable frequency vectors, on sorted data.

Mirrors ``evidently.legacy.calculations.stattests.utils.get_binned_data`` (used by
jensenshannon, psi and kl_div) and the histogram step of Evidently's numerical Hellinger
distance, bit for bit where the arithmetic allows:

- a numerical column whose *reference* has more than 20 distinct values is cut into
  ``np.histogram_bin_edges(concat(ref, cur), bins="sturges")`` bins; otherwise (and always for a
  categorical column) each distinct value of reference + current is its own bin;
- frequencies are counts divided by the sample size;
- optionally ("feel_zeroes" in Evidently), empty bins get a small positive frequency: the
  smallest non-zero frequency of that sample / 1e6 if it is <= 1e-4, else 1e-4.

Sturges edges depend only on the size and range of the data, and ``np.histogram`` with explicit
edges counts by binary search on sorted data, so both are reproduced here from the sorted
arrays in O(bins * log n) instead of O(n log n).
"""

from __future__ import annotations

import numpy as np

from driftwatch.stats.samples import FloatArray, IntArray, NumericalPair, Pair

# Evidently bins a numerical column only when its reference has more distinct values than this.
MAX_DISTINCT_FOR_VALUE_BINS = 20


def sturges_edges(low: float, high: float, size: int, *, integer: bool = False) -> FloatArray:
    """``np.histogram_bin_edges(a, bins="sturges")`` for data of ``size`` values spanning
    [low, high]; ``integer`` reproduces numpy's rule for integer dtypes (bin width >= 1)."""
    first, last = float(low), float(high)
    if first == last:
        first, last = first - 0.5, last + 0.5
    width = np.float64(high - low) / (np.log2(size) + 1.0)
    if width:
        if integer and width < 1:
            width = np.float64(1)
        n_bins = int(np.ceil(np.float64(last - first) / width))
    else:
        n_bins = 1
    return np.linspace(first, last, n_bins + 1, endpoint=True, dtype=np.float64)


def histogram_counts(sorted_values: FloatArray, edges: FloatArray) -> IntArray:
    """``np.histogram(values, edges)[0]`` for ascending values: the last edge is inclusive."""
    cumulative = np.concatenate(
        (
            np.searchsorted(sorted_values, edges[:-1], side="left"),
            np.searchsorted(sorted_values, edges[-1:], side="right"),
        )
    )
    return np.diff(cumulative).astype(np.int64)


def histogram_density(sorted_values: FloatArray, edges: FloatArray) -> FloatArray:
    """``np.histogram(values, edges, density=True)[0]`` for ascending values."""
    counts = histogram_counts(sorted_values, edges)
    widths = np.diff(edges).astype(np.float64)
    density: FloatArray = counts / widths / counts.sum()
    return density


def combined_sturges_edges(pair: NumericalPair) -> FloatArray:
    """Sturges edges of reference + current together, as in ``get_binned_data``."""
    low = min(pair.reference[0], pair.current[0])
    high = max(pair.reference[-1], pair.current[-1])
    size = pair.n_reference + pair.n_current
    return sturges_edges(low, high, size, integer=pair.integer_dtype)


def binned_counts(pair: Pair) -> tuple[IntArray, IntArray]:
    """Per-bin reference and current counts, binned as ``get_binned_data`` bins them."""
    if isinstance(pair, NumericalPair) and pair.n_unique_reference > MAX_DISTINCT_FOR_VALUE_BINS:
        edges = combined_sturges_edges(pair)
        return histogram_counts(pair.reference, edges), histogram_counts(pair.current, edges)
    return pair.counts()


def fill_empty_bins(frequencies: FloatArray) -> FloatArray:
    """Evidently's "feel_zeroes": give empty bins a small positive frequency so logs stay finite."""
    smallest = frequencies[frequencies != 0].min()
    filler = smallest / 10**6 if smallest <= 0.0001 else 0.0001
    filled = frequencies.copy()
    filled[filled == 0] = filler
    return filled


def binned_frequencies(pair: Pair, *, fill_zeros: bool) -> tuple[FloatArray, FloatArray]:
    """``get_binned_data(reference, current, feature_type, n, feel_zeroes=fill_zeros)``."""
    reference_counts, current_counts = binned_counts(pair)
    reference = reference_counts / pair.n_reference
    current = current_counts / pair.n_current
    if fill_zeros:
        reference, current = fill_empty_bins(reference), fill_empty_bins(current)
    return reference, current
