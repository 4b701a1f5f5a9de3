"""What model versions and shadow versions add to a run (CONTRACT section 10).

Usage: python benchmarks/versions.py [--rows 1000000] [--repeat 3]
       [--postgres postgresql://postgres@127.0.0.1:5432/postgres]

In one invocation, on a scratch Postgres database it creates and drops, three models of the
same window (``benchmarks/drift.py``'s data: 20 numerical + 5 categorical features, --rows
predictions, every one labeled) against the same baseline data:
- plain: one served version;
- rollout: two served versions, interleaved half and half (each version's features tested
  from the run's own window read);
- shadowed: one served version and two shadow versions on every prediction id (agreement,
  accuracy and paired intervals of each).
Each model is run once to warm its baseline's prepared arrays, then --repeat times in turn;
prints the median seconds of each and the ratios to plain (the issue's aim: at most 2x).
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
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the same data as benchmarks/drift.py
from drift import N_CAT, N_NUM, T0, make_frame

KINDS = ("plain", "rollout", "shadowed")


def store(url: str, rows: int, kind: str) -> str:
    from driftwatch import db
    from driftwatch.core.retention import Retention
    from driftwatch.ingest import repository
    from driftwatch.ingest.validation import RawColumns, validate_columns
    from driftwatch.monitoring import files, service
    from driftwatch.registry import service as registry
    from driftwatch.registry.schemas import Feature, ModelCreate

    engine = db.get_engine(url)
    name = f"bench-{kind}-{uuid.uuid4().hex[:6]}"
    features = [Feature(name=f"num_{i}", kind="numerical") for i in range(N_NUM)]
    features += [Feature(name=f"cat_{i}", kind="categorical") for i in range(N_CAT)]
    with db.session_scope(engine) as session:
        model = registry.create(session, body=ModelCreate(
            name=name, task="binary_classification", features=features, window="1d"))  # fmt: skip
        service.baseline_from_table(
            session, model=model, name="training",
            table=files.Table(make_frame(rows, seed=1, drifted=False), "CSV", files.csv_line),
        )  # fmt: skip
        model_id, specs = model.id, registry.feature_specs(model)
    window = make_frame(rows, seed=2, drifted=True)
    rng = np.random.default_rng(3)
    truth = (rng.random(rows) < window["prediction"].to_numpy()).astype(int)
    timestamps = (T0.timestamp() + np.arange(rows) * (80_000 / rows)).tolist()
    for start in range(0, rows, 50_000):
        part = window.iloc[start : start + 50_000]
        count = len(part)
        ids = [f"p{start + i}" for i in range(count)]
        versions = ["v2" if kind == "rollout" and i % 2 else "v1" for i in range(count)]
        raw = RawColumns(
            count=count, prediction_id=ids, timestamp=timestamps[start : start + count],
            prediction=part["prediction"].tolist(), model_version=versions,
            features={c: files._column(part, c) for c in part.columns if c != "prediction"},
            record=lambda i: None,
        )  # fmt: skip
        valid = validate_columns(raw, specs, task="binary_classification",
                                 received_at=datetime.now(UTC))  # fmt: skip
        labels = [(pid, float(truth[start + i]), None, T0) for i, pid in enumerate(ids)]
        with db.session_scope(engine) as session:
            repository.insert_predictions(session, model_id=model_id, columns=valid.columns,
                                          retention=Retention())  # fmt: skip
            repository.insert_ground_truth(session, model_id=model_id, rows=labels)
            if kind == "shadowed":
                scores = part["prediction"].to_numpy()
                for version, noise in (("v5", 0.05), ("v6", 0.1)):
                    shadow = np.clip(scores + rng.normal(0, noise, count), 0, 1).round(5)
                    repository.insert_shadow_predictions(session, model_id=model_id, rows=[
                        (pid, version, float(shadow[i]), None) for i, pid in enumerate(ids)
                    ])  # fmt: skip
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
        versions = [(v.model_version, v.role, v.rows) for v in run.result.versions]
    return time.perf_counter() - started, {"versions": versions}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
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
        names = {kind: store(url, args.rows, kind) for kind in KINDS}
        print(f"stored {args.rows:,} rows a model", flush=True)
        for kind in KINDS:  # warm: each baseline's prepared arrays
            _, shown = timed_run(url, names[kind])
            print(f"{kind:>9}: versions {shown['versions']}", flush=True)
        seconds: dict[str, list[float]] = {kind: [] for kind in KINDS}
        for round_number in range(args.repeat):
            order = KINDS if round_number % 2 == 0 else KINDS[::-1]
            for kind in order:
                seconds[kind].append(timed_run(url, names[kind])[0])
            print(f"round {round_number + 1}: " + "   ".join(
                f"{kind} {seconds[kind][-1]:.2f} s" for kind in KINDS), flush=True)  # fmt: skip
        plain = statistics.median(seconds["plain"])
        print()
        print(f"{args.rows:,}-row window, {N_NUM} + {N_CAT} features, every row labeled, "
              f"median of {args.repeat}")  # fmt: skip
        for kind in KINDS:
            median = statistics.median(seconds[kind])
            ratios = [s / p for s, p in zip(seconds[kind], seconds["plain"], strict=True)]
            print(f"{kind:>9}: {median:6.2f} s   x{median / plain:4.2f} of plain  (rounds "
                  f"{', '.join(f'{r:.2f}' for r in ratios)}; aim <= 2)")  # fmt: skip
    finally:
        with psycopg.connect(args.postgres, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


if __name__ == "__main__":
    main()
