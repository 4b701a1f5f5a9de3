"""On-demand runs (``POST /api/v1/models/{name}/runs``) that meet the scheduler on one window.

The scheduler may queue, claim or compute the very window a request asks for at the same
moment: the request answers that window's run, computed, and the window stays one run row
whose alerts moved once. A tick acts on every model of its database, so the test has a database
of its own (``own_database``).
"""

from __future__ import annotations

import base64
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select

from driftwatch import db
from driftwatch.config import Settings
from driftwatch.core.time import window_start
from driftwatch.models import Baseline, MonitoredModel
from driftwatch.monitoring import repository, service
from driftwatch.monitoring.scheduler import Scheduler
from tests.conftest import ADMIN_KEY, admin_http, start_server, unique
from tests.factories import MONITORED as FEATURES
from tests.factories import frame
from tests.factories import frame_baseline as baseline_records
from tests.test_scheduler import runs_of

pytestmark = pytest.mark.slow  # a browser, a server or the command line in processes

ITERATIONS = 32
SECRET_ENV = "DW_TEST_RACE_SECRET"
RULES = f"""
channels:
  hook:
    type: webhook
    url: http://127.0.0.1:9/never-sent
    secret_env: {SECRET_ENV}
rules:
  - name: any-traffic
    model: "*"
    when: rows > 0
    notify: [hook]
"""
# when the request leaves, as a share of a tick's time: before the window is queued, while it
# is queued, claimed, computed, and after (negative: the tick starts that much later)
SHARES = (0.0, -0.2, 0.1, 0.3, 0.5, 0.6, 0.7, 0.8, 0.9, 1.1)


def _model_with_closed_hour(http: httpx.Client) -> tuple[str, datetime, datetime]:
    """A model of hourly windows with a baseline and 20 predictions in the last closed hour."""
    name = unique("race")
    created = http.post(
        "/api/v1/models",
        json={"name": name, "task": "binary_classification", "window": "1h", "features": FEATURES},
    )
    assert created.status_code == 201, created.text
    baseline = http.post(
        f"/api/v1/models/{name}/baselines",
        json={"name": "b", "records": baseline_records(frame(100, seed=3))},
    )
    assert baseline.status_code == 201, baseline.text
    end = window_start(datetime.now(UTC), timedelta(hours=1))
    start = end - timedelta(hours=1)
    records = [
        {"prediction_id": f"p-{i}", "timestamp": (start + timedelta(seconds=60 * i)).isoformat(),
         "features": {key: row[key] for key in ("age", "income", "state") if row[key] == row[key]},
         "prediction": row["prediction"]}
        for i, row in enumerate(frame(20, seed=4).to_dict("records"))
    ]  # fmt: skip
    logged = http.post(f"/api/v1/models/{name}/predictions", json={"records": records})
    assert logged.status_code == 200, logged.text
    assert logged.json()["accepted"] == 20, logged.text
    return name, start, end


