"""Column summaries (driftwatch.stats.summaries): merged in any order they equal the summary of
the union; their ranks are within the stated errors; the stored form reads back the same."""

from __future__ import annotations

import itertools
import math
import random
import zlib
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import orjson
import pytest

from driftwatch.stats import summaries as sm

Rng = np.random.Generator


def _with_missing(values: np.ndarray[Any, Any], rng: Rng, share: float) -> np.ndarray[Any, Any]:
    values = values.astype(float)
    values[rng.random(len(values)) < share] = np.nan
    return values


NUMERICAL_SHAPES: dict[str, Callable[[Rng, int], np.ndarray[Any, Any]]] = {
    "normal": lambda rng, n: rng.normal(size=n),
    "ties (integers 0..4)": lambda rng, n: rng.integers(0, 5, size=n).astype(float),
    "heavy tail (cauchy)": lambda rng, n: rng.standard_cauchy(size=n),
    "pareto": lambda rng, n: rng.pareto(1.2, size=n),
    "offset 1e6 + N(0, 1)": lambda rng, n: 1e6 + rng.normal(size=n),
    "zeros and signed zeros": lambda rng, n: rng.choice([0.0, -0.0, 1e-300, -2.5], size=n),
    "30% missing": lambda rng, n: _with_missing(rng.lognormal(size=n), rng, 0.3),
    "NaN only": lambda rng, n: np.full(n, np.nan),
    "one value": lambda rng, n: np.full(n, 7.25),
    "huge and tiny": lambda rng, n: rng.choice([-1e150, 1e150, 5e-324, 1.0], size=n),
}


def _splits(n: int, parts: int, rng: Rng) -> list[slice]:
    cuts = sorted(rng.choice(np.arange(1, n), size=parts - 1, replace=False).tolist())
    bounds = [0, *cuts, n]
    return [slice(a, b) for a, b in itertools.pairwise(bounds)]


def _tree_merge(parts: Sequence[sm.ColumnSummary]) -> sm.ColumnSummary:
    """Merged pairwise, as nested merges of halves (another grouping than one flat merge)."""
    if len(parts) == 1:
        return parts[0]
    middle = len(parts) // 2
    return sm.merge([_tree_merge(parts[:middle]), _tree_merge(parts[middle:])])


def assert_same_numerical(got: sm.NumericalSummary, want: sm.NumericalSummary) -> None:
    assert (got.count, got.missing) == (want.count, want.missing)
    assert np.array_equal(got.keys, want.keys)
    assert np.array_equal(got.counts, want.counts)
    assert got.values == want.values
    if want.count:
        assert (got.minimum, got.maximum) == (want.minimum, want.maximum)
        scale = max(1.0, abs(want.minimum), abs(want.maximum))
        assert got.mean == pytest.approx(want.mean, rel=1e-12, abs=1e-12 * scale)
        assert got.m2 == pytest.approx(want.m2, rel=1e-9, abs=1e-9)
    else:
        assert math.isnan(got.minimum)
        assert math.isnan(got.maximum)
    # KLL merges are randomized, and whether one is kept depends on the parts: where both
    # have one, the same n, min and max (ranks: test_ranks_...)
    for sketch in (got.kll, want.kll):
        if sketch is not None:
            assert sketch.n == want.count
            assert (sketch.get_min_value(), sketch.get_max_value()) == (want.minimum, want.maximum)


@pytest.mark.parametrize("shape", NUMERICAL_SHAPES)
@pytest.mark.parametrize("parts", [2, 7, 40])
def test_numerical_summaries_merged_in_any_order_equal_the_summary_of_the_union(
    shape: str, parts: int
) -> None:
    rng = np.random.default_rng([zlib.crc32(shape.encode()), parts])
    data = NUMERICAL_SHAPES[shape](rng, 20_000)
    whole = sm.NumericalSummary.of(data)
    pieces = [sm.NumericalSummary.of(data[s]) for s in _splits(len(data), parts, rng)]
    orders = [pieces, pieces[::-1], random.Random(parts).sample(pieces, len(pieces))]
    for order in orders:
        flat = sm.merge(order)
        assert isinstance(flat, sm.NumericalSummary)
        assert_same_numerical(flat, whole)
        tree = _tree_merge(order)
        assert isinstance(tree, sm.NumericalSummary)
        assert_same_numerical(tree, whole)
    assert whole.rows == len(data)
    assert whole.missing == int(np.isnan(data).sum())
    present = data[~np.isnan(data)]
    if len(present):
        scale = float(np.abs(present).max())
        assert whole.mean == pytest.approx(present.mean(), rel=1e-12, abs=1e-12 * scale)
        assert whole.m2 == pytest.approx(((present - present.mean()) ** 2).sum(), rel=1e-9)


