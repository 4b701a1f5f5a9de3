"""Per-test timings of driftwatch.stats on large inputs, next to Evidently 0.7's own stattests.

Usage: python benchmarks/stattests.py [--rows 1000000] [--repeat 3] [--no-evidently]
       [--only ks,wasserstein]

For each test: driftwatch's time for one ``evaluate`` on prepared pairs (reference and current
sorted, as the engine holds them), Evidently's time for the same test on the unsorted pandas
Series it receives, and the ratio; best of --repeat runs. Preparing a pair (dropping missing
values and sorting) is timed on its own line: the reference is prepared once per baseline, the
current once per run and shared by all of a column's tests.

Data: a numerical column (normal, reference vs a slightly shifted current), a numerical column
with 4 distinct values, a categorical column with 30 categories and a binary one, --rows values
each side.
Evidently is skipped where it cannot finish: empirical_mmd builds (n+m)^2 kernel matrices
(terabytes at 1M) and TVD's 1000 permutations rebuild Python lists, Counters and Series of the
whole pooled sample each time (about a second per permutation at 1M).
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from driftwatch.stats import STATTESTS, CategoricalPair, NumericalPair, Pair, evaluate

EVIDENTLY_INFEASIBLE = {"empirical_mmd", "TVD"}


def best_of(repeat: int, run: Callable[[], Any]) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def columns(rows: int) -> dict[str, tuple[str, Any, Any]]:
    rng = np.random.default_rng(0)
    labels = np.array([f"category_{i:02d}" for i in range(30)], dtype=object)
    weights = np.linspace(1, 2, 30)
    return {
        "continuous": ("numerical", rng.normal(0, 1, rows), rng.normal(0.01, 1, rows)),
        "4 values": (
            "numerical",
            rng.integers(0, 4, rows).astype(float),
            rng.integers(0, 4, rows).astype(float),
        ),
        "categorical": (
            "categorical",
            rng.choice(labels, rows, p=weights / weights.sum()),
            rng.choice(labels, rows, p=weights[::-1] / weights.sum()),
        ),
        "binary": (
            "categorical",
            rng.choice(labels[:2], rows, p=[0.5, 0.5]),
            rng.choice(labels[:2], rows, p=[0.499, 0.501]),
        ),
    }


def prepare(kind: str, reference: Any, current: Any) -> Pair:
    if kind == "numerical":
        return NumericalPair.from_unsorted(reference, current)
    return CategoricalPair.from_values(reference, current)


def fresh(pair: Pair) -> Pair:
    """A new pair over the same prepared arrays: nothing cached from an earlier run."""
    if isinstance(pair, NumericalPair):
        return NumericalPair(pair.reference, pair.current, pair.integer_dtype)
    return CategoricalPair(pair.reference_counts, pair.current_counts, list(pair.categories))


def time_evaluate(pair: Pair, kind: str, name: str | None, repeat: int) -> float:
    return best_of(repeat, lambda: evaluate(fresh(pair), kind=kind, stattest=name))


def evidently_runner(
    kind: str, name: str | None, reference: Any, current: Any
) -> Callable[[], Any]:
    os.environ.setdefault("DO_NOT_TRACK", "1")
    from evidently.legacy.calculations.stattests.registry import get_stattest
    from evidently.legacy.core import ColumnType

    column_type = ColumnType.Numerical if kind == "numerical" else ColumnType.Categorical
    ref, cur = pd.Series(reference), pd.Series(current)

    def run() -> Any:
        # As get_one_column_drift: clean, choose, run.
        r = ref.replace([-np.inf, np.inf], np.nan).dropna()
        c = cur.replace([-np.inf, np.inf], np.nan).dropna()
        test = get_stattest(r, c, column_type, name)
        return test(r, c, column_type, None)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-evidently", action="store_true")
    parser.add_argument("--only", default="", help="comma-separated test names")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    only = {name for name in args.only.split(",") if name}

    print(f"{args.rows:,} reference vs {args.rows:,} current rows; best of {args.repeat}")
    print(f"{'column':12} {'test':17} {'driftwatch s':>12} {'evidently s':>12} {'ratio':>8}")
    for column, (kind, reference, current) in columns(args.rows).items():
        seconds = best_of(args.repeat, partial(prepare, kind, reference, current))
        print(f"{column:12} {'(prepare pair)':17} {seconds:12.4f}")
        pair = prepare(kind, reference, current)
        names: list[str | None] = [None]
        names += [n for n, t in STATTESTS.items() if kind in t.kinds]
        if kind == "categorical" and pair.n_unique > 2:
            names.remove("fisher_exact")  # binary columns only
        for name in names:
            if only and name not in only:
                continue
            result = evaluate(pair, kind=kind, stattest=name)
            ours = time_evaluate(pair, kind, name, args.repeat)
            label = f"default:{result.stattest}" if name is None else result.stattest
            theirs = ""
            ratio = ""
            if not args.no_evidently and result.stattest not in EVIDENTLY_INFEASIBLE:
                runner = evidently_runner(kind, name, reference, current)
                evidently_seconds = best_of(1 if ours > 1 else args.repeat, runner)
                theirs = f"{evidently_seconds:12.4f}"
                ratio = f"{evidently_seconds / ours:8.1f}x"
            elif result.stattest in EVIDENTLY_INFEASIBLE:
                theirs = f"{'infeasible':>12}"
            print(f"{column:12} {label:17} {ours:12.4f} {theirs:>12} {ratio:>8}", flush=True)


if __name__ == "__main__":
    main()
