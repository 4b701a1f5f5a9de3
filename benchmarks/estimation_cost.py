"""What performance estimation before labels (CONTRACT section 9) adds to a run.

Usage: python benchmarks/estimation_cost.py [--rows 1000000] [--baseline-rows 200000]
       [--repeat 3] [--tasks binary regression]
       [--postgres postgresql://postgres@127.0.0.1:5432/postgres]

In one invocation, on a scratch Postgres database it creates and drops, for each task two models
of the same window (``benchmarks/drift.py``'s data: 20 numerical + 5 categorical features,
--rows predictions, none labeled yet: the moment an estimate is for) against the same baseline
data (--baseline-rows rows):
- estimated: the baseline carries its labels, so every run estimates (binary: CBPE on the
  scores; regression: direct loss estimation on the features and predictions);
- plain: the same baseline without labels (the run says ``baseline_without_labels``).
Each model is run once first (to prepare its baseline's arrays; the estimated model's first
run also fits its calibrator or loss models, printed apart), then --repeat times in turn;
prints the median seconds of each and the ratio (the issue's aim: estimation adds under 10%).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the same data as benchmarks/drift.py
from drift import N_CAT, N_NUM, T0, make_frame

TASKS = {"binary": "binary_classification", "regression": "regression"}


def frame(task: str, rows: int, *, seed: int, drifted: bool, labeled: bool) -> pd.DataFrame:
    """drift.py's frame; for regression a prediction of a number whose error grows with a
    feature; with ``labeled`` a label column drawn from the truth."""
    data = make_frame(rows, seed=seed, drifted=drifted)
    rng = np.random.default_rng(seed + 100)
    if task == "binary":
        truth = (rng.random(rows) < data["prediction"].to_numpy()).astype(int)
    else:
        x0 = np.nan_to_num(data["num_0"].to_numpy())
        x1 = np.nan_to_num(data["num_1"].to_numpy())
        signal = 10 + 3 * x0 + 2 * x1
        truth = signal + rng.normal(0, 1, rows) * (0.5 + np.abs(x0))
        data["prediction"] = (signal + 0.3 * x0**2).round(4)
    if labeled:
        data["label"] = truth.round(4) if task == "regression" else truth
    return data


def store(url: str, task: str, rows: int, baseline_rows: int, labeled: bool) -> str:
    from driftwatch import db
    from driftwatch.core.retention import Retention
    from driftwatch.ingest import repository
    from driftwatch.ingest.validation import RawColumns, validate_columns
    from driftwatch.monitoring import files, service
    from driftwatch.registry import service as registry
    from driftwatch.registry.schemas import Feature, ModelCreate

    engine = db.get_engine(url)
    name = f"bench-{task}-{'estimated' if labeled else 'plain'}-{uuid.uuid4().hex[:6]}"
    features = [Feature(name=f"num_{i}", kind="numerical") for i in range(N_NUM)]
    features += [Feature(name=f"cat_{i}", kind="categorical") for i in range(N_CAT)]
    with db.session_scope(engine) as session:
        model = registry.create(session, body=ModelCreate(
            name=name, task=TASKS[task], features=features, window="1d"))  # fmt: skip
        baseline = frame(task, baseline_rows, seed=1, drifted=False, labeled=labeled)
        service.baseline_from_table(session, model=model, name="training",
                                    table=files.Table(baseline, "CSV", files.csv_line))  # fmt: skip
        model_id, specs = model.id, registry.feature_specs(model)
    window = frame(task, rows, seed=2, drifted=True, labeled=False)
    timestamps = (T0.timestamp() + np.arange(rows) * (80_000 / rows)).tolist()
    for start in range(0, rows, 50_000):
        part = window.iloc[start : start + 50_000]
        count = len(part)
        raw = RawColumns(
            count=count, prediction_id=[f"p{start + i}" for i in range(count)],
            timestamp=timestamps[start : start + count], prediction=part["prediction"].tolist(),
            model_version=[None] * count,
            features={c: files._column(part, c) for c in part.columns if c != "prediction"},
            record=lambda i: None,
        )  # fmt: skip
        valid = validate_columns(raw, specs, task=TASKS[task], received_at=datetime.now(UTC))
        with db.session_scope(engine) as session:
            repository.insert_predictions(session, model_id=model_id, columns=valid.columns,
                                          retention=Retention())  # fmt: skip
    return name


def timed_run(url: str, name: str) -> tuple[float, dict[str, Any]]:
    from driftwatch import db
    from driftwatch.alerting.service import AlertingContext
    from driftwatch.monitoring import service
    from driftwatch.registry import service as registry

    engine = db.get_engine(url)
    started = time.perf_counter()
    with db.session_scope(engine) as session:
        model = registry.get_by_name(session, name=name)
        run = service.run_now(session, model=model, start=T0, end=T0 + timedelta(days=1),
                              alerting=AlertingContext())  # fmt: skip
        assert run.result is not None
        shown = {"rows": run.result.rows, "reason": run.result.estimated_reason,
                 "estimated": {k: round(v.value, 4) for k, v in
                               (run.result.estimated or {}).items()}}  # fmt: skip
    return time.perf_counter() - started, shown


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--baseline-rows", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--tasks", nargs="+", choices=sorted(TASKS), default=sorted(TASKS))
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    database = f"driftwatch_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.postgres, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    url = args.postgres.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    url += "/" + database
    try:
        from driftwatch import db

        db.upgrade(url)
        for task in args.tasks:
            names = {kind: store(url, task, args.rows, args.baseline_rows, kind == "estimated")
                     for kind in ("plain", "estimated")}  # fmt: skip
            print(f"{task}: stored {args.rows:,} rows a model", flush=True)
            for kind, name in names.items():  # first: prepare (and fit) the baseline
                first, shown = timed_run(url, name)
                print(f"  {kind:>9} first run {first:6.2f} s  {shown}", flush=True)
            seconds: dict[str, list[float]] = {kind: [] for kind in names}
            for round_number in range(args.repeat):
                order = list(names) if round_number % 2 == 0 else list(names)[::-1]
                for kind in order:
                    seconds[kind].append(timed_run(url, names[kind])[0])
            plain, estimated = (statistics.median(seconds[k]) for k in ("plain", "estimated"))
            ratios = [e / p for e, p in zip(seconds["estimated"], seconds["plain"], strict=True)]
            print(f"  {args.rows:,}-row window, {N_NUM} + {N_CAT} features, median of "
                  f"{args.repeat}: plain {plain:.2f} s, estimated {estimated:.2f} s, "
                  f"x{estimated / plain:.3f} (+{estimated - plain:.2f} s; rounds "
                  f"{', '.join(f'{r:.3f}' for r in ratios)}; aim < 1.10)", flush=True)  # fmt: skip
    finally:
        with psycopg.connect(args.postgres, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


if __name__ == "__main__":
    main()
