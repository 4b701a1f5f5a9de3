"""Column summaries: what they cost to build, store and merge, and how well they rank.

Usage: python benchmarks/summaries.py [--batches 20] [--batch-rows 10000]

In one run, for 20 numerical + 5 categorical columns (the shape of benchmarks/ingest.py):
- build: one 10k-row batch summarized as stored (a KLL sketch only where the bins rank worse
  than it), what a KLL sketch of every column (the field's standard) adds, and the fine bins
  alone, median over --batches batches;
- size: stored bytes of one batch's summaries, and of an hour's (the batches merged), and what
  a KLL sketch of every column would add;
- merge: an hour of batch summaries merged, per column;
- rank error: the largest error of the CDF over 1000 points (a KLL sketch's estimate, the bins'
  edge CDF) against the exact CDF of the merged data, and which the summary keeps, for normal,
  heavy-tailed (Pareto), offset (1e6 + N(0, 1)) and tied (integers 0..9) columns, against the
  stated bounds.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import numpy as np
from datasketches import kll_doubles_sketch

from driftwatch.stats import summaries as sm

N_NUM, N_CAT = 20, 5
STATES = ["CA", "NY", "TX", "WA", "FL", "OR", "NV", "AZ"]


def _batch(rng: np.random.Generator, rows: int) -> tuple[Any, list[list[str | None]]]:
    numbers = rng.normal(size=(rows, N_NUM))
    categories = rng.choice(STATES, size=(N_CAT, rows)).tolist()
    return numbers, categories


def _build(numbers: Any, categories: list[list[str | None]]) -> list[sm.ColumnSummary]:
    built: list[sm.ColumnSummary] = [sm.NumericalSummary.of(numbers[:, i]) for i in range(N_NUM)]
    built.extend(sm.CategoricalSummary.of(column) for column in categories)
    return built


def _bins_only(numbers: Any) -> None:
    for i in range(N_NUM):
        present = np.sort(numbers[:, i][np.isfinite(numbers[:, i])])
        sm._runs(sm.bin_keys(present))


def _kll_always(numbers: Any) -> list[kll_doubles_sketch]:
    """What keeping a KLL sketch of every column would add (the field's standard)."""
    sketches = []
    for i in range(N_NUM):
        sketch = kll_doubles_sketch(sm.KLL_K)
        sketch.update(np.sort(numbers[:, i]))
        sketches.append(sketch)
    return sketches


def _kept(summary: sm.NumericalSummary) -> str:
    if summary.values is not None:
        return "exact values"
    return "KLL" if summary.kll is not None else "bins only"


def _rank_errors(name: str, data: Any, parts: int) -> str:
    pieces = np.array_split(data, parts)
    summary = sm.merge_numerical([sm.NumericalSummary.of(p) for p in pieces])
    sketch = kll_doubles_sketch(sm.KLL_K)  # always, to compare (the summary keeps it or not)
    for piece in pieces:
        part = kll_doubles_sketch(sm.KLL_K)
        part.update(piece)
        sketch.merge(part)
    exact = np.sort(data)
    points = np.quantile(exact, np.linspace(0.0005, 0.9995, 1000))
    truth = np.searchsorted(exact, points, side="right") / len(exact)
    kll = np.array([sketch.get_rank(float(x), True) for x in points])
    _, high = sm.bin_bounds(summary.keys)
    # the CDF known at bin edges: the mass of the bins wholly at or below each point
    cumulative = np.cumsum(summary.counts) / summary.count
    below = np.searchsorted(high, points, side="right") - 1
    bins = np.where(below >= 0, cumulative[np.maximum(below, 0)], 0.0)
    return (
        f"{name:<22} KLL {np.abs(kll - truth).max():.5f} (bound {sm.KLL_RANK_ERROR:.4f})   "
        f"bins {np.abs(bins - truth).max():.5f} "
        f"(bound: largest bin {summary.bins_rank_error():.5f})   "
        f"kept: {_kept(summary)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--batch-rows", type=int, default=10_000)
    args = parser.parse_args()
    rng = np.random.default_rng(7)
    batches = [_batch(rng, args.batch_rows) for _ in range(args.batches)]

    built_times, kll_times, bins_times, sizes, kll_sizes = [], [], [], [], []
    built_batches, kll_batches = [], []
    for numbers, categories in batches:
        start = time.perf_counter()
        built = _build(numbers, categories)
        built_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        sketches = _kll_always(numbers)
        kll_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        _bins_only(numbers)
        bins_times.append(time.perf_counter() - start)
        sizes.append(sum(len(sm.dumps(s)) for s in built))
        kll_sizes.append(sum(len(sketch.serialize()) for sketch in sketches))
        built_batches.append(built)
        kll_batches.append(sketches)
    start = time.perf_counter()
    merged = [sm.merge([b[i] for b in built_batches]) for i in range(N_NUM + N_CAT)]
    merge_seconds = time.perf_counter() - start
    merged_size = sum(len(sm.dumps(s)) for s in merged)
    merged_kll = 0
    for i in range(N_NUM):
        sketch = kll_doubles_sketch(sm.KLL_K)
        for sketches in kll_batches:
            sketch.merge(sketches[i])
        merged_kll += len(sketch.serialize())
    kept = sum(isinstance(s, sm.NumericalSummary) and s.kll is not None for s in merged)
    rows = args.batch_rows

    ms = 1e3
    print(f"{N_NUM} numerical + {N_CAT} categorical columns, batches of {rows:,} rows")
    print(
        f"build the summaries as stored                 : "
        f"{statistics.median(built_times) * ms:7.1f} ms per batch"
    )
    print(
        f"a KLL sketch of every numerical column adds   : "
        f"{statistics.median(kll_times) * ms:7.1f} ms per batch (sort included)"
    )
    print(
        f"the fine bins alone (sort + keys)             : "
        f"{statistics.median(bins_times) * ms:7.1f} ms per batch"
    )
    print(
        f"stored size of one batch's summaries          : "
        f"{statistics.median(sizes) / 1024:7.1f} KiB; KLL of every column would add "
        f"{statistics.median(kll_sizes) / 1024:.1f} KiB"
    )
    print(
        f"{args.batches} batches ({args.batches * rows:,} rows) merged: "
        f"{merge_seconds * ms:7.1f} ms for all columns, {merged_size / 1024:.1f} KiB stored "
        f"({kept} sketches kept); KLL of every column would add {merged_kll / 1024:.1f} KiB"
    )
    # A week of an hourly model: 168 stored hour summaries per column, decoded and merged.
    stored_hours = [[sm.dumps(s) for s in merged] for _ in range(168)]
    start = time.perf_counter()
    week = [sm.merge([sm.loads(hour[i]) for hour in stored_hours]) for i in range(N_NUM + N_CAT)]
    week_seconds = time.perf_counter() - start
    print(
        f"a week of such hours (168 per column) decoded and merged: {week_seconds * ms:7.1f} ms "
        f"for all columns ({week[0].rows:,} rows a column)"
    )
    print()
    print(
        f"largest CDF error over 1000 points, {args.batches * rows:,} rows "
        f"in {args.batches} merged parts:"
    )
    n = args.batches * rows
    print(_rank_errors("normal", rng.normal(size=n), args.batches))
    print(_rank_errors("pareto (heavy tail)", rng.pareto(1.5, size=n), args.batches))
    print(_rank_errors("offset 1e6 + N(0,1)", 1e6 + rng.normal(size=n), args.batches))
    print(
        _rank_errors(
            "ties (integers 0..9)", rng.integers(0, 10, size=n).astype(float), args.batches
        )
    )


if __name__ == "__main__":
    main()
