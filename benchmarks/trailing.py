"""A run against a trailing-7-days baseline of an hourly model at 100,000 predictions an hour
(16.8M rows in the span), beside a single-window run from summaries, on Postgres.

Usage: python benchmarks/trailing.py [--rows-per-hour 100000] [--hours 168] [--repeat 3]
       [--postgres postgresql://postgres@127.0.0.1:5432/postgres]

Ingesting 16.8M predictions through the API would take most of an hour on a loaded 2-core
machine, and the raw rows play no part in either run: so the summaries are built through the
code the ingest path uses, ``summaries.service.batch_parts`` (the per-batch summary builder)
and ``summaries.repository.insert_parts`` (its COPY), batch by batch (20,000 rows a batch),
then compacted by ``summaries.service.compact`` as the retention worker compacts closed
buckets; no raw row is stored. The model has 20 numerical and 5 categorical features (as
``benchmarks/drift.py``); the window (the hour after the span) has 5 numerical and 2
categorical features drifted.

Both runs go through ``monitoring.service.run_now``, as ``POST .../runs`` does (the summaries
read from Postgres, merged, compared, the run stored and the rules applied):
- trailing: the window's summary against the 168 hours before it, merged for the run;
- single window: the same window from its summaries against a baseline of 200,000 stored
  rows (the window has no raw rows, so it is computed from its summaries, as a window whose
  rows retention removed).
Each is run once untimed (imports; the stored baseline's profile then cached, as in a serving
process), then timed --repeat times, alternating, under Evidently's verdict and under the
calibrated one; medians are printed side by side.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from datetime import UTC, datetime, timedelta

os.environ.setdefault("DO_NOT_TRACK", "1")

import numpy as np
from sqlalchemy.orm import Session

from driftwatch import db
from driftwatch.alerting.service import AlertingContext
from driftwatch.core.specs import FeatureSpec
from driftwatch.core.time import EPOCH, window_start
from driftwatch.models import MonitoredModel
from driftwatch.monitoring import profiles, repository, service
from driftwatch.registry import service as registry
from driftwatch.registry.schemas import DriftSettings, Feature, ModelCreate, ModelUpdate
from driftwatch.storage.chunks import WindowColumns
from driftwatch.storage.columns import PredictionColumns
from driftwatch.summaries import repository as summary_repository
from driftwatch.summaries import service as summary_service
from driftwatch.testing import scratch_database

N_NUM, N_CAT = 20, 5
DRIFTED_NUM = {0, 3, 7, 12, 18}
DRIFTED_CAT = {1, 4}
BATCH = 20_000
CATEGORIES = [[f"v{j}" for j in range(8 + 4 * i)] for i in range(N_CAT)]
NAMES = [np.asarray(names, dtype=object) for names in CATEGORIES]
FEATURES = [Feature(name=f"num_{i}", kind="numerical") for i in range(N_NUM)] + [
    Feature(name=f"cat_{i}", kind="categorical") for i in range(N_CAT)
]


def _values(rng: np.random.Generator, rows: int, drifted: bool) -> tuple[np.ndarray, np.ndarray]:
    num = np.empty((rows, N_NUM), order="F")
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
    return num, cat


def _batch(
    rng: np.random.Generator, start: datetime, rows: int, drifted: bool
) -> PredictionColumns:
    num, cat = _values(rng, rows, drifted)
    first_us = int((start - EPOCH).total_seconds() * 1_000_000)
    return PredictionColumns(
        prediction_ids=[""] * rows,  # not stored: only the summaries are
        timestamps_us=first_us + np.sort(rng.integers(0, 3_600_000_000, rows)),
        model_versions=[None] * rows,
        prediction_values=rng.random(rows),
        prediction_classes=[None] * rows,
        num_values=num,
        cat_values=[names[cat[:, i]].tolist() for i, names in enumerate(NAMES)],
    )


def load(engine: object, model_id: int, first: datetime, hours: int, per_hour: int) -> None:
    """The summaries of ``hours`` hours from ``first`` and of the window after them."""
    rng = np.random.default_rng(1)
    specs = [FeatureSpec(f.name, f.kind) for f in FEATURES]
    began = time.perf_counter()
    for hour in range(hours + 1):
        start = first + timedelta(hours=hour)
        drifted = hour == hours  # the window
        for _ in range(0, per_hour, BATCH):
            columns = _batch(rng, start, min(BATCH, per_hour), drifted)
            parts = summary_service.batch_parts(columns, features=specs, window_seconds=3600)
            with db.session_scope(engine) as session:  # type: ignore[arg-type]
                summary_repository.insert_parts(session, model_id=model_id, parts=parts)
        if hour % 24 == 23:
            print(f"  {hour + 1} hours summarized ({time.perf_counter() - began:.0f} s)",
                  flush=True)  # fmt: skip
    merged = summary_service.compact(engine, now=first + timedelta(hours=hours + 3))  # type: ignore[arg-type]
    print(f"  compacted: {merged:,} batch summaries merged into their buckets")


def _baseline_of_rows(session: Session, model: MonitoredModel, rows: int) -> int:
    num, cat = _values(np.random.default_rng(2), rows, False)
    window = WindowColumns(
        timestamps_us=np.zeros(rows, dtype=np.int64), num_values=num, cat_codes=cat,
        categories=CATEGORIES, prediction_values=np.random.default_rng(3).random(rows),
        class_codes=np.full(rows, -1, dtype=np.int32), classes=[],
    )  # fmt: skip
    profile = profiles.profile(window, registry.feature_specs(model))
    baseline = repository.insert_baseline(
        session, model_id=model.id, name="training", source="records", profile=profile,
        columns={"features": [f.name for f in FEATURES], "prediction": "prediction",
                 "label": None, "ignored": []}, warnings=[],
    )  # fmt: skip
    return baseline.id


def _timed(
    engine: object, name: str, window: datetime, baseline_id: int
) -> tuple[tuple[float, float], dict]:  # fmt: skip
    """The run's wall-clock and this process's CPU time (Postgres's own is not counted), and
    the run as the API answers it."""
    with db.session_scope(engine) as session:  # type: ignore[arg-type]
        model = registry.get_by_name(session, name=name)
        began, cpu = time.perf_counter(), time.process_time()
        run = service.run_now(session, model=model, start=window, end=window + timedelta(hours=1),
                              alerting=AlertingContext(), baseline_id=baseline_id)  # fmt: skip
        elapsed = (time.perf_counter() - began, time.process_time() - cpu)
        out = service.run_out(session, model=model, run=run).model_dump(mode="json")
    return elapsed, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows-per-hour", type=int, default=100_000)
    parser.add_argument("--hours", type=int, default=168)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    window = window_start(datetime.now(UTC), timedelta(hours=1)) - timedelta(hours=2)
    first = window - timedelta(hours=args.hours)
    with scratch_database(args.postgres, "driftwatch_bench_trailing") as url:
        db.upgrade(url)
        engine = db.get_engine(url)
        with db.session_scope(engine) as session:
            model = registry.create(session, body=ModelCreate(
                name="trailing", task="regression", features=FEATURES, window="1h"))  # fmt: skip
            model_id = model.id
            rows_baseline = _baseline_of_rows(session, model, 200_000)
            trailing = service.baseline_moving(
                session, model=model, name="last-7-days", source="trailing",
                length=f"{args.hours}h",
            ).id  # fmt: skip
        span_rows = args.hours * args.rows_per_hour
        print(f"summaries of {args.hours} hours x {args.rows_per_hour:,} predictions "
              f"({span_rows:,} rows in the span) and the window:")  # fmt: skip
        load(engine, model_id, first, args.hours, args.rows_per_hour)
        print(f"\n{'verdict':<11} {'trailing 7d: wall / CPU (s)':>28} "
              f"{'one window: wall / CPU (s)':>27} {'ratio (CPU)':>12} {'baseline_rows':>14}"
              "  drifted features")  # fmt: skip
        for verdict in ("evidently", "calibrated"):
            with db.session_scope(engine) as session:
                registry.update(session, name="trailing",
                                body=ModelUpdate(drift=DriftSettings(verdict=verdict)))  # fmt: skip
            _timed(engine, "trailing", window, trailing)  # warm: imports, the cached profile
            _timed(engine, "trailing", window, rows_baseline)
            moving_times, single_times = [], []
            for _ in range(args.repeat):
                elapsed, moving_run = _timed(engine, "trailing", window, trailing)
                moving_times.append(elapsed)
                elapsed, single_run = _timed(engine, "trailing", window, rows_baseline)
                single_times.append(elapsed)
            assert moving_run["source"] == single_run["source"] == "summaries"
            moving_wall = statistics.median(t[0] for t in moving_times)
            moving_cpu = statistics.median(t[1] for t in moving_times)
            single_wall = statistics.median(t[0] for t in single_times)
            single_cpu = statistics.median(t[1] for t in single_times)
            drifted = sorted(f["name"] for f in moving_run["features"] if f["drifted"])
            print(f"{verdict:<11} {moving_wall:>17.3f} / {moving_cpu:>6.3f} "
                  f"{single_wall:>16.3f} / {single_cpu:>6.3f} {moving_cpu / single_cpu:>12.2f} "
                  f"{moving_run['baseline_rows']:>14,}  {', '.join(drifted)}")  # fmt: skip
        span = moving_run["baseline"]
        print(f"\nspan compared with: {span['start']} to {span['end']}; window rows "
              f"{moving_run['rows']:,}; medians of {args.repeat}; largest max_error "
              f"{max(moving_run['max_error'].values()):.4f}")  # fmt: skip
        engine.dispose()


if __name__ == "__main__":
    main()
