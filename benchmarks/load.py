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

Noisy neighbour: python benchmarks/load.py --noisy [--seconds 30] [--slow-uploads 30]

One ``driftwatch serve`` (scheduler included) on Postgres. A normal ingest key sends batches of
500 predictions to a model of 5-second windows, the scheduler computes each closed window, and
an admin probe reads the API ten times a second: first alone, then while a noisy ingest key
holds ``--slow-uploads`` uploads open at once (each trickling a few bytes a second, reopened
when refused or cut off) and two of its threads send wide batches (50,000 records of 10
features, about 20 MB each) back to back. Prints, side by side: the normal key's ingest rate
and batch round trips, the scheduler's lag (a window's end to its run computed) and the API
probe's p50/p99; and what became of the noisy key's requests.
"""

from __future__ import annotations

import argparse
import multiprocessing
import socket
import statistics
import tempfile
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
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


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(len(ordered) * share) - 1))] if ordered else 0.0


class Phase:
    """What one phase of the noisy-neighbour run measured."""

    def __init__(self) -> None:
        self.sent = 0
        self.batches: list[float] = []  # the normal key's round trips, seconds
        self.probes: list[float] = []  # the admin probe's round trips, seconds
        self.failures = 0  # requests of the normal key or the probe that did not succeed
        self.noisy: Counter[str] = Counter()  # what the noisy key's requests got
        self.elapsed = 0.0


def _normal_key(url: str, key: str, model: str, stop: threading.Event, phase: Phase) -> None:
    rng = np.random.default_rng(1)
    with httpx.Client(base_url=url, timeout=60, headers={"Authorization": f"Bearer {key}"}) as http:
        while not stop.is_set():
            now = datetime.now(UTC).isoformat()
            rows = rng.normal(size=(500, FEATURES)).round(4).tolist()
            batch = {
                "records": [
                    {
                        "prediction_id": uuid.uuid4().hex,
                        "timestamp": now,
                        "prediction": row[0],
                        "features": {f"f{i}": v for i, v in enumerate(row)},
                    }
                    for row in rows
                ]
            }
            began = time.perf_counter()
            try:
                answer = http.post(f"/api/v1/models/{model}/predictions", json=batch)
                ok = answer.status_code == 200
            except httpx.HTTPError:
                ok = False
            if ok:
                phase.batches.append(time.perf_counter() - began)
                phase.sent += 500
            else:
                phase.failures += 1


def _probe(url: str, model: str, stop: threading.Event, phase: Phase) -> None:
    with httpx.Client(
        base_url=url, timeout=60, headers={"Authorization": f"Bearer {ADMIN_KEY}"}
    ) as http:
        while not stop.is_set():
            began = time.perf_counter()
            try:
                ok = http.get(f"/api/v1/models/{model}").status_code == 200
            except httpx.HTTPError:
                ok = False
            if ok:
                phase.probes.append(time.perf_counter() - began)
            else:
                phase.failures += 1
            stop.wait(0.1)


def _slow_upload(port: int, key: str, model: str, stop: threading.Event, phase: Phase) -> None:
    """One upload open at a time, a few bytes a second; reopened when answered or cut off."""
    head = (
        f"POST /api/v1/models/{model}/predictions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
        "Content-Length: 10000000\r\n\r\n"
    ).encode()
    while not stop.is_set():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(head + b'{"records": [')
                sock.settimeout(0.5)
                while not stop.is_set():
                    try:
                        answer = sock.recv(4096)
                    except TimeoutError:
                        sock.sendall(b" ")
                        continue
                    status = answer.split(b" ")[1].decode() if answer else "closed"
                    phase.noisy[f"slow upload answered {status}"] += 1
                    break
            stop.wait(0.2)  # then another: many slow uploads, not a flood of connections
        except OSError:
            phase.noisy["slow upload cut off"] += 1
            stop.wait(0.2)


def _wide_batches(url: str, key: str, model: str, stop: threading.Event, phase: Phase) -> None:
    """One 50,000-record batch, made once and sent again and again (duplicates after the first
    accepted: the collector still reads, parses and checks all of it)."""
    rng = np.random.default_rng(2)
    now = datetime.now(UTC).isoformat()
    body = orjson.dumps({"records": [
        {"prediction_id": uuid.uuid4().hex, "timestamp": now, "prediction": row[0],
         "features": {f"f{i}": v for i, v in enumerate(row)}}
        for row in rng.normal(size=(50_000, FEATURES)).round(4).tolist()]})  # fmt: skip
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    with httpx.Client(base_url=url, timeout=120, headers=headers) as http:
        while not stop.is_set():
            try:
                answer = http.post(f"/api/v1/models/{model}/predictions", content=body)
                status = str(answer.status_code)
            except httpx.HTTPError as error:
                status = type(error).__name__
            phase.noisy[f"wide batch answered {status}"] += 1
            if status == "429":
                stop.wait(1)


def _noisy_key(port: int, key: str, slow_uploads: int, seconds: float, out: Any) -> None:
    """The noisy key, in a process of its own (its threads do not take the measuring
    threads' interpreter lock): slow uploads and wide batches for ``seconds``."""
    phase, stop = Phase(), threading.Event()
    server = f"http://127.0.0.1:{port}"
    threads = [threading.Thread(target=_slow_upload, args=(port, key, "noisy", stop, phase))
               for _ in range(slow_uploads)]  # fmt: skip
    threads += [threading.Thread(target=_wide_batches, args=(server, key, "noisy", stop, phase))
                for _ in range(2)]  # fmt: skip
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join(timeout=180)
    out.put(dict(phase.noisy))


def _scheduler_lag(url: str, model: str, since: float, until: float) -> list[float]:
    """Seconds from each window's end to its run computed, for windows that ended in the span."""
    with httpx.Client(
        base_url=url, timeout=60, headers={"Authorization": f"Bearer {ADMIN_KEY}"}
    ) as http:
        runs = http.get(f"/api/v1/models/{model}/runs", params={"limit": 1000}).json()
    lags = []
    for run in runs:
        end = datetime.fromisoformat(run["window"]["end"]).timestamp()
        if run.get("computed_at") and since <= end <= until:
            lags.append(datetime.fromisoformat(run["computed_at"]).timestamp() - end)
    return lags


def noisy_neighbour(args: argparse.Namespace) -> None:
    from driftwatch import db
    from driftwatch.auth import service as keys

    scratch = f"driftwatch_noisy_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.postgres, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{scratch}"')
    base = args.postgres.rsplit("/", 1)[0]
    url = f"{base.replace('postgresql://', 'postgresql+psycopg://')}/{scratch}"
    port = 8811
    server = f"http://127.0.0.1:{port}"
    process = None
    try:
        with tempfile.TemporaryDirectory() as folder:
            env = {
                "DRIFTWATCH_ADMIN_KEY": ADMIN_KEY,
                "DRIFTWATCH_INGEST_RATE_LIMIT": "0",
                "DRIFTWATCH_SCHEDULER_INTERVAL_SECONDS": "1",
                "DRIFTWATCH_WINDOW_GRACE_SECONDS": "0",
            }
            process = start_serve(url, port, Path(folder) / "serve.log", env=env, args=())
            with db.session_scope(db.get_engine(url)) as session:
                normal = keys.create(session, name="normal", scope="ingest")[1]
                noisy = keys.create(session, name="noisy", scope="ingest")[1]
            features = [{"name": f"f{i}", "kind": "numerical"} for i in range(FEATURES)]
            admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
            with httpx.Client(base_url=server, headers=admin, timeout=60) as http:
                for name, window in (("normal", "5s"), ("noisy", "1h")):
                    http.post(
                        "/api/v1/models",
                        json={
                            "name": name,
                            "task": "regression",
                            "window": window,
                            "features": features,
                        },
                    ).raise_for_status()
                rows = np.random.default_rng(3).normal(size=(1000, FEATURES)).round(4).tolist()
                baseline = [
                    {"prediction": r[0], "features": {f"f{i}": v for i, v in enumerate(r)}}
                    for r in rows
                ]
                http.post(
                    "/api/v1/models/normal/baselines", json={"name": "b", "records": baseline}
                ).raise_for_status()
            phases = {}
            for label, noisy_on in (("alone", False), ("noisy neighbour", True)):
                phase = Phase()
                stop = threading.Event()
                threads = [
                    threading.Thread(
                        target=_normal_key, args=(server, normal, "normal", stop, phase)
                    ),
                    threading.Thread(target=_probe, args=(server, "normal", stop, phase)),
                ]
                queue: Any = multiprocessing.Queue()
                noisy_process = multiprocessing.Process(
                    target=_noisy_key, args=(port, noisy, args.slow_uploads, args.seconds, queue)
                )
                began_wall, began = time.time(), time.monotonic()
                for thread in threads:
                    thread.start()
                if noisy_on:
                    noisy_process.start()
                time.sleep(args.seconds)
                stop.set()
                for thread in threads:
                    thread.join(timeout=180)
                if noisy_on:
                    phase.noisy.update(queue.get(timeout=300))
                    noisy_process.join()
                phase.elapsed = time.monotonic() - began
                time.sleep(3)  # the last windows' runs
                phases[label] = (
                    phase,
                    _scheduler_lag(server, "normal", began_wall, began_wall + args.seconds),
                )
            print(
                f"noisy neighbour, {args.seconds:.0f} s a phase, {args.slow_uploads} slow "
                "uploads + 2 wide-batch threads of the noisy key"
            )
            print(f"{'':38}{'alone':>16}{'noisy neighbour':>18}")

            def row(name: str, value: Any) -> None:
                print(f"  {name:36}" + "".join(f"{value(*phases[k]):>16}  " for k in phases))

            row("normal key: predictions a second", lambda p, _: f"{p.sent / p.elapsed:,.0f}")
            row(
                "normal key: batch p50 / p99 (ms)",
                lambda p, _: (
                    f"{_percentile(p.batches, 0.5) * 1000:.0f} / "
                    f"{_percentile(p.batches, 0.99) * 1000:.0f}"
                ),
            )
            row(
                "API probe p50 / p99 (ms)",
                lambda p, _: (
                    f"{_percentile(p.probes, 0.5) * 1000:.0f} / "
                    f"{_percentile(p.probes, 0.99) * 1000:.0f}"
                ),
            )
            row("failed requests (normal + probe)", lambda p, _: str(p.failures))
            row("scheduler: windows computed", lambda _, lag: str(len(lag)))
            row(
                "scheduler lag p50 / max (s)",
                lambda _, lag: f"{_percentile(lag, 0.5):.1f} / {max(lag, default=0):.1f}",
            )
            for outcome, count in sorted(phases["noisy neighbour"][0].noisy.items()):
                print(f"  noisy key: {outcome}: {count}")
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=30)
        db.get_engine(url).dispose()
        with psycopg.connect(args.postgres, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--servers", type=int, default=2)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--noisy", action="store_true", help="the noisy-neighbour run instead")
    parser.add_argument("--slow-uploads", type=int, default=30)
    args = parser.parse_args()
    if args.noisy:
        noisy_neighbour(args)
        return
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
