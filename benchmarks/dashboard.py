"""Dashboard render time: the model page over a year of hourly runs of a 25-feature model.

Usage: python benchmarks/dashboard.py [--repeat 15] [--backend postgres|sqlite|both]
       [--postgres postgresql://postgres@127.0.0.1:5432/postgres]

Seeds a scratch database with one model (20 numerical and 5 categorical features), 8,760
hourly runs (365 days) and their metrics as the monitoring engine stores them (about 95 per
run: every feature's score, verdict and missing share, the dataset's, accuracy's), then asks
the real app, in process and signed in, for pages. It prints the median server-side render
time (the page's ``Server-Timing`` header: from the request reaching the page's code to the
HTML being ready, queries included) and the median time until the client has the whole answer.
"""

from __future__ import annotations

import argparse
import re
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from fastapi.testclient import TestClient
from sqlalchemy import insert

from driftwatch import db
from driftwatch.app import create_app
from driftwatch.config import Settings
from driftwatch.models import MonitoredModel, Run, RunMetric

ADMIN_KEY = "bench-admin-" + uuid.uuid4().hex
HOURS = 365 * 24
NUMERICAL, CATEGORICAL = 20, 5


def _result(rng: np.random.Generator, features: list[dict[str, str]]) -> dict[str, Any]:
    entries = []
    for feature in features:
        numerical = feature["kind"] == "numerical"
        score = float(rng.random() * 0.2) if numerical else float(rng.random())
        threshold = 0.1 if numerical else 0.05
        drifted = score >= threshold if numerical else score < threshold
        entries.append({"name": feature["name"], "kind": feature["kind"],
                        "stattest": "wasserstein" if numerical else "chisquare",
                        "score": score, "threshold": threshold, "drifted": drifted,
                        "missing_share": float(rng.random() * 0.02)})  # fmt: skip
    drifted = sum(e["drifted"] for e in entries)
    accuracy = {"accuracy": float(0.8 + rng.random() * 0.1), "f1": float(0.7 + rng.random() * 0.1),
                "roc_auc": float(0.85 + rng.random() * 0.1)}  # fmt: skip
    return {
        "rows": 4000, "labeled_rows": 3000, "features": entries,
        "prediction": {"stattest": "wasserstein", "score": 0.02, "threshold": 0.1,
                       "drifted": False},
        "dataset": {"drifted_features": drifted, "drifted_share": drifted / len(entries),
                    "drifted": drifted / len(entries) >= 0.5},
        "accuracy": accuracy,
        "quality": {"missing_share": 0.01, "new_categories": {}, "out_of_range": {},
                    "rejected": 0},
    }  # fmt: skip


def seed(url: str) -> str:
    from driftwatch.core.result import RunResult

    db.upgrade(url)
    engine = db.get_engine(url)
    features = [{"name": f"num_{i}", "kind": "numerical"} for i in range(NUMERICAL)]
    features += [{"name": f"cat_{i}", "kind": "categorical"} for i in range(CATEGORICAL)]
    name = f"year-{uuid.uuid4().hex[:6]}"
    rng = np.random.default_rng(0)
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    started = time.perf_counter()
    with db.session_scope(engine) as session:
        model = MonitoredModel(name=name, task="binary_classification", features=features,
                               window_seconds=3600)  # fmt: skip
        session.add(model)
        session.flush()
        model_id = model.id
        from driftwatch.models import Baseline

        baseline = Baseline(model_id=model_id, name="training", source="records", rows=1)
        session.add(baseline)
        session.flush()
        runs, metric_rows = [], []
        for hour in range(HOURS, 0, -1):
            start = end - timedelta(hours=hour)
            result = RunResult.model_validate(_result(rng, features))
            runs.append({"model_id": model_id, "baseline_id": baseline.id,
                         "window_start": start, "window_end": start + timedelta(hours=1),
                         "status": "done", "attempts": 1, "computations": 1, "rows": 4000,
                         "labeled_rows": 3000, "result": result, "computed_at": end,
                         "created_at": end})  # fmt: skip
        session.execute(insert(Run), runs)
        ids = dict(session.query(Run.window_start, Run.id).filter(Run.model_id == model_id).all())
        for run in runs:
            for metric, value in run["result"].metrics().items():
                metric_rows.append((ids[run["window_start"]], metric, model_id,
                                    run["window_start"], value))  # fmt: skip
    _insert_metrics(url, engine, metric_rows)
    from driftwatch.monitoring.repository import refresh_day

    with db.session_scope(engine) as session:  # the daily sums, as computing the runs makes them
        for day in range(366, -1, -1):
            refresh_day(session, model_id=model_id, moment=end - timedelta(days=day))
    print(
        f"  seeded {HOURS:,} runs and {len(metric_rows):,} metrics in "
        f"{time.perf_counter() - started:.0f} s"
    )
    return name