def test_few_distinct_values_are_counted_exactly_and_many_are_not() -> None:
    few = sm.NumericalSummary.of(np.array([1.0, 2.0, 2.0, np.nan, 3.5]))
    assert few.values == {1.0: 1, 2.0: 2, 3.5: 1}
    many = sm.NumericalSummary.of(np.arange(sm.DISTINCT_VALUES_LIMIT + 1, dtype=float))
    assert many.values is None
    # two parts each within the limit whose union is not
    left = sm.NumericalSummary.of(np.arange(20, dtype=float))
    right = sm.NumericalSummary.of(np.arange(20, 40, dtype=float))
    merged = sm.merge([left, right])
    assert isinstance(merged, sm.NumericalSummary)
    assert merged.values is None


@pytest.mark.parametrize("shape", [s for s in NUMERICAL_SHAPES if s != "NaN only"])
def test_every_value_lies_in_its_bin_and_bins_are_narrow(shape: str) -> None:
    rng = np.random.default_rng(3)
    data = NUMERICAL_SHAPES[shape](rng, 5000)
    data = data[np.isfinite(data)] + 0.0
    low, high = sm.bin_bounds(sm.bin_keys(data))
    positive = data >= 0
    assert np.all(np.where(positive, (low <= data) & (data < high), (low < data) & (data <= high)))
    normal = np.abs(data) >= np.finfo(float).tiny  # subnormals share bin 0's absolute width
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        width = (high - low) / np.minimum(np.abs(low), np.abs(high))
    assert np.all(width[normal & np.isfinite(width)] <= sm.RELATIVE_WIDTH * (1 + 1e-12))


RANKED = ["normal", "heavy tail (cauchy)", "pareto", "offset 1e6 + N(0, 1)", "30% missing",
          "ties (integers 0..4)"]  # fmt: skip


@pytest.mark.parametrize("shape", RANKED)
def test_ranks_from_the_kll_sketch_and_the_bins_are_within_their_stated_errors(shape: str) -> None:
    rng = np.random.default_rng(11)
    data = NUMERICAL_SHAPES[shape](rng, 200_000)
    pieces = [sm.NumericalSummary.of(data[s]) for s in _splits(len(data), 20, rng)]
    summary = sm.merge(pieces)
    assert isinstance(summary, sm.NumericalSummary)
    exact = np.sort(data[~np.isnan(data)])
    points = np.unique(np.quantile(exact, np.linspace(0.001, 0.999, 500)))
    truth = np.searchsorted(exact, points, side="right") / len(exact)
    if shape == "offset 1e6 + N(0, 1)":  # one bin holds it all: the sketch has to be kept
        assert summary.bins_rank_error() == 1.0
        assert summary.kll is not None
    if summary.kll is not None:
        kll = np.array([summary.kll.get_rank(float(x), True) for x in points])
        assert np.abs(kll - truth).max() <= sm.KLL_RANK_ERROR
    assert summary.rank_error() <= min(summary.bins_rank_error(), sm.KLL_RANK_ERROR
                                       if summary.kll is not None else 1.0)  # fmt: skip
    # bins: the CDF at a point is at least the mass of the bins wholly at or below it, and at
    # most that plus the mass of the bin holding it
    _, high = sm.bin_bounds(summary.keys)
    cumulative = np.r_[0.0, np.cumsum(summary.counts)] / summary.count
    below = np.searchsorted(high, points, side="right")
    known = cumulative[below]
    assert np.all(known <= truth + 1e-12)
    assert np.all(truth - known <= summary.bins_rank_error() + 1e-12)


def _zipf_categories(rng: Rng, n: int, distinct: int) -> list[str | None]:
    ranks = np.minimum(rng.zipf(1.3, size=n), distinct)
    return [f"c{r}" for r in ranks.tolist()]


CATEGORICAL_SHAPES: dict[str, Callable[[Rng, int], list[str | None]]] = {
    "few": lambda rng, n: rng.choice(["CA", "NY", "TX"], size=n).tolist(),
    "with missing": lambda rng, n: [
        None if x == "-" else x for x in rng.choice(["a", "b", "-"], size=n).tolist()
    ],
    "missing only": lambda rng, n: [None] * n,
    "under the limit": lambda rng, n: _zipf_categories(rng, n, sm.CATEGORY_LIMIT),
}


@pytest.mark.parametrize("shape", CATEGORICAL_SHAPES)
@pytest.mark.parametrize("parts", [2, 9])
def test_categorical_summaries_merged_in_any_order_equal_the_summary_of_the_union(
    shape: str, parts: int
) -> None:
    rng = np.random.default_rng(parts)
    data = CATEGORICAL_SHAPES[shape](rng, 20_000)
    whole = sm.CategoricalSummary.of(data)
    truth = Counter(v for v in data if v is not None)
    assert whole.counts == dict(truth)
    assert whole.missing == data.count(None)
    pieces = [sm.CategoricalSummary.of(data[s]) for s in _splits(len(data), parts, rng)]
    for order in (pieces, pieces[::-1], random.Random(1).sample(pieces, len(pieces))):
        for merged in (sm.merge(order), _tree_merge(order)):
            assert isinstance(merged, sm.CategoricalSummary)
            assert (merged.count, merged.missing, merged.counts) == (
                whole.count, whole.missing, whole.counts,
            )  # fmt: skip


