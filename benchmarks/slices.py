"""A run with segments and shadow versions next to the same run without (CONTRACT section 10).

Usage: python benchmarks/slices.py [--rows 1000000] [--baseline-rows 200000] [--segments 20]
       [--labeled 0.05] [--repeat 3] [--postgres postgresql://postgres@127.0.0.1:5432/postgres]

In one invocation, on a scratch Postgres database it creates and drops:
1. stores two models with the same data (``benchmarks/drift.py``'s 20 numerical + 5
   categorical features, plus ``segment``, a categorical feature of --segments values of
   unequal sizes): a baseline of --baseline-rows rows and a window of --rows predictions, a
   share --labeled of them labeled. ``plain`` has neither segments nor shadows; ``sliced`` names
   ``segment`` as its segment feature (its baseline is prepared per segment when made) and has
   two shadow versions' predictions for every prediction of the window;
2. times one run of each, alternating, --repeat times, each in a fresh process (then once more
   in that process: the baseline's prepared arrays and the calibrated nulls in memory), from the
   stored rows to the stored result with its metrics;
then prints the medians side by side and the ratio sliced / plain (goal: at most 2).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import psycopg
from drift import N_CAT, N_NUM, current_rss_bytes, make_frame, peak_rss_bytes

T0 = datetime(2026, 11, 1, tzinfo=UTC)
KINDS = ("plain", "sliced")
SHADOWS = ("v2-challenger", "v3-candidate")


def with_segment(frame: pd.DataFrame, values: int, seed: int) -> pd.DataFrame:
    """The frame with ``segment``: values of sizes falling off like 1/k (the largest about a
    quarter of the rows at 20 values)."""
    rng = np.random.default_rng(seed)
    weights = 1 / np.arange(1, values + 1)
    frame["segment"] = rng.choice([f"s{k:02d}" for k in range(values)], len(frame),
                                  p=weights / weights.sum())  # fmt: skip
    return frame


def store(url: str, kind: str, rows: int, baseline_rows: int, values: int, labeled: float) -> str:
    from driftwatch import db
    from driftwatch.core.retention import Retention
    from driftwatch.ingest import repository
    from driftwatch.ingest import service as ingest
    from driftwatch.ingest.validation import RawColumns, validate_columns
    from driftwatch.monitoring import files, service
    from driftwatch.registry import service as registry
    from driftwatch.registry.schemas import Feature, ModelCreate

    db.upgrade(url)
    engine = db.get_engine(url)
    name = f"bench-{kind}-" + uuid.uuid4().hex[:6]
    features = [Feature(name=f"num_{i}", kind="numerical") for i in range(N_NUM)]
    features += [Feature(name=f"cat_{i}", kind="categorical") for i in range(N_CAT)]
    features.append(Feature(name="segment", kind="categorical"))
    with db.session_scope(engine) as session:
        model = registry.create(session, body=ModelCreate(
            name=name, task="binary_classification", features=features, window="1d",
            segments=["segment"] if kind == "sliced" else None,
        ))  # fmt: skip
        reference = with_segment(make_frame(baseline_rows, seed=1, drifted=False), values, 3)
        service.baseline_from_table(
            session, model=model, name="training",
            table=files.Table(reference, "CSV", files.csv_line),
        )  # fmt: skip
        model_id, specs = model.id, registry.feature_specs(model)
    window = with_segment(make_frame(rows, seed=2, drifted=True), values, 4)
    timestamps = (T0.timestamp() + np.arange(rows) * (80_000 / rows)).tolist()
    truth = np.random.default_rng(5).random(rows)
    for start in range(0, rows, 50_000):
        part = window.iloc[start : start + 50_000]
        count = len(part)
        ids = [f"p{start + i}" for i in range(count)]
        raw = RawColumns(
            count=count, prediction_id=ids, timestamp=timestamps[start : start + count],
            prediction=part["prediction"].tolist(), model_version=["v1"] * count,
            features={c: files._column(part, c) for c in part.columns if c != "prediction"},
            record=lambda i: None,
        )  # fmt: skip
        valid = validate_columns(raw, specs, task="binary_classification",
                                 received_at=datetime.now(UTC))  # fmt: skip
        scores = part["prediction"].to_numpy()
        with db.session_scope(engine) as session:
            repository.insert_predictions(
                session, model_id=model_id, columns=valid.columns, retention=Retention()
            )
            labels = [{"prediction_id": ids[i], "label": int(truth[start + i] < scores[i])}
                      for i in range(count) if truth[start + i] < labeled]  # fmt: skip
            ingest.log_ground_truth(session, model_name=name, records=labels,
                                    retention=Retention())  # fmt: skip
            if kind == "sliced":
                for number, version in enumerate(SHADOWS):
                    moved = np.clip(scores + 0.05 * (number + 1), 0, 1).round(5).tolist()
                    ingest.log_shadow_predictions(session, model_name=name, records=[
                        {"prediction_id": ids[i], "model_version": version,
                         "prediction": moved[i]} for i in range(count)
                    ])  # fmt: skip
    return name


def timed_run(url: str, model_name: str) -> dict[str, Any]:
    from driftwatch import db
    from driftwatch.alerting.service import AlertingContext
    from driftwatch.monitoring import service
    from driftwatch.registry import service as registry

    engine = db.get_engine(url)
    with db.session_scope(engine) as session:  # connect and import before the clock starts
        registry.get_by_name(session, name=model_name)
    spent = {"segments": 0.0, "versions": 0.0}

    def timing(part: str, function: Any) -> Any:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                spent[part] += time.perf_counter() - started

        return timed

    # where the sliced run's extra time goes: its segments, and its versions with the shadows
    service._segments = timing("segments", service._segments)  # type: ignore[method-assign]
    service._versions = timing("versions", service._versions)  # type: ignore[method-assign]

    def one_run() -> tuple[float, dict[str, Any]]:
        started = time.perf_counter()
        with db.session_scope(engine) as session:
            model = registry.get_by_name(session, name=model_name)
            run = service.run_now(session, model=model, start=T0, end=T0 + timedelta(days=1),
                                  alerting=AlertingContext(), exact=True)  # fmt: skip
            assert run.result is not None
            result: dict[str, Any] = run.result.model_dump(mode="json")
        return time.perf_counter() - started, result

    before = current_rss_bytes()
    seconds, result = one_run()
    peak = peak_rss_bytes() - before
    first_parts = dict(spent)
    again, _ = one_run()
    return {"seconds": seconds, "again": again, "peak_bytes": peak, "rows": result["rows"],
            "segments_seconds": first_parts["segments"],
            "versions_seconds": first_parts["versions"],
            "segments": len(result["segments"]),
            "shadows": sum(v["role"] == "shadow" for v in result["versions"]),
            "largest_drifted_share": [s["dataset"]["drifted_share"]
                                      for s in result["segments"][:3]]}  # fmt: skip


def child(*args: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, __file__, "--child", *args],
                          capture_output=True, text=True, check=False)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"{args[0]} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="window rows")
    parser.add_argument("--baseline-rows", type=int, default=200_000)
    parser.add_argument("--segments", type=int, default=20, help="values of the segment feature")
    parser.add_argument("--labeled", type=float, default=0.05, help="share of rows labeled")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        step, *rest = args.child
        if step == "store":
            url, kind, rows, baseline_rows, values, labeled = rest
            name = store(url, kind, int(rows), int(baseline_rows), int(values), float(labeled))
            print(json.dumps({"model": name}))
        else:
            print(json.dumps(timed_run(rest[0], rest[1])))
        return

    database = f"driftwatch_slices_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.postgres, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    url = (args.postgres.rsplit("/", 1)[0] + "/" + database).replace(
        "postgresql://", "postgresql+psycopg://"
    )
    attempts: dict[str, list[dict[str, Any]]] = {kind: [] for kind in KINDS}
    try:
        models = {}
        for kind in KINDS:
            print(f"storing {kind}: a {args.baseline_rows:,}-row baseline and a {args.rows:,}-row "
                  "window ...", flush=True)  # fmt: skip
            models[kind] = child("store", url, kind, str(args.rows), str(args.baseline_rows),
                                 str(args.segments), str(args.labeled))["model"]  # fmt: skip
        print(f"runs, {args.repeat} of each, alternating, each in a fresh process ...", flush=True)
        for _ in range(args.repeat):
            for kind in KINDS:
                attempt = child("run", url, models[kind])
                attempts[kind].append(attempt)
                print(f"  {kind}: {attempt['seconds']:.2f} s first, {attempt['again']:.2f} s "
                      f"again; of the first, segments {attempt['segments_seconds']:.2f} s, "
                      f"versions and shadows {attempt['versions_seconds']:.2f} s",
                      flush=True)  # fmt: skip
    finally:
        with psycopg.connect(args.postgres, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')

    first = {k: statistics.median(a["seconds"] for a in attempts[k]) for k in KINDS}
    again = {k: statistics.median(a["again"] for a in attempts[k]) for k in KINDS}
    peak = {k: statistics.median(a["peak_bytes"] for a in attempts[k]) for k in KINDS}
    mb = 1024 * 1024
    print()
    print(f"{args.rows:,}-row window vs a {args.baseline_rows:,}-row baseline, {N_NUM} numerical "
          f"+ {N_CAT + 1} categorical features, {args.labeled:.0%} labeled, "
          "calibrated verdict")  # fmt: skip
    sliced = attempts["sliced"][-1]
    print(f"sliced: {sliced['segments']} segments of a {args.segments}-value feature, "
          f"{sliced['shadows']} shadow versions")  # fmt: skip
    for kind in KINDS:
        listed = ", ".join(f"{a['seconds']:.2f}" for a in attempts[kind])
        listed_again = ", ".join(f"{a['again']:.2f}" for a in attempts[kind])
        print(f"  {kind:7s} first in a process {first[kind]:6.2f} s ({listed}); again "
              f"{again[kind]:6.2f} s ({listed_again}); "
              f"peak +{peak[kind] / mb:,.0f} MB")  # fmt: skip
    parts = {p: statistics.median(a[f"{p}_seconds"] for a in attempts["sliced"])
             for p in ("segments", "versions")}  # fmt: skip
    print(f"  of the sliced run (first, medians): segments {parts['segments']:.2f} s, versions "
          f"and shadows {parts['versions']:.2f} s")  # fmt: skip
    print(f"  sliced / plain: {first['sliced'] / first['plain']:.2f} first in a process, "
          f"{again['sliced'] / again['plain']:.2f} again (goal: at most 2)")  # fmt: skip


if __name__ == "__main__":
    main()
