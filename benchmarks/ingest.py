"""Ingest throughput: the SDK into a running ``driftwatch serve`` on Postgres, against raw COPY.

Usage: python benchmarks/ingest.py [--rows 200000] [--repeat 3]
       [--postgres postgresql://postgres@127.0.0.1:5432/postgres]

In one run, on a scratch database it creates and drops:
- raw: psycopg binary COPY of the same records (from the same dicts) into a bare table with one
  typed column per feature and no index: the floor of what Postgres can take;
- sdk: ``driftwatch.Client.log_prediction`` for every record against a ``driftwatch serve``
  subprocess, timed until ``flush()`` says every record is acknowledged (validated, de-duplicated,
  stored with its keys and indexes, and its column summaries kept);
- sdk, no summaries: the same against a second ``driftwatch serve`` on the same database with
  ``DRIFTWATCH_SUMMARIES=0`` (the two SDK paths alternate which goes first in each round);
- shadow: ``driftwatch.Client.log_shadow_prediction`` for every prediction id of the sdk path
  (one challenger version), into the same serve, timed likewise: shadow predictions must be
  taken at least at the rate served ones are.
Prints the median rate of each over --repeat rounds, their ratios, and the median cost of one
``log_prediction`` call in the caller's thread.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psycopg

import driftwatch
from driftwatch.testing import start_serve

N_NUM, N_CAT = 20, 5
SENDERS = int(os.environ.get("SENDERS", "2"))
BATCH = int(os.environ.get("BATCH", "5000"))
STATES = ["CA", "NY", "TX", "WA", "FL", "OR", "NV", "AZ"]


def make_records(n: int, seed: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    numbers = rng.normal(size=(n, N_NUM)).round(6).tolist()
    categories = rng.choice(STATES, size=(n, N_CAT)).tolist()
    scores = rng.random(n).round(6).tolist()
    start = datetime(2026, 11, 1, tzinfo=UTC)
    names = [f"num_{i}" for i in range(N_NUM)] + [f"cat_{i}" for i in range(N_CAT)]
    return [
        {
            "prediction_id": uuid.uuid4().hex,
            "timestamp": start + timedelta(milliseconds=10 * i),
            "features": dict(zip(names, numbers[i] + categories[i], strict=True)),
            "prediction": scores[i],
        }
        for i in range(n)
    ]


def raw_copy(url: str, records: list[dict[str, Any]]) -> float:
    """Rows per second of a binary COPY of these records into a bare typed table."""
    names = [f"num_{i}" for i in range(N_NUM)] + [f"cat_{i}" for i in range(N_CAT)]
    columns = [f"{n} float8" for n in names[:N_NUM]] + [f"{n} text" for n in names[N_NUM:]]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS raw_copy")
        conn.execute(
            "CREATE TABLE raw_copy (prediction_id text, ts timestamptz, prediction float8, "
            + ", ".join(columns)
            + ")"
        )
        types = ["text", "timestamptz", "float8"] + ["float8"] * N_NUM + ["text"] * N_CAT
        start = time.perf_counter()
        with conn.transaction(), conn.cursor() as cursor:
            with cursor.copy(
                f"COPY raw_copy (prediction_id, ts, prediction, {', '.join(names)}) "
                "FROM STDIN (FORMAT BINARY)"
            ) as copy:
                copy.set_types(types)
                for record in records:
                    features = record["features"]
                    copy.write_row(
                        (
                            record["prediction_id"],
                            record["timestamp"],
                            record["prediction"],
                            *[features[name] for name in names],
                        )
                    )
        elapsed = time.perf_counter() - start
        conn.execute("DROP TABLE raw_copy")
    return len(records) / elapsed


def sdk_path(
    server: str, key: str, model: str, records: list[dict[str, Any]], spool: Path
) -> tuple[float, list[int]]:
    """Rows per second through the SDK until acknowledged, and each call's cost in ns."""
    costs = []
    clock = time.perf_counter_ns
    with driftwatch.Client(
        server, api_key=key, spool_dir=spool, senders=SENDERS, batch_size=BATCH
    ) as client:
        start = time.perf_counter()
        for record in records:
            before = clock()
            client.log_prediction(
                model,
                record["features"],
                record["prediction"],
                prediction_id=record["prediction_id"],
                timestamp=record["timestamp"],
            )
            costs.append(clock() - before)
        if not client.flush(timeout=600):
            raise RuntimeError(f"{client.pending()} records not acknowledged")
        elapsed = time.perf_counter() - start
        if client.rejected:
            raise RuntimeError(f"{len(client.rejected)} records rejected")
    return len(records) / elapsed, costs


