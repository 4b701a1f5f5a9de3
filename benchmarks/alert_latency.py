"""Alert latency: from a run's commit to its webhook arriving at a healthy local receiver.

Usage: python benchmarks/alert_latency.py [--repeat 20] [--backend postgres|sqlite|both]
       [--postgres postgresql://postgres@127.0.0.1:5432/postgres]

A model gets a rule (``rows > 150``) that every other window breaks, so each run fires or
resolves an alert and sends one signed webhook. ``POST .../runs`` computes a window and commits
the run, the alert transition and the delivery together, then answers. For each run:
- ``after reply``: webhook arrival minus the moment the run's answer reached the client (the
  commit happened just before that answer was sent, so this is commit -> arrival, give or take
  the reply's own trip);
- ``after request``: arrival minus the moment the request was sent (computing the window
  included): an upper bound.
Two set-ups, each a real ``driftwatch serve`` process:
- same process: the run is computed by the process whose dispatcher delivers (it is woken by
  the commit);
- other replica: the run is computed by a ``--no-scheduler`` process and delivered by another
  one, which finds it by polling (``DRIFTWATCH_DISPATCHER_INTERVAL_SECONDS``, default 1 s).
Prints medians and maxima in milliseconds.
"""

from __future__ import annotations

import argparse
import base64
import json
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import psycopg

from driftwatch.testing import start_serve

ADMIN_KEY = "bench-admin-" + uuid.uuid4().hex
SECRET = "whsec_" + base64.b64encode(b"driftwatch-benchmark-secret-32b!").decode()
T0 = datetime(2026, 11, 1, tzinfo=UTC)
RULES = """
channels:
  pipeline:
    type: webhook
    url: {url}
    secret_env: BENCH_WEBHOOK_SECRET
rules:
  - name: busy
    model: "*"
    when: rows > 150
    notify: [pipeline]
"""


class Receiver:
    """A healthy webhook receiver that notes when each message arrives (wall clock)."""

    def __init__(self) -> None:
        self.arrivals: dict[int, float] = {}  # run id -> time.time()
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                arrived = time.time()
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                run_id = json.loads(body)["data"]["run_id"]
                with outer.lock:
                    outer.arrivals.setdefault(run_id, arrived)
                self.send_response(204)
                self.end_headers()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/hooks"

    def wait_for(self, run_id: int, timeout: float = 30.0) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if run_id in self.arrivals:
                    return self.arrivals[run_id]
            time.sleep(0.0005)
        raise RuntimeError(f"the webhook of run {run_id} never arrived")


def prepare(http: httpx.Client) -> str:
    name = f"latency-{uuid.uuid4().hex[:8]}"
    created = http.post("/api/v1/models", json={
        "name": name, "task": "binary_classification", "window": "1h",
        "features": [{"name": "x", "kind": "numerical"}]})  # fmt: skip
    created.raise_for_status()
    baseline = [{"features": {"x": i / 10}, "prediction": 0.5} for i in range(200)]
    http.post(f"/api/v1/models/{name}/baselines",
              json={"name": "b", "records": baseline}).raise_for_status()  # fmt: skip
    return name


def measure(http: httpx.Client, receiver: Receiver, repeat: int) -> dict[str, list[float]]:
    name = prepare(http)
    after_reply, after_request = [], []
    for hour in range(repeat + 1):
        start = T0 + timedelta(hours=hour)
        rows = 200 if hour % 2 == 0 else 100  # fires, resolves, fires, ...
        records = [{"prediction_id": f"{hour}-{i}", "features": {"x": i / 10},
                    "prediction": 0.5, "timestamp": (start + timedelta(seconds=i)).isoformat()}
                   for i in range(rows)]  # fmt: skip
        http.post(f"/api/v1/models/{name}/predictions",
                  json={"records": records}).raise_for_status()  # fmt: skip
        sent = time.time()
        response = http.post(
            f"/api/v1/models/{name}/runs",
            json={"start": start.isoformat(), "end": (start + timedelta(hours=1)).isoformat()},
        )
        replied = time.time()
        response.raise_for_status()
        arrived = receiver.wait_for(response.json()["id"])
        if hour > 0:  # the first one warms the path up
            after_reply.append(max(arrived - replied, 0.0) * 1000)
            after_request.append((arrived - sent) * 1000)
    return {"after reply": after_reply, "after request": after_request}


def run_backend(url: str, repeat: int, work: Path) -> None:
    receiver = Receiver()
    rules = work / "rules"
    rules.mkdir(exist_ok=True)
    (rules / "bench.yaml").write_text(RULES.format(url=receiver.url))
    env = {"DRIFTWATCH_ADMIN_KEY": ADMIN_KEY, "DRIFTWATCH_RULES_DIR": str(rules),
           "BENCH_WEBHOOK_SECRET": SECRET}  # fmt: skip
    log = work / "serve.log"
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    results = {}
    with ExitStack() as stack:
        delivering = start_serve(url, 8793, log, env=env, args=("--no-monitoring",))
        stack.callback(_stop, delivering)
        with httpx.Client(base_url="http://127.0.0.1:8793", headers=headers, timeout=60) as http:
            results["same process"] = measure(http, receiver, repeat)
        computing = start_serve(url, 8794, log, env=env,
                                args=("--no-scheduler",))  # fmt: skip
        stack.callback(_stop, computing)
        with httpx.Client(base_url="http://127.0.0.1:8794", headers=headers, timeout=60) as http:
            results["other replica"] = measure(http, receiver, repeat)
    receiver.httpd.shutdown()
    for setup, series in results.items():
        for label, values in series.items():
            print(f"  {setup:14} commit->arrival {label:14} median {statistics.median(values):7.1f}"
                  f" ms   max {max(values):7.1f} ms   (n={len(values)})")  # fmt: skip


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    process.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--backend", choices=["postgres", "sqlite", "both"], default="both")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        if args.backend in ("sqlite", "both"):
            print("SQLite (embedded default):")
            run_backend(f"sqlite:///{work / 'bench.db'}", args.repeat, work)
        if args.backend in ("postgres", "both"):
            name = f"driftwatch_bench_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(args.postgres, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            try:
                print("Postgres:")
                base = args.postgres.rsplit("/", 1)[0].replace("postgresql://",
                                                               "postgresql+psycopg://")  # fmt: skip
                run_backend(f"{base}/{name}", args.repeat, work)
            finally:
                with psycopg.connect(args.postgres, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
