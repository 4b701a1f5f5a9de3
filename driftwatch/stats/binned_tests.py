"""Distances between binned frequency vectors: jensenshannon, psi, kl_div, hellinger.

All four accept numerical and categorical columns; the score is a distance, default threshold
0.1, drift when score >= threshold. Binning is Evidently's (see ``binning``): a numerical column
with more than 20 distinct reference values is cut into Sturges bins of the pooled range,
anything else is counted per distinct value.

- ``jensenshannon``: ``scipy.spatial.distance.jensenshannon(p_ref, p_cur)`` (natural log) on the
  raw frequencies (empty bins stay empty).
- ``psi``: population stability index ``sum((p_ref - p_cur) * ln(p_ref / p_cur))`` with empty
  bins filled.
- ``kl_div``: ``scipy.stats.entropy(p_ref, p_cur)``, KL(ref || cur), with empty bins filled.
- ``hellinger``: Evidently's own binning, different from the other three. Categorical: per
  category frequencies. Numerical: *always* Sturges bins, but over the distinct values of
  reference + current (n = number of distinct values, range = their range), with the
  histogram read as densities times the bin width. Distance ``sqrt(1 - clip(sum sqrt(p*q)))``.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats
from scipy.spatial import distance

from driftwatch.stats.binning import binned_frequencies, histogram_density, sturges_edges
from driftwatch.stats.samples import CategoricalPair, NumericalPair, Pair


def jensenshannon(pair: Pair) -> float:
    reference, current = binned_frequencies(pair, fill_zeros=False)
    return float(distance.jensenshannon(reference, current, None))


def psi(pair: Pair) -> float:
    reference, current = binned_frequencies(pair, fill_zeros=True)
    return float(np.sum((reference - current) * np.log(reference / current)))


def kl_div(pair: Pair) -> float:
    reference, current = binned_frequencies(pair, fill_zeros=True)
    return float(stats.entropy(reference, current))


def hellinger(pair: Pair) -> float:
    if isinstance(pair, CategoricalPair):
        reference = pair.reference_counts / pair.n_reference
        current = pair.current_counts / pair.n_current
        affinity = _sequential_sum(np.sqrt(reference * current))
    else:
        affinity = _numerical_affinity(pair)
    # Evidently adds the terms one by one in a Python loop: so do we, since near "no drift"
    # sqrt(1 - affinity) magnifies any rounding difference in the sum.
    return math.sqrt(1 - float(np.clip(affinity, 0, 1)))


def _numerical_affinity(pair: NumericalPair) -> float:
    # Evidently bins the distinct values: only their count and range matter to Sturges.
    low = min(pair.reference[0], pair.current[0])
    high = max(pair.reference[-1], pair.current[-1])
    edges = sturges_edges(low, high, pair.n_unique, integer=pair.integer_dtype)
    reference = histogram_density(pair.reference, edges)
    current = histogram_density(pair.current, edges)
    bin_width = (edges.max() - edges.min()) / (len(edges) - 1)
    return _sequential_sum(np.sqrt(reference * current) * bin_width)


def _sequential_sum(terms: np.ndarray) -> float:
    total = 0.0
    for term in terms.tolist():
        total += term
    return total
