"""Load: ten SDK clients logging as fast as the collectors take it, for a minute, against two
``driftwatch serve`` processes on one Postgres; then every record sent is counted in the database.

Usage: python benchmarks/load.py [--clients 10] [--seconds 60] [--servers 2]
       [--postgres postgresql://postgres@127.0.0.1:5432/postgres]

Each client is a process with its own ``driftwatch.Client`` (half of them on each server) that
logs predictions of a 10-feature model in a loop, holding back while more than 20,000 of its
records wait to be acknowledged (so "full speed" is what the collectors sustain, not how fast
memory fills). Prints the records per second, the p50/p99 of the batch requests' round trips
(SDK to collector to Postgres commit and back), and whether the count in the database equals
the count sent.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psycopg

from driftwatch.testing import start_serve

ADMIN_KEY = "load-admin-" + uuid.uuid4().hex
MODEL = "load-test"
FEATURES = 10
BACKLOG = 20_000


def client_process(url: str, seconds: float, index: int, spool: str, out: Any) -> None:
    import driftwatch

    latencies: list[float] = []
    client = driftwatch.Client(url, api_key=ADMIN_KEY, spool_dir=spool)
    send = client._http.post  # timed here, in the benchmark only

    def timed_post(*args: Any, **kwargs: Any) -> Any:
        began = time.perf_counter()
        response = send(*args, **kwargs)
        latencies.append(time.perf_counter() - began)
        return response

    client._http.post = timed_post  # type: ignore[method-assign]
    rng = np.random.default_rng(index)
    values = rng.normal(size=(5000, FEATURES)).round(4).tolist()
    names = [f"f{i}" for i in range(FEATURES)]
    sent = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if client.pending() > BACKLOG:
            time.sleep(0.005)
            continue
        for row in values[:1000]:
            client.log_prediction(MODEL, features=dict(zip(names, row, strict=True)),
                                  prediction=row[0], prediction_id=f"c{index}-{sent}")  # fmt: skip
            sent += 1
        values.append(values.pop(0))
    flushed = client.flush(timeout=300)
    client.close(timeout=60)
    out.put((index, sent, flushed, latencies))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--servers", type=int, default=2)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    scratch = f"driftwatch_load_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.postgres, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{scratch}"')
    base = args.postgres.rsplit("/", 1)[0]
    url = f"{base.replace('postgresql://', 'postgresql+psycopg://')}/{scratch}"
    processes = []
    try:
        with tempfile.TemporaryDirectory() as folder:
            work = Path(folder)
            env = {"DRIFTWATCH_ADMIN_KEY": ADMIN_KEY, "DRIFTWATCH_INGEST_RATE_LIMIT": "0"}
            ports = [8801 + i for i in range(args.servers)]
            for port in ports:
                processes.append(start_serve(url, port, work / "serve.log", env=env,
                                             args=("--no-scheduler",)))  # fmt: skip
            admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
            with httpx.Client(base_url=f"http://127.0.0.1:{ports[0]}", headers=admin) as http:
                http.post("/api/v1/models", json={
                    "name": MODEL, "task": "regression", "window": "1h",
                    "features": [{"name": f"f{i}", "kind": "numerical"} for i in range(FEATURES)],
                }).raise_for_status()  # fmt: skip
            queue: Any = multiprocessing.Queue()
            began = time.monotonic()
            clients = [
                multiprocessing.Process(target=client_process, args=(
                    f"http://127.0.0.1:{ports[i % len(ports)]}", args.seconds, i,
                    str(work / f"spool-{i}"), queue))
                for i in range(args.clients)
            ]  # fmt: skip
            for process in clients:
                process.start()
            results = [queue.get(timeout=args.seconds + 600) for _ in clients]
            elapsed = time.monotonic() - began
            for process in clients:
                process.join()
            sent = sum(r[1] for r in results)
            latencies = sorted(x for r in results for x in r[3])
            with psycopg.connect(f"{base}/{scratch}") as connection:
                stored = connection.execute("SELECT count(*) FROM predictions").fetchone()[0]
                distinct = connection.execute(
                    "SELECT count(DISTINCT prediction_id) FROM predictions"
                ).fetchone()[0]
            p50 = statistics.median(latencies) * 1000
            p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000
            print(
                f"{args.clients} clients, {args.servers} serve processes, {args.seconds:.0f} s "
                f"of logging (+ flush): {elapsed:.1f} s in all"
            )
            print(f"  sent {sent:,} predictions: {sent / elapsed:,.0f} a second")
            print(
                f"  batch requests: {len(latencies):,}; round trip p50 {p50:.0f} ms, "
                f"p99 {p99:.0f} ms"
            )
            print(
                f"  in the database: {stored:,} rows, {distinct:,} distinct ids; every client "
                f"flushed: {all(r[2] for r in results)}; equal to sent: {stored == sent}"
            )
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=30)
        with psycopg.connect(args.postgres, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')


if __name__ == "__main__":
    main()