def _race(http: httpx.Client, ticker: Scheduler, *, request_delay: float
          ) -> tuple[str, httpx.Response, float]:  # fmt: skip
    """A fresh model's closed window: a tick and a POST of that window released together (the
    POST ``request_delay`` seconds after, or before when negative). The model, the answer and
    the tick's duration."""
    name, start, end = _model_with_closed_hour(http)
    answers: list[httpx.Response] = []
    ticks: list[float] = []
    barrier = threading.Barrier(2)

    def request() -> None:
        barrier.wait()
        time.sleep(max(0.0, request_delay))
        answers.append(
            http.post(
                f"/api/v1/models/{name}/runs",
                json={"start": start.isoformat(), "end": end.isoformat()},
            )
        )

    def tick() -> None:
        barrier.wait()
        time.sleep(max(0.0, -request_delay))
        began = time.monotonic()
        ticker.tick()
        ticks.append(time.monotonic() - began)

    threads = [threading.Thread(target=request), threading.Thread(target=tick)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
        assert not thread.is_alive()
    return name, answers[0], ticks[0]


def test_a_request_for_the_window_the_scheduler_is_on_answers_its_run_computed(
    own_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A scheduler tick (the real one: it queues, claims and computes the window) and a POST of
    the same window, released together, many times and in every order."""
    secret = "whsec_" + base64.b64encode(b"race-test-secret-of-32-bytes-ok!").decode()
    monkeypatch.setenv(SECRET_ENV, secret)
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "alerts.yaml").write_text(RULES)
    settings = Settings(database_url=own_database, admin_key=ADMIN_KEY,  # type: ignore[arg-type]
                        rules_dir=str(tmp_path / "rules"), window_grace_seconds=0.0)  # fmt: skip
    engine = db.get_engine(own_database)
    ticker = Scheduler(engine, settings, owner="race-scheduler")
    server = start_server(settings, engine)
    try:
        with admin_http(server.url) as http:
            http.timeout = httpx.Timeout(120)
            ticks = [0.1]  # how long a tick took (they grow with the models planned)
            for iteration in range(ITERATIONS):
                share = SHARES[iteration % len(SHARES)]
                name, answer, tick = _race(http, ticker, request_delay=share * max(ticks[-4:]))
                ticks.append(tick)
                assert answer.status_code == 200, (iteration, answer.text)
                run = answer.json()
                assert (run["status"], run["rows"], run["error"]) == ("done", 20, None), run
                assert run["dataset"]["drifted_share"] is not None
                [stored] = runs_of(engine, name)  # one window, one row
                assert (stored.id, stored.status, stored.error) == (run["id"], "done", None)
                # computed by the request, the scheduler, or both one after the other, and
                # every computation counted on the row (none lost by an overlapping write)
                computed = REGISTRY.get_sample_value(
                    "driftwatch_runs_total", {"model": name, "outcome": "done"}
                )
                assert computed in (1, 2), iteration
                assert stored.computations == computed, iteration
                [alert] = http.get("/api/v1/alerts", params={"model": name}).json()
                assert alert["state"] == "firing"
                deliveries = http.get("/api/v1/deliveries", params={"alert_id": alert["id"]})
                assert len(deliveries.json()) == 1, (iteration, deliveries.text)
    finally:
        server.stop()


def test_a_window_held_by_another_process_is_waited_for_then_refused_with_retry_after(
    own_database: str, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A window another process claimed and has not finished (it may have died: its lease is
    still running). Postgres: the request waits for it, then answers 503 with Retry-After,
    naming the holder. SQLite: while a request computes, it holds the database's write lock,
    so no one else is computing; the request computes the window itself."""
    monkeypatch.setattr(service, "RUN_WAIT_SECONDS", 0.5)
    settings = Settings(database_url=own_database, admin_key=ADMIN_KEY)  # type: ignore[arg-type]
    engine = db.get_engine(own_database)
    server = start_server(settings, engine)
    try:
        with admin_http(server.url) as http:
            name, start, end = _model_with_closed_hour(http)
            with db.session_scope(engine) as session:
                model_id = session.scalars(
                    select(MonitoredModel.id).where(MonitoredModel.name == name)
                ).one()
                baseline_id = session.scalars(
                    select(Baseline.id).where(Baseline.model_id == model_id)
                ).one()
                repository.enqueue(session, model_id=model_id, baseline_id=baseline_id,
                                   windows=[(start, end)])  # fmt: skip
            with db.session_scope(engine) as session:
                now = datetime.now(UTC)
                claimed = repository.claim(session, owner="other-host:4242", now=now,
                                           lease_until=now + timedelta(minutes=5))  # fmt: skip
                assert claimed is not None
            answer = http.post(
                f"/api/v1/models/{name}/runs",
                json={"start": start.isoformat(), "end": end.isoformat()},
            )
    finally:
        server.stop()
    if backend == "postgres":
        assert answer.status_code == 503, answer.text
        assert answer.headers["Retry-After"] == "10"
        detail = answer.json()["detail"]
        assert f"run {claimed.id}: the window from {start.isoformat()[:19]}" in detail
        assert "is being computed by other-host:4242" in detail
        [stored] = runs_of(engine, name)
        assert (stored.status, stored.computations) == ("running", 0)  # left to its holder
    else:
        assert answer.status_code == 200, answer.text
        assert (answer.json()["id"], answer.json()["status"]) == (claimed.id, "done")
