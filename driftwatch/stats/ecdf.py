"""The pooled, sorted sample of two sorted samples, and the empirical CDFs and midranks on it.

scipy's ``ks_2samp``, ``wasserstein_distance``, ``energy_distance`` and Evidently's Cramer-von
Mises test all start by sorting each sample, sorting the pooled sample and locating every pooled
value in each sample with ``searchsorted``. With both samples already sorted, the pooled order
is a stable merge of two sorted runs (timsort merges them in O(n)), and the position of each
value in each sample is a running count: no O(n log n) step is left.

Ties: reference values come before equal current values in the pooled order (a stable merge of
``concat(reference, current)``). At the last position of a run of equal values the running
counts equal scipy's ``searchsorted(..., side="right")``; inside a run they do not, which only
matters where a statistic is read at each pooled value, so those readers keep only run ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import numpy.typing as npt

from driftwatch.stats.samples import FloatArray, IntArray, NumericalPair


@dataclass(frozen=True)
class Pooled:
    """Reference + current merged in ascending order."""

    values: FloatArray
    is_reference: npt.NDArray[np.bool_]
    n_reference: int
    n_current: int

    @classmethod
    def of(cls, pair: NumericalPair) -> Pooled:
        stacked = np.concatenate((pair.reference, pair.current))
        order = np.argsort(stacked, kind="stable")
        return cls(stacked[order], order < pair.n_reference, pair.n_reference, pair.n_current)

    @cached_property
    def reference_seen(self) -> IntArray:
        """Reference values among ``values[: k + 1]``, for each k."""
        return np.cumsum(self.is_reference, dtype=np.int64)

    @cached_property
    def run_end(self) -> npt.NDArray[np.bool_]:
        """True at the last position of each run of equal values."""
        values = self.values
        return np.append(values[1:] != values[:-1], True)

    def cdfs_at_run_ends(self) -> tuple[FloatArray, FloatArray]:
        """Right-continuous reference and current ECDFs at each distinct pooled value, computed
        as scipy computes them (``searchsorted(..., "right") / n``)."""
        ends = np.flatnonzero(self.run_end)
        seen = self.reference_seen[ends]
        reference: FloatArray = seen / self.n_reference
        current: FloatArray = (ends + 1 - seen) / self.n_current
        return reference, current

    def cdfs_between_values(self) -> tuple[FloatArray, FloatArray, FloatArray]:
        """``(deltas, u_cdf, v_cdf)`` of scipy's ``_cdf_distance``: the gap after each pooled
        value but the last, and the two ECDFs on it. Inside a run of ties the ECDFs differ from
        scipy's, but there the gap is exactly 0, so every product with the gap is identical."""
        seen = self.reference_seen[:-1]
        positions = np.arange(1, self.values.size, dtype=np.int64)
        reference: FloatArray = seen / self.n_reference
        current: FloatArray = (positions - seen) / self.n_current
        return np.diff(self.values), reference, current

    def midranks(self) -> tuple[FloatArray, FloatArray]:
        """Average ranks (``scipy.stats.rankdata(method="average")``) of the reference values and
        of the current values in the pooled sample, each in ascending order of value."""
        values = self.values
        size = values.size
        starts = np.flatnonzero(np.concatenate(([True], values[1:] != values[:-1])))
        bounds = np.append(starts, size)
        run = np.repeat(np.arange(starts.size), np.diff(bounds))
        # rankdata: 0.5 * (end + start + 1) with integer start/end of the tie run.
        ranks: FloatArray = 0.5 * (bounds[run + 1] + bounds[run] + 1)
        return ranks[self.is_reference], ranks[~self.is_reference]
