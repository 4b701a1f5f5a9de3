"""One drift run on a 1M-row window against a 1M-row baseline, next to Evidently.

Usage: python benchmarks/drift.py [--rows 1000000] [--baseline-rows N] [--repeat 3]
       [--postgres postgresql://postgres@127.0.0.1:5432/postgres]

In one invocation, on a scratch Postgres database it creates and drops:
1. stores a model (20 numerical + 5 categorical features), a baseline of --baseline-rows rows
   (default: --rows) and a window of --rows predictions (some features drifted);
2. driftwatch, under each verdict (``evidently``: Evidently's rule; ``calibrated``: p-values at
   the window's sizes, CONTRACT section 7), and calibrated with the multivariate detectors off
   (drift.multivariate false, CONTRACT section 11), --repeat times, alternating: in a fresh process,
   times one run from the stored rows to the stored result (reading the window's chunks and the
   baseline from Postgres, every test, the result and its metrics written back) and its peak
   memory, then the same run again in that process (the baseline's prepared arrays and the
   calibrated nulls now in memory: what every later run of a long-lived process costs);
3. Evidently: in a fresh process, the same data already in memory as DataFrames, times
   ``Report([DataDriftPreset()])`` and its peak memory;
then prints the medians, the calibrated / evidently ratios (first run and again), Evidently's
figure, whether every column's test and verdict agree, and the calibrated run with / without
the multivariate detectors (--skip-evidently: that last figure only).
Peak memory is the growth of the process's peak RSS during the first timed run.
``benchmarks/drift_sweep.py`` is the size sweep of runs from summaries next to exact runs.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
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

N_NUM, N_CAT = 20, 5
T0 = datetime(2026, 11, 1, tzinfo=UTC)
DRIFTED_NUM = {0, 3, 7, 12, 18}  # shifted in the window
DRIFTED_CAT = {1, 4}


def make_frame(rows: int, *, seed: int, drifted: bool) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data: dict[str, Any] = {}
    for i in range(N_NUM):
        shift = 0.3 if drifted and i in DRIFTED_NUM else 0.0
        if i % 3 == 0:
            values = rng.normal(shift, 1.0, rows)
        elif i % 3 == 1:
            values = rng.lognormal(shift, 0.6, rows)
        else:
            values = rng.gamma(2.0 + shift * 3, 1.5, rows)
        values[rng.random(rows) < 0.01] = np.nan
        data[f"num_{i}"] = values.round(5)
    for i in range(N_CAT):
        levels = [f"c{i}_{k}" for k in range(4 + 3 * i)]
        weights = np.linspace(1, 2, len(levels))
        if drifted and i in DRIFTED_CAT:
            weights = weights[::-1] ** 3
        data[f"cat_{i}"] = rng.choice(levels, rows, p=weights / weights.sum())
    data["prediction"] = rng.beta(2, 5 if not drifted else 4, rows).round(5)
    return pd.DataFrame(data)


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def current_rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# -- step 1: store ------------------------------------------------------------------------------


def store(url: str, rows: int, baseline_rows: int) -> str:
    from driftwatch import db
    from driftwatch.core.retention import Retention
    from driftwatch.ingest import repository
    from driftwatch.ingest.validation import RawColumns, validate_columns
    from driftwatch.monitoring import files, service
    from driftwatch.registry import service as registry
    from driftwatch.registry.schemas import Feature, ModelCreate

    db.upgrade(url)
    engine = db.get_engine(url)
    name = "bench-" + uuid.uuid4().hex[:6]
    features = [Feature(name=f"num_{i}", kind="numerical") for i in range(N_NUM)]
    features += [Feature(name=f"cat_{i}", kind="categorical") for i in range(N_CAT)]
    with db.session_scope(engine) as session:
        model = registry.create(
            session,
            body=ModelCreate(
                name=name, task="binary_classification", features=features, window="1d"
            ),
        )
        service.baseline_from_table(
            session, model=model, name="training",
            table=files.Table(make_frame(baseline_rows, seed=1, drifted=False), "CSV",
                              files.csv_line),
        )  # fmt: skip
        model_id, specs = model.id, registry.feature_specs(model)
    window = make_frame(rows, seed=2, drifted=True)
    timestamps = (T0.timestamp() + np.arange(rows) * (80_000 / rows)).tolist()
    for start in range(0, rows, 50_000):
        part = window.iloc[start : start + 50_000]
        count = len(part)
        raw = RawColumns(
            count=count,
            prediction_id=[f"p{start + i}" for i in range(count)],
            timestamp=timestamps[start : start + count],
            prediction=part["prediction"].tolist(),
            model_version=[None] * count,
            features={c: files._column(part, c) for c in part.columns if c != "prediction"},
            record=lambda i: None,
        )
        valid = validate_columns(raw, specs, task="binary_classification",
                                 received_at=datetime.now(UTC))  # fmt: skip
        with db.session_scope(engine) as session:
            repository.insert_predictions(
                session, model_id=model_id, columns=valid.columns, retention=Retention()
            )
    return name


# -- step 2: driftwatch, in a fresh process --------------------------------------------------


def driftwatch_run(
    url: str, model_name: str, verdict: str, multivariate: bool = True
) -> dict[str, Any]:
    from driftwatch import db
    from driftwatch.alerting.service import AlertingContext
    from driftwatch.monitoring import service
    from driftwatch.registry import schemas
    from driftwatch.registry import service as registry

    engine = db.get_engine(url)
    with db.session_scope(engine) as session:  # connect and import before the clock starts
        registry.update(session, name=model_name, body=schemas.ModelUpdate(
            drift=schemas.DriftSettings(verdict=verdict, multivariate=multivariate)))  # fmt: skip

    def one_run() -> tuple[float, float, dict[str, Any]]:
        started, cpu = time.perf_counter(), time.process_time()
        with db.session_scope(engine) as session:
            model = registry.get_by_name(session, name=model_name)
            run = service.run_now(session, model=model, start=T0, end=T0 + timedelta(days=1),
                                  alerting=AlertingContext())  # fmt: skip
            assert run.result is not None
            result: dict[str, Any] = run.result.model_dump(mode="json")
        return time.perf_counter() - started, time.process_time() - cpu, result

    before = current_rss_bytes()
    seconds, cpu, result = one_run()
    peak = peak_rss_bytes() - before
    again, cpu_again, _ = one_run()
    keys = ("stattest", "drifted", "score", "verdict", "p_value")
    columns = {f["name"]: {k: f[k] for k in keys} for f in result["features"]}
    columns["prediction"] = {k: result["prediction"][k] for k in keys}
    return {"seconds": seconds, "again": again, "cpu": cpu, "cpu_again": cpu_again,
            "peak_bytes": peak, "rows": result["rows"], "columns": columns,
            "multivariate": result.get("multivariate")}  # fmt: skip


# -- step 3: Evidently, in a fresh process ---------------------------------------------------


def evidently_run(rows: int, baseline_rows: int) -> dict[str, Any]:
    os.environ["DO_NOT_TRACK"] = "1"
    from evidently import Report
    from evidently.legacy.calculations.stattests.registry import _registered_stat_tests
    from evidently.legacy.pipeline.column_mapping import ColumnMapping
    from evidently.legacy.report import Report as LegacyReport
    from evidently.presets import DataDriftPreset

    reference = make_frame(baseline_rows, seed=1, drifted=False)
    current = make_frame(rows, seed=2, drifted=True)
    before = current_rss_bytes()
    started = time.perf_counter()
    Report([DataDriftPreset()]).run(current, reference)
    seconds = time.perf_counter() - started
    peak = peak_rss_bytes() - before
    # Evidently 0.7's current API reports scores without test names; the legacy report (same
    # calculations) names the test of each column, for the agreement check (not timed).
    names = {t.display_name: t.name for tests in _registered_stat_tests.values()
             for t in tests.values()}  # fmt: skip
    mapping = ColumnMapping(
        numerical_features=[f"num_{i}" for i in range(N_NUM)] + ["prediction"],
        categorical_features=[f"cat_{i}" for i in range(N_CAT)],
        target=None,
        prediction=None,
    )
    legacy = LegacyReport(
        metrics=[
            __import__(
                "evidently.legacy.metric_preset", fromlist=["DataDriftPreset"]
            ).DataDriftPreset()
        ]
    )
    legacy.run(reference_data=reference, current_data=current, column_mapping=mapping)
    by_column = legacy.as_dict()["metrics"][1]["result"]["drift_by_columns"]
    columns = {
        name: {
            "stattest": names[c["stattest_name"]],
            "drifted": bool(c["drift_detected"]),
            "score": float(c["drift_score"]),
        }
        for name, c in by_column.items()
    }
    return {"seconds": seconds, "peak_bytes": peak, "columns": columns}


def child(step: str, *args: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, __file__, "--child", step, *args],
                          capture_output=True, text=True, check=False)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"{step} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


VERDICTS = ("evidently", "calibrated")
# the calibrated verdict's run again with the multivariate detectors off (drift.multivariate
# false): what they add (CONTRACT section 11; goal: under 20% at 1M rows)
WITHOUT = "calibrated, no multivariate"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="window rows")
    parser.add_argument("--baseline-rows", type=int, help="baseline rows (default: --rows)")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument(
        "--repeat", type=int, default=3, help="driftwatch runs under each verdict (median taken)"
    )
    parser.add_argument("--skip-evidently", action="store_true",
                        help="no Evidently report (the multivariate figures only)")  # fmt: skip
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        step, *rest = args.child
        if step == "store":
            print(json.dumps({"model": store(rest[0], int(rest[1]), int(rest[2]))}))
        elif step == "driftwatch":
            print(json.dumps(driftwatch_run(rest[0], rest[1], rest[2], rest[3:] != ["off"])))
        else:
            print(json.dumps(evidently_run(int(rest[0]), int(rest[1]))))
        return
    baseline_rows = args.baseline_rows or args.rows

    database = f"driftwatch_drift_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.postgres, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    url = (args.postgres.rsplit("/", 1)[0] + "/" + database).replace(
        "postgresql://", "postgresql+psycopg://"
    )
    attempts: dict[str, list[dict[str, Any]]] = {v: [] for v in (*VERDICTS, WITHOUT)}
    try:
        print(f"storing a {baseline_rows:,}-row baseline and a {args.rows:,}-row window ...",
              flush=True)  # fmt: skip
        model = child("store", url, str(args.rows), str(baseline_rows))["model"]
        print(f"driftwatch runs, {args.repeat} under each verdict, alternating, each in a fresh "
              "process (then once more in it) ...", flush=True)  # fmt: skip
        for _ in range(args.repeat):
            for verdict in VERDICTS:
                attempts[verdict].append(child("driftwatch", url, model, verdict))
            attempts[WITHOUT].append(child("driftwatch", url, model, "calibrated", "off"))
        theirs = None
        if not args.skip_evidently:
            print("Evidently Report([DataDriftPreset()]) ...", flush=True)
            theirs = child("evidently", str(args.rows), str(baseline_rows))
    finally:
        with psycopg.connect(args.postgres, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')

    print_multivariate(attempts)
    if theirs is None:
        return
    first = {v: statistics.median([a["seconds"] for a in attempts[v]]) for v in VERDICTS}
    again = {v: statistics.median([a["again"] for a in attempts[v]]) for v in VERDICTS}
    cpu = {v: statistics.median([a["cpu"] for a in attempts[v]]) for v in VERDICTS}
    cpu_again = {v: statistics.median([a["cpu_again"] for a in attempts[v]]) for v in VERDICTS}
    peak = {v: statistics.median([a["peak_bytes"] for a in attempts[v]]) for v in VERDICTS}
    # each verdict's run closest to its median, for the columns' tests and verdicts
    ours = {v: min(attempts[v], key=lambda a, v=v: abs(a["seconds"] - first[v])) for v in VERDICTS}
    columns = sorted(theirs["columns"])
    evidently, calibrated = ours["evidently"]["columns"], ours["calibrated"]["columns"]
    agree_test = [
        c for c in columns if evidently[c]["stattest"] == theirs["columns"][c]["stattest"]
    ]
    agree = [c for c in columns if evidently[c]["drifted"] == theirs["columns"][c]["drifted"]]
    agree_calibrated = [
        c for c in columns if calibrated[c]["drifted"] == theirs["columns"][c]["drifted"]
    ]
    worst = max(
        abs(evidently[c]["score"] - theirs["columns"][c]["score"])
        / max(abs(theirs["columns"][c]["score"]), 1e-12)
        for c in columns
    )
    mb = 1024 * 1024

    def listed(verdict: str, key: str) -> str:
        return ", ".join(format(a[key], ".2f") for a in attempts[verdict])

    print()
    print(
        f"{args.rows:,}-row window vs {baseline_rows:,}-row baseline, {N_NUM} numerical + "
        f"{N_CAT} categorical features and the prediction"
    )
    print("driftwatch run, stored rows -> stored result: wall-clock (medians of the runs listed)")
    for verdict in VERDICTS:
        print(
            f"  {verdict:10s} first in a process {first[verdict]:6.2f} s "
            f"({listed(verdict, 'seconds')}); again {again[verdict]:6.2f} s "
            f"({listed(verdict, 'again')}); peak +{peak[verdict] / mb:,.0f} MB"
        )
    print("  and the process's CPU time, all its threads (Postgres's own not counted):")
    for verdict in VERDICTS:
        print(
            f"  {verdict:10s} first in a process {cpu[verdict]:6.2f} s "
            f"({listed(verdict, 'cpu')}); again {cpu_again[verdict]:6.2f} s "
            f"({listed(verdict, 'cpu_again')})"
        )
    print(
        f"  calibrated / evidently, wall-clock: {first['calibrated'] / first['evidently']:.2f} "
        f"first in a process, {again['calibrated'] / again['evidently']:.2f} again; CPU: "
        f"{cpu['calibrated'] / cpu['evidently']:.2f} and "
        f"{cpu_again['calibrated'] / cpu_again['evidently']:.2f} (goal at 1M rows: at most 1.20)"
    )
    print(
        "  the first run in a process minus the run again (the cold start, the baseline's "
        f"loading included): calibrated {first['calibrated'] - again['calibrated']:+.2f} s, "
        f"evidently {first['evidently'] - again['evidently']:+.2f} s"
    )
    print(
        f"Evidently DataDriftPreset (DataFrames in RAM): {theirs['seconds']:8.2f} s   "
        f"peak +{theirs['peak_bytes'] / mb:,.0f} MB"
    )
    print(
        f"speed-up (evidently verdict): {theirs['seconds'] / first['evidently']:.1f}x, "
        f"calibrated: {theirs['seconds'] / first['calibrated']:.1f}x (aim 50x, defect under "
        f"20x); memory: {peak['evidently'] / theirs['peak_bytes']:.2f} and "
        f"{peak['calibrated'] / theirs['peak_bytes']:.2f} of Evidently's (aim 0.25)"
    )
    print(
        f"evidently verdict: same test on {len(agree_test)}/{len(columns)} columns, same verdict "
        f"on {len(agree)}/{len(columns)}; largest relative score difference {worst:.2e}"
    )
    for c in columns:
        if c not in agree or c not in agree_test:
            print(f"  differs: {c}: driftwatch {evidently[c]}, Evidently {theirs['columns'][c]}")
    verdicts = [calibrated[c]["verdict"] for c in columns]
    print(
        f"calibrated verdict: drifted as Evidently's rule on {len(agree_calibrated)}/"
        f"{len(columns)} columns ({verdicts.count('drift')} drift, {verdicts.count('no_drift')} "
        f"no_drift, {verdicts.count('insufficient')} insufficient)"
    )
    for c in columns:
        if c not in agree_calibrated:
            print(f"  differs: {c}: calibrated {calibrated[c]}, Evidently {theirs['columns'][c]}")


def print_multivariate(attempts: dict[str, list[dict[str, Any]]]) -> None:
    """The calibrated verdict's run with the multivariate detectors and without, medians and
    their ratio, and what the detectors said."""
    print()
    print("multivariate drift (CONTRACT section 11): the calibrated run with and without it")
    ratios = []
    for key, label in (("seconds", "first in a process"), ("again", "again")):
        on = statistics.median([a[key] for a in attempts["calibrated"]])
        off = statistics.median([a[key] for a in attempts[WITHOUT]])
        ratios.append(on / off)
        print(f"  {label:20s} with {on:6.2f} s, without {off:6.2f} s: x{on / off:.2f} "
              f"(+{on - off:.2f} s; goal: at most x1.20)")  # fmt: skip
    found = attempts["calibrated"][-1]["multivariate"]
    if found:
        for name in ("classifier", "reconstruction"):
            d = found[name]
            print(
                f"  {name:15s} score {d['score']}, threshold {d['threshold']}, drifted "
                f"{d['drifted']} {d.get('top_features') or ''}".rstrip()
            )
        print(f"  rows compared on each side: {found['sample_rows']}")


if __name__ == "__main__":
    main()
