"""Retention on Postgres: expiring a day of raw predictions by dropping its partitions, against
deleting the same rows from unpartitioned tables (the layout before revision 0005).

Usage: python benchmarks/retention.py [--days 6] [--rows-per-day 200000]
       [--postgres postgresql://postgres@127.0.0.1:5432/postgres]

Loads ``days`` days of predictions (10 numerical and 2 categorical features) through the
ingest repository into a scratch database, and copies the same narrow rows and chunks into
two plain tables with the old primary key and indexes. Then, one day at a time, it times
driftwatch's retention pass (``retention.service.apply``: DETACH CONCURRENTLY and DROP of the
day's partitions, batched DELETE of its keys and labels) and, in the same process, a DELETE of
the same day from the plain tables followed by the VACUUM that makes the space reusable (and
the VACUUM of the key and label tables on driftwatch's side, which autovacuum would do). It
prints medians over the days, the WAL each writes, and the disk the tables hold afterwards.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import Engine, text

from driftwatch import db
from driftwatch.core.retention import Retention
from driftwatch.core.time import day_start, utcnow
from driftwatch.ingest import repository
from driftwatch.retention import service
from driftwatch.storage.columns import PredictionColumns
from driftwatch.testing import scratch_database

AGE = timedelta(days=30)
BATCH = 10_000


def _columns(day: int, start: int, count: int, first: datetime, rng: Any) -> PredictionColumns:
    base_us = int((first - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds() * 1e6)
    offsets = np.sort(rng.integers(0, 86_400_000_000, count))
    return PredictionColumns(
        prediction_ids=[f"d{day}-{start + i:08d}" for i in range(count)],
        timestamps_us=base_us + day * 86_400_000_000 + offsets,
        model_versions=["v1"] * count,
        prediction_values=rng.random(count),
        prediction_classes=[None] * count,
        num_values=rng.normal(size=(count, 10)),
        cat_values=[list(rng.choice(["a", "b", "c"], count)) for _ in range(2)],
    )


def load(engine: Engine, days: int, rows_per_day: int, first: datetime) -> None:
    rng = np.random.default_rng(7)
    with db.session_scope(engine) as session:
        session.execute(text(
            "INSERT INTO models (id, name, task, window_seconds, features, created_at, "
            "updated_at) VALUES (1, 'bench', 'regression', 3600, '[]', now(), now())"
        ))  # fmt: skip
    for day in range(days):
        for start in range(0, rows_per_day, BATCH):
            columns = _columns(day, start, min(BATCH, rows_per_day - start), first, rng)
            with db.session_scope(engine) as session:
                repository.insert_predictions(
                    session, model_id=1, columns=columns, retention=Retention()
                )
    with engine.begin() as connection:  # the layout before 0005: one table each, no partitions
        connection.exec_driver_sql(
            "CREATE TABLE plain_predictions AS SELECT * FROM predictions;"
            "ALTER TABLE plain_predictions ADD PRIMARY KEY (model_id, prediction_id);"
            "CREATE INDEX ON plain_predictions USING brin (model_id, ts);"
            "CREATE TABLE plain_chunks AS SELECT * FROM prediction_chunks;"
            "ALTER TABLE plain_chunks ADD PRIMARY KEY (id);"
            "CREATE INDEX ON plain_chunks (model_id, ts_min);"
            "CREATE INDEX ON plain_chunks (model_id, created_at);"
        )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql("VACUUM ANALYZE")


def _wal(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.exec_driver_sql(
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')").scalar_one())  # fmt: skip


def _size(engine: Engine, *tables: str) -> int:
    with engine.connect() as connection:
        return sum(
            int(connection.execute(text("SELECT pg_total_relation_size(:t)"), {"t": t})
                .scalar_one())
            for t in tables
        )  # fmt: skip


def _partitioned_size(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.exec_driver_sql(
            "SELECT coalesce(sum(pg_total_relation_size(inhrelid)), 0) FROM pg_inherits "
            "WHERE inhparent IN ('predictions'::regclass, 'prediction_chunks'::regclass)"
        ).scalar_one()) + _size(engine, "prediction_keys")  # fmt: skip


class _Timed:
    """Wraps one of the retention service's steps to add up the time spent in it."""

    def __init__(self, name: str) -> None:
        self.step, self.seconds = getattr(service, name), 0.0
        setattr(service, name, self)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        began = time.perf_counter()
        try:
            return self.step(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - began


def measure(engine: Engine, days: int, first: datetime) -> None:
    ours, theirs, vacuum = [], [], []
    dropping, deleting = _Timed("_drop_partitions"), _Timed("_apply_rows")
    drop_s, delete_s, our_vacuum = [], [], []
    our_wal, their_wal = [], []
    for day in range(1, days):
        cutoff = first + timedelta(days=day)
        now = cutoff + AGE + timedelta(hours=1)

        wal = _wal(engine)
        dropping.seconds = deleting.seconds = 0.0
        began = time.perf_counter()
        report = service.apply(engine, Retention(AGE), now=now)
        ours.append(time.perf_counter() - began)
        drop_s.append(dropping.seconds)
        delete_s.append(deleting.seconds)
        began = time.perf_counter()  # what autovacuum does next to the rows the pass deleted
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("VACUUM prediction_keys, ground_truth")
        our_vacuum.append(time.perf_counter() - began)
        ours[-1] += our_vacuum[-1]
        our_wal.append(_wal(engine) - wal)
        assert report.cutoff == cutoff, report
        assert len(report.dropped_partitions) == 2, report

        wal = _wal(engine)
        began = time.perf_counter()
        with engine.begin() as connection:
            connection.execute(text("DELETE FROM plain_predictions WHERE ts < :c"), {"c": cutoff})
            connection.execute(text("DELETE FROM plain_chunks WHERE ts_max < :c"), {"c": cutoff})
        theirs.append(time.perf_counter() - began)
        began = time.perf_counter()
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("VACUUM plain_predictions, plain_chunks")
        vacuum.append(time.perf_counter() - began)
        their_wal.append(_wal(engine) - wal)
        print(f"  day {day}: driftwatch {ours[-1]:.3f} s (partitions {drop_s[-1]:.3f} s, keys"
              f" {delete_s[-1]:.3f} s + VACUUM {our_vacuum[-1]:.3f} s);"
              f" DELETE {theirs[-1]:.3f} s + VACUUM {vacuum[-1]:.3f} s")  # fmt: skip

    mib = 1024 * 1024
    our_s, their_s = statistics.median(ours), statistics.median(theirs) + statistics.median(vacuum)
    print(f"\nexpiring one day ({days - 1} days, medians):")
    print(
        f"  driftwatch (pass + VACUUM of the keys):     {our_s:7.3f} s  "
        f"WAL {statistics.median(our_wal) / mib:7.1f} MiB"
    )
    print(
        f"    of which: partitions detached and dropped {statistics.median(drop_s):.3f} s, "
        f"keys and labels deleted {statistics.median(delete_s):.3f} s, their VACUUM "
        f"{statistics.median(our_vacuum):.3f} s"
    )
    print(
        f"  plain tables (DELETE + VACUUM):             {their_s:7.3f} s  "
        f"WAL {statistics.median(their_wal) / mib:7.1f} MiB   (DELETE alone "
        f"{statistics.median(theirs):.3f} s)"
    )
    print(
        f"  ratio (plain / driftwatch): time {their_s / our_s:.1f}x, "
        f"WAL {statistics.median(their_wal) / max(statistics.median(our_wal), 1):.1f}x"
    )
    print(
        f"  disk left, one day of rows: driftwatch {_partitioned_size(engine) / mib:.0f} MiB, "
        f"plain tables {_size(engine, 'plain_predictions', 'plain_chunks') / mib:.0f} MiB "
        "(space deleted rows held is reused, not returned)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=int, default=6)
    parser.add_argument("--rows-per-day", type=int, default=200_000)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    first = day_start(utcnow()) - timedelta(days=60)
    with scratch_database(args.postgres, "driftwatch_bench") as url:
        db.upgrade(url)
        engine = db.get_engine(url)
        began = time.perf_counter()
        load(engine, args.days, args.rows_per_day, first)
        print(f"loaded {args.days} days x {args.rows_per_day:,} predictions "
              f"in {time.perf_counter() - began:.0f} s")  # fmt: skip
        measure(engine, args.days, first)


if __name__ == "__main__":
    main()
