"""Mergeable column summaries: what a window (or any span) of one column looks like, kept small
enough that a run reads summaries instead of rows, and built so that summaries of parts merge
into the summary of the whole.

Numerical column (finite values; NaN is missing):
- exact ``count``, ``missing``, ``min``, ``max``; ``mean`` and ``m2`` (sum of squared deviations)
  combined by Chan et al.'s parallel formula (exact but for float rounding, ~1e-15 relative);
- exact counts on a fixed log-linear binning of float64 that depends on no baseline: a value's
  bin is its sign, exponent and top ``MANTISSA_BITS`` mantissa bits (HDR/DDSketch style), so a
  bin spans at most ``RELATIVE_WIDTH`` (2**-7, 0.78%) of its values' magnitude; the CDF is exact
  at every bin edge, so anywhere it is known to within the mass of one bin;
- exact value counts while the column has at most ``DISTINCT_VALUES_LIMIT`` distinct values
  (then ``None``): Evidently gives such columns one bin per value;
- an Apache DataSketches KLL sketch (k = ``KLL_K``): ranks within ``KLL_RANK_ERROR`` (1.33%)
  with 99% confidence whatever the data's scale, kept where the bins rank worse than that
  (spread small against magnitude: values near 1e6 with sd 1 fall into one bin) and the values
  are not counted exactly; a merge keeps one when every part with values has one.
  ``rank_error()`` bounds the CDF's error from whichever parts are kept.

Categorical column: exact ``count`` and ``missing``; exact category counts while the column has
at most ``CATEGORY_LIMIT`` categories, past that a DataSketches frequent-items sketch
(lg_max_map_size ``FREQUENT_LG_MAP``): every category's count within ``FREQUENT_EPSILON``
(0.17%) of the column's count, the categories it does not keep reported together as "other".

Merging is associative and commutative exactly for every part but the two sketches, whose merge
is randomized (KLL) or order-dependent (frequent items past the limit): any order gives a
result within the stated error (and whether a merge keeps a KLL sketch depends on its parts:
the summary of the union may have one where a merge of parts has none, or the other way).
Serialization: a versioned JSON document (``to_document``), sketches as base64 of their
DataSketches bytes; stored in a binary form of the same content (``dumps``). Pure: numpy and
datasketches only.
"""

from __future__ import annotations

import base64
import math
import struct
import zlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
from datasketches import frequent_items_error_type, frequent_strings_sketch, kll_doubles_sketch

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

SUMMARY_VERSION = 1
MANTISSA_BITS = 7
RELATIVE_WIDTH = 2.0**-MANTISSA_BITS
_SHIFT = 52 - MANTISSA_BITS
_MAGNITUDE = np.int64(0x7FFF_FFFF_FFFF_FFFF)
KLL_K = 200
KLL_RANK_ERROR = float(kll_doubles_sketch.get_normalized_rank_error(KLL_K, False))
DISTINCT_VALUES_LIMIT = 32
CATEGORY_LIMIT = 1000
FREQUENT_LG_MAP = 11
FREQUENT_EPSILON = float(frequent_strings_sketch.get_epsilon_for_lg_size(FREQUENT_LG_MAP))
NUMERICAL, CATEGORICAL = "numerical", "categorical"


class SummaryFormatError(ValueError):
    """A serialized summary this version cannot read."""


def bin_keys(values: FloatArray) -> IntArray:
    """The bin of each finite value: sign, exponent and top mantissa bits of its float64, so
    keys are monotonic in the values (-0.0 is 0.0)."""
    bits = (np.asarray(values, dtype=np.float64) + 0.0).view(np.int64)
    magnitude = (bits & _MAGNITUDE) >> _SHIFT
    return np.where(bits < 0, -magnitude - 1, magnitude)


def bin_bounds(keys: IntArray) -> tuple[FloatArray, FloatArray]:
    """Each bin's [low, high): positive bins hold low <= x < high, negative ones low < x <= high
    (mirror images of the positive bins)."""
    keys = np.asarray(keys, dtype=np.int64)
    magnitude = np.where(keys < 0, -keys - 1, keys)
    inner = (magnitude << _SHIFT).view(np.float64)
    with np.errstate(over="ignore"):
        outer = ((magnitude + 1) << _SHIFT).view(np.float64)
    return np.where(keys < 0, -outer, inner), np.where(keys < 0, -inner, outer)


def _runs(sorted_keys: npt.NDArray[Any]) -> tuple[npt.NDArray[Any], IntArray]:
    """Distinct values of a sorted array and how often each occurs."""
    if not len(sorted_keys):
        return sorted_keys[:0], np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
    return sorted_keys[starts], np.diff(np.r_[starts, len(sorted_keys)]).astype(np.int64)


