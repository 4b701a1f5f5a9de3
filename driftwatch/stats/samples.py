"""The two samples a drift test compares, cleaned the way Evidently cleans a column.

Evidently's ``get_one_column_drift`` replaces +-inf by NaN and drops missing values before it
picks or runs a test, so both pairs hold only present, finite values:

- ``NumericalPair``: reference and current values of a numerical column, float64, each sorted
  ascending. Reference data is prepared once, so sorting is paid once and every test works on
  sorted arrays (searchsorted, merges, run lengths) instead of re-sorting 1M values.
- ``CategoricalPair``: per-category counts of a categorical column, aligned over the union of the
  categories seen in either sample.

How a column reaches the count-based tests (chisquare, z, g_test, fisher_exact, TVD and the
"few distinct values" path of jensenshannon/psi/kl_div): Evidently counts the column's values
(``value_counts``) over the union of the distinct values of both samples. A categorical column
already is those counts (``CategoricalPair``). A numerical column gets them from
``NumericalPair.value_counts()``: the union of the distinct values, ascending, with the number of
reference and current rows equal to each. Either way a category present in only one sample has a
zero count on the other side, as in Evidently.

Category order matters only to the z-test, which compares Evidently's ``sorted(keys)[0]`` against
the rest: ``from_values`` keeps categories in the order Python sorts the original values (numbers
numerically, strings lexicographically); values that do not sort together (e.g. ``1`` and ``"a"``,
where Evidently's ``sorted`` raises) fall back to ordering by type name, then text.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def distinct_sorted(values: FloatArray) -> tuple[FloatArray, IntArray]:
    """Distinct values of an ascending array and how often each occurs, in one O(n) pass."""
    if values.size == 0:
        return np.empty(0, dtype=np.float64), np.empty(0, dtype=np.int64)
    starts = np.flatnonzero(np.concatenate(([True], values[1:] != values[:-1])))
    counts = np.diff(np.append(starts, values.size)).astype(np.int64)
    return values[starts], counts


def _prepare(values: npt.ArrayLike) -> FloatArray:
    array = np.asarray(values, dtype=np.float64).ravel()
    return np.sort(array[np.isfinite(array)])


def _is_integer_dtype(values: npt.ArrayLike) -> bool:
    return bool(np.issubdtype(np.asarray(values).dtype, np.integer))


@dataclass(eq=False)
class NumericalPair:
    """Reference and current values of a numerical column: finite values only, each sorted
    ascending.

    ``integer_dtype`` records that both original columns had an integer dtype. Evidently's
    histogram binning (``np.histogram_bin_edges(..., bins="sturges")``) widens bins to at least 1
    for integer arrays, so the bin count of an int64 column differs from the same values stored
    as float64; the flag lets the binned tests reproduce both cases. A pandas integer column with
    missing values is float64, so it is False there too.
    """

    reference: FloatArray
    current: FloatArray
    integer_dtype: bool = False

    def __post_init__(self) -> None:
        for name in ("reference", "current"):
            array = np.ascontiguousarray(getattr(self, name), dtype=np.float64)
            if array.ndim != 1:
                raise ValueError(f"NumericalPair.{name} must be one-dimensional")
            # NaN fails every comparison, so this also rejects NaN; sorted means only the ends
            # can be infinite.
            if array.size and (
                not bool(np.all(array[1:] >= array[:-1])) or not np.isfinite(array[[0, -1]]).all()
            ):
                raise ValueError(
                    f"NumericalPair.{name} must be finite and sorted ascending; "
                    "use NumericalPair.from_unsorted for raw values"
                )
            setattr(self, name, array)

    @classmethod
    def from_unsorted(
        cls, reference: npt.ArrayLike, current: npt.ArrayLike, *, integer_dtype: bool | None = None
    ) -> NumericalPair:
        """Drop NaN and +-inf (as Evidently does) and sort. ``integer_dtype`` defaults to whether
        both inputs have an integer dtype."""
        if integer_dtype is None:
            integer_dtype = _is_integer_dtype(reference) and _is_integer_dtype(current)
        return cls(_prepare(reference), _prepare(current), integer_dtype)

    @property
    def n_reference(self) -> int:
        return int(self.reference.size)

    @property
    def n_current(self) -> int:
        return int(self.current.size)

    @cached_property
    def _reference_distinct(self) -> tuple[FloatArray, IntArray]:
        return distinct_sorted(self.reference)

    @cached_property
    def _current_distinct(self) -> tuple[FloatArray, IntArray]:
        return distinct_sorted(self.current)

    @property
    def n_unique_reference(self) -> int:
        """Distinct reference values (Evidently's ``reference_data.nunique()``)."""
        return int(self._reference_distinct[0].size)

    @cached_property
    def n_unique(self) -> int:
        """Distinct values over reference + current (``pd.concat([ref, cur]).nunique()``)."""
        ref_values = self._reference_distinct[0]
        cur_values = self._current_distinct[0]
        if ref_values.size == 0 or cur_values.size == 0:
            return int(ref_values.size + cur_values.size)
        at = np.minimum(np.searchsorted(ref_values, cur_values), ref_values.size - 1)
        shared = int(np.count_nonzero(ref_values[at] == cur_values))
        return int(ref_values.size + cur_values.size - shared)

    @cached_property
    def _union_counts(self) -> tuple[FloatArray, IntArray, IntArray]:
        ref_values, ref_counts = self._reference_distinct
        cur_values, cur_counts = self._current_distinct
        values = np.union1d(ref_values, cur_values)
        reference = np.zeros(values.size, dtype=np.int64)
        current = np.zeros(values.size, dtype=np.int64)
        reference[np.searchsorted(values, ref_values)] = ref_counts
        current[np.searchsorted(values, cur_values)] = cur_counts
        return values, reference, current

    def value_counts(self) -> tuple[FloatArray, IntArray, IntArray]:
        """Distinct values over both samples (ascending) and the reference and current counts of
        each: what Evidently's count-based tests see for a numerical column."""
        return self._union_counts

    def counts(self) -> tuple[IntArray, IntArray]:
        """Reference and current counts aligned over the union of distinct values."""
        _, reference, current = self._union_counts
        return reference, current


def _is_missing(value: Any) -> bool:
    # Evidently turns +-inf into NaN and then drops NaN/None, in categorical columns too.
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float | np.floating) and not math.isfinite(value)