@pytest.mark.parametrize("distinct", [5000, 100_000])
def test_many_categories_keep_the_frequent_ones_within_the_stated_error(distinct: int) -> None:
    rng = np.random.default_rng(distinct)
    data = [f"c{r}" for r in np.minimum(rng.zipf(1.2, size=100_000), distinct).tolist()]
    truth = Counter(data)
    pieces = [sm.CategoricalSummary.of(data[s]) for s in _splits(len(data), 10, rng)]
    for order in (pieces, pieces[::-1]):
        merged = sm.merge(order)
        assert isinstance(merged, sm.CategoricalSummary)
        assert merged.counts is None
        assert merged.frequent is not None
        assert (merged.count, merged.missing) == (len(data), 0)
        kept, other, error = merged.top(limit=10**9)
        assert error == math.ceil(sm.FREQUENT_EPSILON * len(data))
        for category, estimate in kept.items():
            assert abs(estimate - truth[category]) <= error, category
        # no category more frequent than the error is left out
        assert {c for c, n in truth.items() if n > error} <= set(kept)
        assert other == max(0, len(data) - sum(kept.values()))


@pytest.mark.parametrize(
    "shape", ["normal", "30% missing", "NaN only", "ties (integers 0..4)", "offset 1e6 + N(0, 1)"]
)
def test_the_stored_form_reads_back_the_same_summary(shape: str) -> None:
    data = NUMERICAL_SHAPES[shape](np.random.default_rng(5), 3000)
    summary = sm.NumericalSummary.of(data)
    back = sm.loads(sm.dumps(summary))
    assert isinstance(back, sm.NumericalSummary)
    assert_same_numerical(back, summary)
    assert back.mean == summary.mean
    assert back.m2 == summary.m2
    assert (back.kll is None) == (summary.kll is None)
    if summary.kll is not None and back.kll is not None:
        assert back.kll.serialize() == summary.kll.serialize()
    categories = sm.CategoricalSummary.of(["a", None, "b", "a"])
    back_categories = sm.loads(sm.dumps(categories))
    assert isinstance(back_categories, sm.CategoricalSummary)
    assert (back_categories.count, back_categories.missing, back_categories.counts) == (
        3, 1, {"a": 2, "b": 1},
    )  # fmt: skip
    document = orjson.loads(orjson.dumps(summary.to_document()))  # the portable JSON form
    from_json = sm.from_document(document)
    assert isinstance(from_json, sm.NumericalSummary)
    assert_same_numerical(from_json, summary)
    assert (from_json.kll is None) == (summary.kll is None)
    assert document["version"] == sm.SUMMARY_VERSION == 1
    assert document["bins"]["mantissa_bits"] == sm.MANTISSA_BITS


def test_a_frequent_items_summary_reads_back() -> None:
    data = [f"c{i % 3000}" for i in range(9000)]
    summary = sm.CategoricalSummary.of(data)
    back = sm.loads(sm.dumps(summary))
    assert isinstance(back, sm.CategoricalSummary)
    assert back.frequent is not None
    assert back.top(5) == summary.top(5)


def test_another_version_or_kind_is_refused_by_name() -> None:
    document = sm.NumericalSummary.of(np.arange(3.0)).to_document()
    with pytest.raises(sm.SummaryFormatError, match="summary version 2; this reads 1"):
        sm.from_document({**document, "version": 2})
    with pytest.raises(sm.SummaryFormatError, match="summary kind 'embedding'"):
        sm.from_document({**document, "kind": "embedding"})
    with pytest.raises(ValueError, match="different kinds"):
        sm.merge([sm.NumericalSummary.of([1.0]), sm.CategoricalSummary.of(["a"])])


def test_the_sketch_is_kept_only_where_bins_and_values_rank_worse() -> None:
    rng = np.random.default_rng(8)
    spread = sm.NumericalSummary.of(rng.normal(size=10_000))
    assert spread.kll is None  # the bins rank within 0.3%: better than KLL's 1.33%
    assert spread.rank_error() == spread.bins_rank_error() < sm.KLL_RANK_ERROR
    offset = sm.NumericalSummary.of(1e6 + rng.normal(size=10_000))
    assert offset.kll is not None
    assert offset.rank_error() == sm.KLL_RANK_ERROR
    ties = sm.NumericalSummary.of(rng.integers(0, 3, size=10_000).astype(float))
    assert ties.kll is None
    assert ties.rank_error() == 0.0  # every value counted
    # a merge keeps a sketch only when each part with values has one; NaN-only parts do not count
    nothing = sm.NumericalSummary.of(np.full(5, np.nan))
    both = sm.merge([offset, nothing, sm.NumericalSummary.of(1e6 + rng.normal(size=500))])
    assert isinstance(both, sm.NumericalSummary)
    assert both.kll is not None
    assert both.kll.n == 10_500
    mixed = sm.merge([offset, spread])
    assert isinstance(mixed, sm.NumericalSummary)
    assert mixed.kll is None
    assert mixed.rank_error() == mixed.bins_rank_error()