@dataclass(slots=True, eq=False)
class NumericalSummary:
    count: int = 0  # finite values
    missing: int = 0
    minimum: float = math.nan  # NaN while count is 0
    maximum: float = math.nan
    mean: float = 0.0
    m2: float = 0.0
    keys: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # sorted
    counts: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    values: dict[float, int] | None = field(default_factory=dict)  # None: too many distinct
    # Only where the bins and values cannot rank as well (see ``of``); None otherwise.
    kll: kll_doubles_sketch | None = None
    kind: str = NUMERICAL

    @property
    def rows(self) -> int:
        return self.count + self.missing

    @classmethod
    def of(cls, values: npt.ArrayLike) -> NumericalSummary:
        array = np.asarray(values, dtype=np.float64)
        finite = np.isfinite(array)
        present = np.sort(array) if finite.all() else np.sort(array[finite])  # one copy
        summary = cls(missing=len(array) - len(present))
        if not len(present):
            return summary
        summary.count = len(present)
        summary.minimum, summary.maximum = float(present[0]) + 0.0, float(present[-1]) + 0.0
        summary.mean = float(present.mean())
        deviations = present - summary.mean
        summary.m2 = float(np.dot(deviations, deviations))
        summary.keys, summary.counts = _runs(bin_keys(present))
        # more bins than the limit: more distinct values too (a bin holds one value at least)
        if len(summary.keys) <= DISTINCT_VALUES_LIMIT:
            distinct, counts = _runs(present + 0.0)
            summary.values = dict(zip(distinct.tolist(), counts.tolist(), strict=True))
            if len(distinct) > DISTINCT_VALUES_LIMIT:
                summary.values = None
        else:
            summary.values = None
        # The sketch costs half the build and most of the bytes: kept only where the bins rank
        # worse than it does (values spread little against their magnitude) and the values
        # are not counted exactly.
        if summary.values is None and summary.bins_rank_error() > KLL_RANK_ERROR:
            summary.kll = kll_doubles_sketch(KLL_K)
            summary.kll.update(present)
        return summary

    def rank_error(self) -> float:
        """A bound on the error of the CDF this summary gives anywhere: 0 with exact values,
        else the bins' bound or, when smaller and a sketch is kept, KLL's (99% confidence)."""
        if self.values is not None:
            return 0.0
        bound = self.bins_rank_error()
        return min(bound, KLL_RANK_ERROR) if self.kll is not None else bound

    def bins_rank_error(self) -> float:
        """How far the CDF between bin edges may be from the one known at the edges: the
        largest bin's share (0 for an empty column)."""
        return float(self.counts.max()) / self.count if self.count else 0.0

    def to_document(self, *, with_kll: bool = True, with_bins: bool = True) -> dict[str, Any]:
        empty = self.count == 0
        bins: dict[str, Any] = {"mantissa_bits": MANTISSA_BITS}
        document: dict[str, Any] = {
            "version": SUMMARY_VERSION,
            "kind": NUMERICAL,
            "count": self.count,
            "missing": self.missing,
            "min": None if empty else self.minimum,
            "max": None if empty else self.maximum,
            "mean": self.mean,
            "m2": self.m2,
            "bins": bins,
            "values": None if self.values is None else [[v, c] for v, c in self.values.items()],
        }
        if with_bins:  # the first key, then differences (small positive numbers)
            bins["keys"] = np.diff(self.keys, prepend=np.int64(0)).tolist()
            bins["counts"] = self.counts.tolist()
        if with_kll:
            document["kll"] = (
                None if self.kll is None else base64.b64encode(self.kll.serialize()).decode()
            )
        return document

    @classmethod
    def from_document(
        cls, document: dict[str, Any], kll: bytes | None = None
    ) -> NumericalSummary:  # fmt: skip
        """From its JSON document; ``kll``: the sketch's bytes when kept apart from it."""
        bins = document["bins"]
        if bins["mantissa_bits"] != MANTISSA_BITS:
            raise SummaryFormatError(f"bins of {bins['mantissa_bits']} mantissa bits")
        values = document["values"]
        return cls(
            count=int(document["count"]),
            missing=int(document["missing"]),
            minimum=math.nan if document["min"] is None else float(document["min"]),
            maximum=math.nan if document["max"] is None else float(document["max"]),
            mean=float(document["mean"]),
            m2=float(document["m2"]),
            keys=np.cumsum(np.asarray(bins["keys"], dtype=np.int64)),
            counts=np.asarray(bins["counts"], dtype=np.int64),
            values=None if values is None else {float(v): int(c) for v, c in values},
            kll=_kll_of(document.get("kll") if kll is None else kll),
        )


def _kll_of(stored: str | bytes | None) -> kll_doubles_sketch | None:
    if not stored:
        return None
    raw = base64.b64decode(stored) if isinstance(stored, str) else stored
    return kll_doubles_sketch.deserialize(raw)