def _insert_metrics(url: str, engine: Any, rows: list[tuple[Any, ...]]) -> None:
    if url.startswith("postgresql"):
        plain = url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(plain) as connection, connection.cursor() as cursor:
            with cursor.copy("COPY run_metrics (run_id, metric, model_id, window_start, value) "
                             "FROM STDIN") as copy:  # fmt: skip
                for row in rows:
                    copy.write_row(row)
            cursor.execute("ANALYZE run_metrics")
        return
    with db.session_scope(engine) as session:
        keys = ("run_id", "metric", "model_id", "window_start", "value")
        for chunk in range(0, len(rows), 50_000):
            session.execute(insert(RunMetric),
                            [dict(zip(keys, row, strict=True))
                             for row in rows[chunk : chunk + 50_000]])  # fmt: skip


def measure(url: str, repeat: int) -> None:
    name = seed(url)
    app = create_app(Settings(database_url=url, admin_key=ADMIN_KEY))  # type: ignore[arg-type]
    with TestClient(app) as client:
        form = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text)
        assert form is not None, "the sign-in form has no CSRF token"
        signed = client.post("/login", data={"key": ADMIN_KEY, "next": "/", "csrf": form.group(1)},
                             follow_redirects=False)  # fmt: skip
        assert signed.status_code == 303, signed.text
        pages = [("model page, 365 days", f"/models/{name}?range=365d"),
                 ("model page, 30 days", f"/models/{name}?range=30d"),
                 ("model page, 7 days", f"/models/{name}?range=7d"),
                 ("feature page, 365 days", f"/models/{name}/features/num_3?range=365d"),
                 ("models page", "/")]  # fmt: skip
        for label, path in pages:
            server, total = [], []
            for attempt in range(repeat + 2):
                began = time.perf_counter()
                response = client.get(path)
                elapsed = (time.perf_counter() - began) * 1000
                assert response.status_code == 200, response.text[:500]
                if attempt >= 2:  # two warm-ups
                    server.append(float(response.headers["server-timing"].split("dur=")[1]))
                    total.append(elapsed)
            size = len(response.content) / 1024
            print(
                f"  {label:24} server {statistics.median(server):6.1f} ms "
                f"(min {min(server):.1f}, max {max(server):.1f})   whole answer "
                f"{statistics.median(total):6.1f} ms   {size:,.0f} KiB"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--backend", choices=["postgres", "sqlite", "both"], default="both")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    if args.backend in ("postgres", "both"):
        scratch = f"driftwatch_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(args.postgres, autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{scratch}"')
        try:
            print("Postgres:")
            base = args.postgres.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
            measure(f"{base}/{scratch}", args.repeat)
        finally:
            db.get_engine(f"{base}/{scratch}").dispose()
            with psycopg.connect(args.postgres, autocommit=True) as connection:
                connection.execute(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')
    if args.backend in ("sqlite", "both"):
        with tempfile.TemporaryDirectory() as folder:
            print("SQLite:")
            measure(f"sqlite:///{Path(folder) / 'bench.db'}", args.repeat)


if __name__ == "__main__":
    main()