def shadow_path(
    server: str, key: str, model: str, records: list[dict[str, Any]], spool: Path
) -> float:
    """Rows per second of shadow predictions (one version) for these records' ids through the
    SDK until acknowledged."""
    with driftwatch.Client(
        server, api_key=key, spool_dir=spool, senders=SENDERS, batch_size=BATCH
    ) as client:
        start = time.perf_counter()
        for record in records:
            client.log_shadow_prediction(
                model,
                prediction_id=record["prediction_id"],
                model_version="challenger",
                prediction=1 - record["prediction"],
            )
        if not client.flush(timeout=600):
            raise RuntimeError(f"{client.pending()} shadow records not acknowledged")
        elapsed = time.perf_counter() - start
        if client.rejected:
            raise RuntimeError(f"{len(client.rejected)} shadow records rejected")
    return len(records) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--port", type=int, default=8791)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()

    database = f"driftwatch_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.postgres, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    raw_url = args.postgres.rsplit("/", 1)[0] + "/" + database
    url = raw_url.replace("postgresql://", "postgresql+psycopg://")
    key = "bench-" + uuid.uuid4().hex
    workdir = Path(tempfile.mkdtemp(prefix="driftwatch-bench-"))
    servers = [
        start_serve(url, args.port, workdir / "serve.log", env={"DRIFTWATCH_ADMIN_KEY": key})
    ]
    base = f"http://127.0.0.1:{args.port}"
    plain_base = f"http://127.0.0.1:{args.port + 1}"
    try:
        no_summaries = {"DRIFTWATCH_ADMIN_KEY": key, "DRIFTWATCH_SUMMARIES": "0"}
        servers.append(start_serve(url, args.port + 1, workdir / "plain.log", env=no_summaries))
        raw_rates, sdk_rates, plain_rates, shadow_rates, all_costs = [], [], [], [], []
        for round_number in range(args.repeat):
            records = make_records(args.rows, seed=round_number)
            # The input data is the same for both paths; keep the collector from walking its
            # millions of objects over and over while either path runs.
            gc.collect()
            gc.freeze()
            raw_rates.append(raw_copy(raw_url, records))
            paths = [(base, sdk_rates, "sdk"), (plain_base, plain_rates, "plain")]
            for server_url, rates, label in paths[:: 1 if round_number % 2 == 0 else -1]:
                model = f"bench-{round_number}-{label}-{uuid.uuid4().hex[:6]}"
                httpx.post(
                    f"{server_url}/api/v1/models",
                    headers={"Authorization": f"Bearer {key}"},
                    json={"name": model, "task": "binary_classification"},
                ).raise_for_status()
                spool = workdir / f"spool-{round_number}-{label}"
                rate, costs = sdk_path(server_url, key, model, records, spool)
                rates.append(rate)
                if label == "sdk":
                    all_costs.extend(costs)
                    shadow_spool = workdir / f"shadow-{round_number}"
                    shadow_rates.append(shadow_path(server_url, key, model, records, shadow_spool))
            del records
            gc.unfreeze()
            print(
                f"round {round_number + 1}: raw COPY {raw_rates[-1]:>9,.0f} rows/s   "
                f"SDK -> serve {sdk_rates[-1]:>9,.0f} rows/s   "
                f"without summaries {plain_rates[-1]:>9,.0f} rows/s   "
                f"shadow {shadow_rates[-1]:>9,.0f} rows/s",
                flush=True,
            )
        raw, sdk = statistics.median(raw_rates), statistics.median(sdk_rates)
        print()
        print(
            f"{args.rows:,} predictions, {N_NUM} numerical + {N_CAT} categorical features, "
            f"median of {args.repeat} rounds"
        )
        print(f"raw psycopg COPY into a bare table : {raw:>9,.0f} rows/s")
        print(f"SDK -> driftwatch serve -> Postgres : {sdk:>9,.0f} rows/s")
        plain = statistics.median(plain_rates)
        print(f"the same, DRIFTWATCH_SUMMARIES=0     : {plain:>9,.0f} rows/s")
        # Each round measures both paths back to back, so the ratio within a round is the
        # figure least moved by the machine's noise between rounds.
        ratios = [s / r for s, r in zip(sdk_rates, raw_rates, strict=True)]
        print(
            f"ratio SDK / raw COPY                : {statistics.median(ratios):>9.2f}  "
            f"(median of rounds {', '.join(f'{x:.2f}' for x in ratios)}; "
            "aim >= 0.50, floor 0.25)"
        )
        kept = [s / p for s, p in zip(sdk_rates, plain_rates, strict=True)]
        print(
            f"ratio with / without summaries      : {statistics.median(kept):>9.2f}  "
            f"(median of rounds {', '.join(f'{x:.2f}' for x in kept)}; aim >= 0.80)"
        )
        print(f"shadow predictions, SDK -> serve   : "
              f"{statistics.median(shadow_rates):>9,.0f} rows/s")  # fmt: skip
        shadowed = [h / s for h, s in zip(shadow_rates, sdk_rates, strict=True)]
        print(
            f"ratio shadow / served predictions   : {statistics.median(shadowed):>9.2f}  "
            f"(median of rounds {', '.join(f'{x:.2f}' for x in shadowed)}; aim >= 1)"
        )
        median_us = statistics.median(all_costs) / 1000
        p99_us = np.percentile(all_costs, 99) / 1000
        print(
            f"log_prediction in the caller, median: {median_us:>9.2f} us"
            f"  (p99 {p99_us:.2f} us; aim < 10 us)"
        )
    finally:
        for process in servers:
            process.terminate()
            process.wait(timeout=30)
        with psycopg.connect(args.postgres, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


if __name__ == "__main__":
    main()
