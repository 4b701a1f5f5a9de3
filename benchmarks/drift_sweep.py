"""Size sweep: a run from summaries next to the exact run, on the same window, in one process.

Usage: python benchmarks/drift_sweep.py [--sizes 200000 1000000] [--baseline 200000] [--repeat 3]

For each window size (20 numerical + 5 categorical features, some drifted, as
``benchmarks/drift.py``), against one baseline of --baseline rows: the window's summaries are
built as ingest builds them (batches of 100,000 rows, not timed), then timed, each --repeat
times (medians printed):
- exact: ``compute.compute`` on the window's arrays already in memory (the database read,
  about 3 s per million rows in ``benchmarks/drift.py``, is not counted: the ratio here is a
  lower bound on the real one);
- summaries: the merge of the window's batch summaries and ``compute_from_summaries``;
and checks every feature's score from summaries is within its ``max_error`` of the exact one.
No database: the storage of summaries is measured by ``benchmarks/summaries.py``.

Sizes up to --evidently-max (default 1,000,000) also run Evidently's
``Report([DataDriftPreset()])`` on the same data as DataFrames already in memory, in a fresh
process each (timed once), and print the ratio. Memory: in a fresh process per side, the
peak of what the run itself allocates, traced by ``tracemalloc`` (Python objects and numpy
and pandas buffers) from the moment its inputs are in memory: for driftwatch from summaries,
the window's batch summaries and the baseline profile; for Evidently, the two DataFrames.

``--span-hours 168 --rows-per-hour 100000`` then times a span (a week of an hourly model at
100,000 rows an hour: 16.8M rows) beside one of its hourly windows, both from summaries, in
the same invocation: each hour's summaries are built (not timed) with the builder ingest uses
(``NumericalSummary.of`` per column, category counts) from that hour's 100,000 rows as one
batch, i.e. as a compacted bucket is stored, and serialized as stored (``dumps``); then timed:
reading them back (``loads``), one merge per column, and ``compute_from_summaries``, which is
what a run of the window or of the span costs but for the database query.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from typing import Any

os.environ.setdefault("DO_NOT_TRACK", "1")

import numpy as np

from driftwatch.core.settings import DriftSettings
from driftwatch.core.specs import FeatureSpec
from driftwatch.monitoring import accuracy, compute, from_summaries, profiles
from driftwatch.stats import summaries
from driftwatch.storage.chunks import WindowColumns
from driftwatch.summaries.service import FEATURE, PREDICTION, SpanSummary

N_NUM, N_CAT = 20, 5
DRIFTED_NUM = {0, 3, 7, 12, 18}
DRIFTED_CAT = {1, 4}
BATCH = 100_000
FEATURES = [FeatureSpec(name=f"num_{i}", kind="numerical") for i in range(N_NUM)] + [
    FeatureSpec(name=f"cat_{i}", kind="categorical") for i in range(N_CAT)
]
CATEGORIES = [[f"v{j}" for j in range(8 + 4 * i)] for i in range(N_CAT)]


def window(rows: int, *, seed: int, drifted: bool) -> WindowColumns:
    rng = np.random.default_rng(seed)
    num = np.empty((rows, N_NUM))
    for i in range(N_NUM):
        shift = 0.3 if drifted and i in DRIFTED_NUM else 0.0
        if i % 3 == 0:
            num[:, i] = rng.normal(shift, 1.0, rows)
        elif i % 3 == 1:
            num[:, i] = rng.lognormal(shift, 0.6, rows)
        else:
            num[:, i] = rng.gamma(2.0 + shift * 3, 1.5, rows)
    cat = np.empty((rows, N_CAT), dtype=np.int32)
    for i in range(N_CAT):
        k = len(CATEGORIES[i])
        weights = np.linspace(1, 2, k) if drifted and i in DRIFTED_CAT else np.ones(k)
        cat[:, i] = rng.choice(k, rows, p=weights / weights.sum())
    return WindowColumns(
        timestamps_us=np.zeros(rows, dtype=np.int64), num_values=num, cat_codes=cat,
        categories=CATEGORIES, prediction_values=rng.random(rows),
        class_codes=np.full(rows, -1, dtype=np.int32), classes=[],
    )  # fmt: skip


def batch_summaries(
    data: WindowColumns, batch: int = BATCH
) -> list[dict[tuple[str, str], summaries.ColumnSummary]]:
    parts = []
    for start in range(0, len(data), batch):
        part: dict[tuple[str, str], summaries.ColumnSummary] = {}
        piece = slice(start, start + batch)
        for i in range(N_NUM):
            part[(FEATURE, f"num_{i}")] = summaries.NumericalSummary.of(data.num_values[piece, i])
        for i in range(N_CAT):
            codes = data.cat_codes[piece, i]
            counts = np.bincount(codes, minlength=len(CATEGORIES[i]))
            summary = summaries.CategoricalSummary(count=int(counts.sum()), counts={
                CATEGORIES[i][j]: int(c) for j, c in enumerate(counts.tolist()) if c})  # fmt: skip
            part[(FEATURE, f"cat_{i}")] = summary
        part[(PREDICTION, "value")] = summaries.NumericalSummary.of(data.prediction_values[piece])
        parts.append(part)
    return parts


def merged(parts: list[dict[tuple[str, str], summaries.ColumnSummary]], rows: int) -> SpanSummary:
    span = SpanSummary(start=datetime.now(UTC), end=datetime.now(UTC), rows=rows)
    span.columns = {key: summaries.merge([p[key] for p in parts]) for key in parts[0]}
    return span


def frame(data: WindowColumns) -> Any:
    """The window as the DataFrame Evidently reads (categories as their names)."""
    import pandas as pd

    columns: dict[str, Any] = {f"num_{i}": data.num_values[:, i] for i in range(N_NUM)}
    for i in range(N_CAT):
        columns[f"cat_{i}"] = np.asarray(CATEGORIES[i], dtype=object)[data.cat_codes[:, i]]
    columns["prediction"] = data.prediction_values
    return pd.DataFrame(columns)


def child_evidently(rows: int, baseline_rows: int, traced: bool) -> dict[str, float]:
    """Evidently's DataDriftPreset on this sweep's data: seconds, or (``traced``) the peak
    bytes the report allocates."""
    import tracemalloc

    from evidently import Report
    from evidently.presets import DataDriftPreset

    reference = frame(window(baseline_rows, seed=1, drifted=False))
    current = frame(window(rows, seed=2, drifted=True))
    if traced:
        tracemalloc.start()
    started = time.perf_counter()
    Report([DataDriftPreset()]).run(current, reference)
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1] if traced else 0
    return {"seconds": seconds, "peak_bytes": peak}


def child_summaries_memory(rows: int, baseline_rows: int) -> dict[str, float]:
    """Peak bytes a run from summaries allocates (merge and compute), its inputs in memory."""
    import tracemalloc

    settings = DriftSettings.from_model({"verdict": "evidently"})
    baseline = profiles.profile(window(baseline_rows, seed=1, drifted=False), FEATURES)
    parts = batch_summaries(window(rows, seed=2, drifted=True))
    labeled = accuracy.Labeled(np.zeros(0), [], np.zeros(0), [])
    tracemalloc.start()
    from_summaries.compute_from_summaries(
        task="regression", features=FEATURES, settings=settings, baseline=baseline,
        span=merged(parts, rows), labeled=labeled, rejected=0, rows_exist=False,
    )  # fmt: skip
    return {"peak_bytes": tracemalloc.get_traced_memory()[1]}


def child(*args: str) -> dict[str, float]:
    done = subprocess.run([sys.executable, __file__, "--child", *args],
                          capture_output=True, text=True, check=False)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"{args[0]} failed:\n{done.stderr[-3000:]}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def beside_evidently(sizes: list[int], baseline_rows: int, summary_seconds: dict[int, float]
                     ) -> None:  # fmt: skip
    print("\nEvidently Report([DataDriftPreset()]) on the same data (DataFrames in memory), "
          "a fresh process each; memory: peak allocated by the run (tracemalloc)")  # fmt: skip
    print(f"{'window':>10} {'Evidently s':>12} {'ours s':>8} {'speed-up':>9} {'Evidently MiB':>14}"
          f" {'ours MiB':>9} {'memory ratio':>13}")  # fmt: skip
    for rows in sizes:
        theirs = child("evidently", str(rows), str(baseline_rows), "0")["seconds"]
        their_peak = child("evidently", str(rows), str(baseline_rows), "1")["peak_bytes"]
        our_peak = child("summaries-memory", str(rows), str(baseline_rows))["peak_bytes"]
        ours = summary_seconds[rows]
        print(f"{rows:>10,} {theirs:>12.2f} {ours:>8.3f} {theirs / ours:>8.0f}x"
              f" {their_peak / 2**20:>14.1f} {our_peak / 2**20:>9.1f}"
              f" {our_peak / their_peak:>13.3f}")  # fmt: skip


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        step, numbers = sys.argv[2], [int(v) for v in sys.argv[3:]]
        if step == "evidently":
            out = child_evidently(numbers[0], numbers[1], bool(numbers[2]))
        else:
            out = child_summaries_memory(numbers[0], numbers[1])
        print(json.dumps(out))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[200_000, 1_000_000])
    parser.add_argument("--baseline", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--span-hours",
        type=int,
        default=0,
        help="also time a span of this many hourly buckets (168: a week)",
    )
    parser.add_argument("--rows-per-hour", type=int, default=100_000)
    parser.add_argument("--evidently-max", type=int, default=1_000_000,
                        help="run Evidently beside sizes up to this (0: never)")  # fmt: skip
    args = parser.parse_args()
    summary_seconds: dict[int, float] = {}
    # the columns' tests only: a run from summaries has no multivariate detectors (they need
    # rows), so the exact run leaves them out too (benchmarks/drift.py measures them)
    settings = DriftSettings.from_model({"verdict": "evidently", "multivariate": False})
    baseline = profiles.profile(window(args.baseline, seed=1, drifted=False), FEATURES)
    labeled = accuracy.Labeled(np.zeros(0), [], np.zeros(0), [])
    print(f"baseline {args.baseline:,} rows; {N_NUM} numerical + {N_CAT} categorical features")
    print(f"{'window':>10} {'exact s':>9} {'summaries s':>12} {'ratio':>7} {'max |err|':>10}"
          f" {'max bound':>10} {'within':>7}")  # fmt: skip
    for rows in args.sizes:
        data = window(rows, seed=2, drifted=True)
        parts = batch_summaries(data)
        exact_times, summary_times = [], []
        for _ in range(args.repeat):
            started = time.perf_counter()
            exact, _ = compute.compute(task="regression", features=FEATURES, settings=settings,
                                       baseline=baseline, window=data, labeled=labeled,
                                       rejected=0)  # fmt: skip
            exact_times.append(time.perf_counter() - started)
            started = time.perf_counter()
            approximate, _ = from_summaries.compute_from_summaries(
                task="regression", features=FEATURES, settings=settings, baseline=baseline,
                span=merged(parts, rows), labeled=labeled, rejected=0, rows_exist=False,
            )  # fmt: skip
            summary_times.append(time.perf_counter() - started)
        errors = [abs((a.score or 0) - (e.score or 0)) for a, e in
                  zip(approximate.features, exact.features, strict=True)]  # fmt: skip
        bounds = [a.max_error or 0.0 for a in approximate.features]
        within = all(err <= bound + 1e-12 for err, bound in zip(errors, bounds, strict=True))
        same_verdicts = all(a.drifted == e.drifted for a, e in
                            zip(approximate.features, exact.features, strict=True))  # fmt: skip
        exact_s, summary_s = statistics.median(exact_times), statistics.median(summary_times)
        summary_seconds[rows] = summary_s
        print(f"{rows:>10,} {exact_s:>9.3f} {summary_s:>12.3f} {exact_s / summary_s:>7.1f}"
              f" {max(errors):>10.2g} {max(bounds):>10.2g} {within!s:>7}"
              f"  verdicts agree: {same_verdicts}")  # fmt: skip
    compared = [rows for rows in args.sizes if rows <= args.evidently_max]
    if compared:
        beside_evidently(compared, args.baseline, summary_seconds)
    if args.span_hours:
        span_versus_window(args.span_hours, args.rows_per_hour, baseline, settings, args.repeat)


def _timed_from_stored(
    stored: list[dict[tuple[str, str], bytes]], rows: int, baseline: profiles.BaselineProfile,
    settings: DriftSettings, repeat: int,
) -> tuple[float, float, float]:  # fmt: skip
    """Median seconds to read back, merge and compute a run from these stored bucket
    summaries; and the largest bound on a score, the largest score."""
    labeled = accuracy.Labeled(np.zeros(0), [], np.zeros(0), [])
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        parts = [{key: summaries.loads(body) for key, body in part.items()} for part in stored]
        result, _ = from_summaries.compute_from_summaries(
            task="regression", features=FEATURES, settings=settings, baseline=baseline,
            span=merged(parts, rows), labeled=labeled, rejected=0, rows_exist=False,
        )  # fmt: skip
        times.append(time.perf_counter() - started)
    bounds = [f.max_error or 0.0 for f in result.features]
    return statistics.median(times), max(bounds), max(f.score or 0.0 for f in result.features)


def span_versus_window(hours: int, per_hour: int, baseline: profiles.BaselineProfile,
                       settings: DriftSettings, repeat: int) -> None:  # fmt: skip
    """A span of ``hours`` hourly buckets beside one hourly window, both from summaries."""
    stored = []
    started = time.perf_counter()
    for hour in range(hours):
        (part,) = batch_summaries(window(per_hour, seed=100 + hour, drifted=True), per_hour)
        stored.append({key: summaries.dumps(summary) for key, summary in part.items()})
    built = time.perf_counter() - started
    size = sum(len(body) for part in stored for body in part.values())
    print(
        f"\nspan of {hours} hourly buckets at {per_hour:,} rows an hour ({hours * per_hour:,} "
        f"rows; summaries built in {built:.0f} s, not timed; stored {size / 2**20:.1f} MiB)"
    )
    print(f"{'run':>16} {'rows':>12} {'seconds':>9} {'max bound':>10}")
    one_s, one_bound, _ = _timed_from_stored(stored[:1], per_hour, baseline, settings, repeat)
    span_s, span_bound, _ = _timed_from_stored(stored, hours * per_hour, baseline, settings,
                                               repeat)  # fmt: skip
    print(f"{'one window':>16} {per_hour:>12,} {one_s:>9.3f} {one_bound:>10.2g}")
    print(f"{f'span ({hours} h)':>16} {hours * per_hour:>12,} {span_s:>9.3f} {span_bound:>10.2g}")
    print(f"span / window: {span_s / one_s:.2f} (medians of {repeat})")


if __name__ == "__main__":
    main()
