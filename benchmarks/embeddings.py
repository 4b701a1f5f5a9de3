"""An embedding feature's drift per method on a large window, next to Evidently 0.7's embedding
drift methods on the same data, in the same invocation.

Usage: python benchmarks/embeddings.py [--rows 100000] [--dims 384] [--repeat 3]
       [--no-evidently] [--only model,mmd]

Data: a baseline and a window of --rows float32 vectors each, standard normal, the window's
first component moved by 0.1 sd. driftwatch's time per method is one feature's whole entry as a
run computes it (``embedding_drift.embedding_outcome``: missing rows dropped, the test with its
permutation p-value, the chart's PCA projection) against a prepared baseline (its sample and
mean, prepared once when the baseline is stored: timed on its own line). Evidently's is its
method object called on the two DataFrames, with its defaults (``distance`` with
``bootstrap=True``, its hypothesis test). Evidently's ``mmd`` builds the (n + m)² kernel matrix
(300 GB at 100k a side): it is timed on --evidently-mmd-rows rows a side, and says so.
Medians of --repeat runs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from driftwatch.core.settings import DriftSettings
from driftwatch.core.specs import EmbeddingSpec
from driftwatch.monitoring import embedding_drift
from driftwatch.monitoring.profiles import embedding_profile

os.environ.setdefault("DO_NOT_TRACK", "1")
METHODS = ("model", "distance", "ratio", "mmd")


def median_of(repeat: int, run: Callable[[], Any]) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def _evidently(method: str) -> Any:
    from evidently.legacy.metrics.data_drift import embedding_drift_methods as evidently

    return {
        "model": evidently.model(), "distance": evidently.distance(bootstrap=True),
        "ratio": evidently.ratio(), "mmd": evidently.mmd(),
    }[method]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--dims", type=int, default=384)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-evidently", action="store_true")
    parser.add_argument("--evidently-mmd-rows", type=int, default=5_000)
    parser.add_argument("--only", default=",".join(METHODS))
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(args.rows, args.dims)).astype(np.float32)
    current = rng.normal(size=(args.rows, args.dims)).astype(np.float32)
    current[:, 0] += 0.1
    spec = EmbeddingSpec("text_embedding", args.dims)
    prepared, profile = median_of(1, lambda: embedding_profile(spec.name, args.dims, reference))
    size = current.nbytes / 2**20
    print(f"{args.rows:,} rows x {args.dims} dimensions a side (float32, {size:.0f} MiB); "
          f"baseline prepared once: {prepared:.2f} s")  # fmt: skip
    print(f"{'method':<10}{'driftwatch s':>14}{'cpu s':>8}{'score':>10}{'p':>10}{'drift':>7}"
          f"{'evidently s':>14}{'score':>10}{'drift':>7}{'ratio':>8}")  # fmt: skip
    for method in args.only.split(","):
        settings = DriftSettings(per_feature={spec.name: {"stattest": method}},
                                 verdict="calibrated")  # fmt: skip
        cpu = time.process_time()
        ours, outcome = median_of(
            args.repeat, lambda s=settings: embedding_drift.embedding_outcome(spec, profile,
                                                                              current, s)
        )  # fmt: skip
        cpu = (time.process_time() - cpu) / args.repeat
        entry = outcome.entry
        line = (f"{method:<10}{ours:>14.2f}{cpu:>8.2f}{entry.score:>10.4f}"
                f"{entry.p_value:>10.2g}{entry.drifted!s:>7}")  # fmt: skip
        if not args.no_evidently:
            rows = args.evidently_mmd_rows if method == "mmd" else args.rows
            frames = pd.DataFrame(current[:rows]), pd.DataFrame(reference[:rows])
            theirs, (score, drifted, _) = median_of(
                1 if method != "mmd" else args.repeat,
                lambda m=method, f=frames: _evidently(m)(f[0].copy(), f[1].copy()),
            )
            note = f"  (Evidently on {rows:,} rows a side)" if rows != args.rows else ""
            line += f"{theirs:>14.2f}{float(score):>10.4f}{bool(drifted)!s:>7}"
            line += f"{theirs / ours:>8.1f}{note}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
