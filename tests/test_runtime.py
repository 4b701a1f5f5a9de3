"""The app and its workers, wired in one place (``driftwatch.runtime``): ``serve`` runs what its
flags leave on, ``demo`` runs all three, and an app runs its workers from its startup to its
shutdown. A test whose scheduler acts on every model has a database of its own."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from driftwatch import db
from driftwatch.app import create_app
from driftwatch.config import Settings
from driftwatch.core.time import window_start
from driftwatch.runtime import Workers
from tests.conftest import ADMIN_KEY, admin_http, start_server, unique, wait_until
from tests.factories import MONITORED as FEATURES
from tests.factories import frame
from tests.factories import frame_baseline as baseline_records
from tests.factories import frame_records as records

SERVE_FLAGS = ("no_scheduler", "no_monitoring", "no_dispatcher", "no_retention")


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ((), Workers(monitoring=True, dispatcher=True, retention=True)),
        (("no_scheduler",), Workers()),
        (("no_monitoring",), Workers(dispatcher=True, retention=True)),
        (("no_dispatcher",), Workers(monitoring=True, retention=True)),
        (("no_retention",), Workers(monitoring=True, dispatcher=True)),
        (("no_monitoring", "no_dispatcher"), Workers(retention=True)),
    ],
)
def test_serve_runs_the_workers_its_flags_leave_on(
    flags: tuple[str, ...], expected: Workers
) -> None:
    """As the README's command table says: ``--no-scheduler`` turns off all three."""
    assert Workers.of_serve(**{flag: flag in flags for flag in SERVE_FLAGS}) == expected
    assert Workers.every() == Workers.of_serve(**dict.fromkeys(SERVE_FLAGS, False))


def _ours(before: set[threading.Thread]) -> list[threading.Thread]:
    """The workers' threads started since ``before`` that still run."""
    return [thread for thread in threading.enumerate() if thread not in before
            and thread.name.startswith(("APScheduler", "driftwatch-"))]  # fmt: skip


def test_an_app_runs_its_workers_from_startup_to_shutdown(own_database: str) -> None:
    """All three, as ``demo`` (and ``serve`` without flags) runs them, served by uvicorn: the
    scheduler computes a closed window with no one asking, the retention pass runs at start,
    the dispatcher waits for deliveries; all of them stop with the server."""
    settings = Settings(database_url=own_database, admin_key=ADMIN_KEY,  # type: ignore[arg-type]
                        scheduler_interval_seconds=0.2, window_grace_seconds=0.0)  # fmt: skip
    passes = REGISTRY.get_sample_value("driftwatch_retention_passes_total", {"outcome": "done"})
    before = set(threading.enumerate())
    server = start_server(settings, db.get_engine(own_database), workers=Workers.every())
    try:
        workers = server.server.config.app.state.workers
        assert {type(worker).__name__ for worker in workers} == {
            "Scheduler", "Dispatcher", "RetentionWorker",
        }  # fmt: skip
        assert any(thread.name == "driftwatch-dispatcher" for thread in _ours(before))
        with admin_http(server.url) as api:
            model = _model_with_a_closed_window(api)

            def computed() -> bool:
                runs = api.get(f"/api/v1/models/{model}/runs").json()
                return any(run["status"] == "done" and run["rows"] == 30 for run in runs)

            assert wait_until(computed, timeout=30)
        assert wait_until(lambda: REGISTRY.get_sample_value(
            "driftwatch_retention_passes_total", {"outcome": "done"}) != passes)  # fmt: skip
    finally:
        server.stop()
    assert wait_until(lambda: not _ours(before), timeout=10), _ours(before)


def _model_with_a_closed_window(api: httpx.Client) -> str:
    """A model of one-minute windows, with a baseline and 30 predictions in the last closed one."""
    model = unique()
    created = api.post(
        "/api/v1/models",
        json={"name": model, "task": "binary_classification", "features": FEATURES, "window": "1m"},
    )
    assert created.status_code == 201, created.text
    baseline = {"name": "b", "records": baseline_records(frame(100, seed=5))}
    assert api.post(f"/api/v1/models/{model}/baselines", json=baseline).status_code == 201
    closed = window_start(datetime.now(UTC), timedelta(minutes=1)) - timedelta(minutes=1)
    logged = records(frame(30, seed=6), prefix="w", start=closed)
    assert api.post(f"/api/v1/models/{model}/predictions",
                    json={"records": logged}).status_code == 200  # fmt: skip
    return model


def test_an_app_runs_no_workers_unless_asked(settings: Settings) -> None:
    before = set(threading.enumerate())
    app = create_app(settings)
    with TestClient(app):
        assert app.state.workers == []
        assert not _ours(before)


def test_the_pass_at_start_runs_however_slowly_the_app_starts(own_database: str) -> None:
    """The workers are made when the app is, and started when it starts: a start slower than
    APScheduler's default grace (1 s; seen under a loaded machine) skipped the retention pass
    due at start for a whole interval, and the scheduler's first tick likewise."""
    from driftwatch.monitoring.scheduler import Scheduler
    from driftwatch.retention.scheduled import RetentionWorker

    settings = Settings(database_url=own_database, admin_key=ADMIN_KEY,  # type: ignore[arg-type]
                        scheduler_interval_seconds=3600)  # fmt: skip
    engine = db.get_engine(own_database)
    passes = REGISTRY.get_sample_value("driftwatch_retention_passes_total", {"outcome": "done"})
    ticks: list[bool] = []

    class Counting(Scheduler):  # its job is bound when it is made: count the ticks it runs
        def tick(self) -> None:
            ticks.append(True)

    retention, scheduler = RetentionWorker(engine, settings), Counting(engine, settings)
    threading.Event().wait(1.6)  # the app's slow start, between making and starting them
    retention.start()
    scheduler.start()
    try:
        assert wait_until(lambda: REGISTRY.get_sample_value(
            "driftwatch_retention_passes_total", {"outcome": "done"}) != passes)  # fmt: skip
        assert wait_until(lambda: bool(ticks))
    finally:
        retention.shutdown()
        scheduler.shutdown()