def _merge_moments(total: NumericalSummary, part: NumericalSummary) -> None:
    if part.count == 0:
        return
    if total.count == 0:
        total.mean, total.m2 = part.mean, part.m2
    else:
        count = total.count + part.count
        delta = part.mean - total.mean
        total.mean += delta * (part.count / count)
        total.m2 += part.m2 + delta * delta * (total.count * part.count / count)
    total.count += part.count
    total.minimum = part.minimum if math.isnan(total.minimum) else min(total.minimum, part.minimum)
    total.maximum = part.maximum if math.isnan(total.maximum) else max(total.maximum, part.maximum)


def _merge_values(
    parts: Sequence[dict[float, int] | None],
) -> dict[float, int] | None:
    if any(values is None for values in parts):
        return None
    merged: Counter[float] = Counter()
    for values in parts:
        merged.update(values or {})
    if len(merged) > DISTINCT_VALUES_LIMIT:
        return None
    return dict(sorted(merged.items()))


_KEY_SPAN = 1 << (63 - _SHIFT)  # keys lie in [-_KEY_SPAN, _KEY_SPAN)


def _merge_bins(parts: Sequence[NumericalSummary]) -> tuple[IntArray, IntArray]:
    empty = np.zeros(0, dtype=np.int64)
    keys = np.concatenate([p.keys for p in parts] or [empty])
    counts = np.concatenate([p.counts for p in parts] or [empty])
    if len(keys) > 65_536:  # many parts (a week of hours): one pass over every possible key
        # float64 sums are exact below 2**53 rows
        total = np.bincount(keys + _KEY_SPAN, weights=counts, minlength=2 * _KEY_SPAN)
        found = np.flatnonzero(total)
        return found - _KEY_SPAN, total[found].astype(np.int64)
    order = np.argsort(keys, kind="stable")
    keys, counts = keys[order], counts[order]
    if not len(keys):
        return empty, empty
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    return keys[starts], np.add.reduceat(counts, starts).astype(np.int64)


def merge_numerical(parts: Sequence[NumericalSummary]) -> NumericalSummary:
    # Moments in a canonical order, so that the result does not depend on the parts' order
    # (but for float rounding in Chan's formula, which the order fixes).
    ordered = sorted(parts, key=lambda p: (p.count, p.mean, p.m2, p.missing))
    total = NumericalSummary()
    # A sketch of the union only when every part with values has one
    present = [part for part in ordered if part.count]
    if present and all(part.kll is not None for part in present):
        total.kll = kll_doubles_sketch(KLL_K)
    for part in ordered:
        _merge_moments(total, part)
        total.missing += part.missing
        if total.kll is not None and part.kll is not None:
            total.kll.merge(part.kll)
    total.keys, total.counts = _merge_bins(parts)
    total.values = _merge_values([p.values for p in parts])
    return total


@dataclass(slots=True, eq=False)
class CategoricalSummary:
    count: int = 0  # present values
    missing: int = 0
    counts: dict[str, int] | None = field(default_factory=dict)  # None: past CATEGORY_LIMIT
    frequent: frequent_strings_sketch | None = None  # set exactly when ``counts`` is None
    kind: str = CATEGORICAL

    @property
    def rows(self) -> int:
        return self.count + self.missing

    @classmethod
    def of(cls, values: Iterable[str | None]) -> CategoricalSummary:
        counted = Counter(values)
        missing = counted.pop(None, 0)
        present: dict[str, int] = dict(counted)  # type: ignore[arg-type]
        summary = cls(count=sum(present.values()), missing=missing, counts=present)
        if len(present) > CATEGORY_LIMIT:
            summary.counts, summary.frequent = None, _sketch_of(present)
        return summary

    def top(self, limit: int = CATEGORY_LIMIT) -> tuple[dict[str, int], int, int]:
        """The most frequent categories with their counts (estimates past the limit), the
        count of the rest ("other"), and the largest error of any count given (0: exact)."""
        if self.counts is not None:
            ranked = sorted(self.counts.items(), key=lambda item: (-item[1], item[0]))[:limit]
            kept = dict(ranked)
            return kept, self.count - sum(kept.values()), 0
        assert self.frequent is not None
        found = self.frequent.get_frequent_items(_NO_FALSE_NEGATIVES)
        items = sorted(found, key=lambda item: (-item[1], item[0]))[:limit]
        kept = {item[0]: int(item[1]) for item in items}
        error = math.ceil(FREQUENT_EPSILON * self.count)
        return kept, max(0, self.count - sum(kept.values())), error

    def to_document(self) -> dict[str, Any]:
        return {
            "version": SUMMARY_VERSION,
            "kind": CATEGORICAL,
            "count": self.count,
            "missing": self.missing,
            "counts": self.counts,
            "frequent": None
            if self.frequent is None
            else base64.b64encode(self.frequent.serialize()).decode(),
        }

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> CategoricalSummary:
        frequent = document["frequent"]
        counts = document["counts"]
        return cls(
            count=int(document["count"]),
            missing=int(document["missing"]),
            counts=None if counts is None else {str(k): int(v) for k, v in counts.items()},
            frequent=None
            if frequent is None
            else frequent_strings_sketch.deserialize(base64.b64decode(frequent)),
        )