def _natural_order(keys: list[Any]) -> list[Any]:
    try:
        return sorted(keys)
    except TypeError:
        return sorted(keys, key=lambda key: (type(key).__name__, str(key)))


def _labels(keys: list[Any]) -> list[str]:
    labels = [str(key) for key in keys]
    if len(set(labels)) != len(labels):
        # e.g. 1 and "1" are different categories to Evidently; keep their labels apart.
        labels = [repr(key) for key in keys]
    return labels


@dataclass(eq=False)
class CategoricalPair:
    """Reference and current counts of a categorical column over the union of their categories
    (missing values excluded).

    Categories with a zero count on both sides are dropped (they do not exist for Evidently, and
    a zero column would make the contingency tests undefined).

    Order: ``categories[0]`` must be the category Evidently's ``sorted()`` puts first (for text
    categories, the lexicographically smallest label). Only the z-test depends on it, and only
    with more than two categories (with two, the z-test is symmetric). ``from_values`` and
    ``from_counts`` order categories that way; a pair built directly should list them sorted.
    """

    reference_counts: IntArray
    current_counts: IntArray
    categories: list[str]

    def __post_init__(self) -> None:
        reference = np.asarray(self.reference_counts, dtype=np.int64).ravel()
        current = np.asarray(self.current_counts, dtype=np.int64).ravel()
        if not (reference.size == current.size == len(self.categories)):
            raise ValueError("CategoricalPair counts and categories must have the same length")
        if (reference < 0).any() or (current < 0).any():
            raise ValueError("CategoricalPair counts must be non-negative")
        keep = (reference > 0) | (current > 0)
        self.reference_counts = reference[keep]
        self.current_counts = current[keep]
        self.categories = [c for c, k in zip(self.categories, keep.tolist(), strict=True) if k]

    @classmethod
    def from_values(
        cls, reference: Sequence[Hashable | None], current: Sequence[Hashable | None]
    ) -> CategoricalPair:
        """Count raw values; None, NaN, pd.NA and +-inf are dropped. Values are compared as
        Python/pandas compare them (so 1, 1.0 and True are one category, as in Evidently)."""
        ref_counts = _count(reference)
        cur_counts = _count(current)
        keys = _natural_order(list({**ref_counts, **cur_counts}))
        return cls(
            np.array([ref_counts.get(key, 0) for key in keys], dtype=np.int64),
            np.array([cur_counts.get(key, 0) for key in keys], dtype=np.int64),
            _labels(keys),
        )

    @classmethod
    def from_counts(
        cls, reference: Mapping[str, int], current: Mapping[str, int]
    ) -> CategoricalPair:
        """From per-category counts (e.g. aggregated in the database); categories sort as text."""
        keys = sorted(set(reference) | set(current))
        return cls(
            np.array([reference.get(key, 0) for key in keys], dtype=np.int64),
            np.array([current.get(key, 0) for key in keys], dtype=np.int64),
            keys,
        )

    @property
    def n_reference(self) -> int:
        return int(self.reference_counts.sum())

    @property
    def n_current(self) -> int:
        return int(self.current_counts.sum())

    @property
    def n_unique(self) -> int:
        return len(self.categories)

    @property
    def n_unique_reference(self) -> int:
        return int(np.count_nonzero(self.reference_counts))

    def counts(self) -> tuple[IntArray, IntArray]:
        return self.reference_counts, self.current_counts


def _count(values: Sequence[Hashable | None]) -> dict[Any, int]:
    # pandas hashes and compares objects as Evidently's value_counts does, and fast.
    series = pd.Series(values, dtype=object) if not isinstance(values, pd.Series) else values
    counts = series.value_counts(dropna=True)
    return {key: int(n) for key, n in counts.items() if not _is_missing(key)}


Pair = NumericalPair | CategoricalPair