def _sketch_of(counts: dict[str, int]) -> frequent_strings_sketch:
    sketch = frequent_strings_sketch(FREQUENT_LG_MAP)
    for category, count in counts.items():
        sketch.update(category, count)
    return sketch


# Every category whose count may exceed the sketch's error is listed.
_NO_FALSE_NEGATIVES = frequent_items_error_type.NO_FALSE_NEGATIVES


def merge_categorical(parts: Sequence[CategoricalSummary]) -> CategoricalSummary:
    total = CategoricalSummary(
        count=sum(p.count for p in parts), missing=sum(p.missing for p in parts)
    )
    if all(p.counts is not None for p in parts):
        merged: Counter[str] = Counter()
        for part in parts:
            merged.update(part.counts or {})
        if len(merged) <= CATEGORY_LIMIT:
            total.counts = dict(merged)
            return total
    total.counts, total.frequent = None, frequent_strings_sketch(FREQUENT_LG_MAP)
    for part in parts:
        if part.frequent is not None:
            total.frequent.merge(part.frequent)
        else:
            for category, count in (part.counts or {}).items():
                total.frequent.update(category, count)
    return total


ColumnSummary = NumericalSummary | CategoricalSummary


def merge(parts: Sequence[ColumnSummary]) -> ColumnSummary:
    """The summary of the union of the parts' values (all of one kind; at least one part)."""
    if not parts:
        raise ValueError("merge: no summaries to merge")
    kinds = {part.kind for part in parts}
    if kinds == {NUMERICAL}:
        return merge_numerical([p for p in parts if isinstance(p, NumericalSummary)])
    if kinds == {CATEGORICAL}:
        return merge_categorical([p for p in parts if isinstance(p, CategoricalSummary)])
    raise ValueError(f"merge: summaries of different kinds {sorted(kinds)}")


def from_document(document: dict[str, Any]) -> ColumnSummary:
    version = document.get("version")
    if version != SUMMARY_VERSION:
        raise SummaryFormatError(f"summary version {version!r}; this reads {SUMMARY_VERSION}")
    if document.get("kind") == NUMERICAL:
        return NumericalSummary.from_document(document)
    if document.get("kind") == CATEGORICAL:
        return CategoricalSummary.from_document(document)
    raise SummaryFormatError(f"summary kind {document.get('kind')!r}")


_HEAD = struct.Struct("<II")


def dumps(summary: ColumnSummary) -> bytes:
    """The stored form, quicker to write and read than the JSON document, same content.

    Bytes: two little-endian uint32 (n, m); n bytes of zlib-compressed JSON (the document,
    without ``kll`` and, for a numerical column, without the bins' ``keys`` and ``counts``);
    m bytes of zlib-compressed bins: the key differences as int32, then the counts as int64,
    little-endian; then the KLL sketch's own DataSketches serialization, uncompressed (random
    doubles: compressing them costs time and saves nothing), or nothing when none is kept. A
    categorical column has m = 0 and no sketch after."""
    if isinstance(summary, CategoricalSummary):
        text = zlib.compress(orjson.dumps(summary.to_document()), 1)
        return _HEAD.pack(len(text), 0) + text
    document = summary.to_document(with_kll=False, with_bins=False)
    text = zlib.compress(orjson.dumps(document), 1)
    deltas = np.diff(summary.keys, prepend=np.int64(0)).astype("<i4")  # |key| < 2**18
    bins = zlib.compress(deltas.tobytes() + summary.counts.astype("<i8").tobytes(), 1)
    sketch = b"" if summary.kll is None else bytes(summary.kll.serialize())
    return _HEAD.pack(len(text), len(bins)) + text + bins + sketch


def loads(data: bytes) -> ColumnSummary:
    text_length, bins_length = _HEAD.unpack_from(data)
    start = _HEAD.size
    document = orjson.loads(zlib.decompress(data[start : start + text_length]))
    if document.get("version") != SUMMARY_VERSION or document.get("kind") != NUMERICAL:
        return from_document(document)
    start += text_length
    bins = zlib.decompress(data[start : start + bins_length])
    size = len(bins) // 12  # 4 bytes a key difference, 8 a count
    document["bins"]["keys"] = np.frombuffer(bins, dtype="<i4", count=size).astype(np.int64)
    document["bins"]["counts"] = np.frombuffer(bins, dtype="<i8", offset=4 * size)
    return NumericalSummary.from_document(document, bytes(data[start + bins_length :]))
