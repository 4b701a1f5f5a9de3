"""The scheduler: every closed window computed once, late labels recomputed, failures isolated.

A tick plans and computes every model in its database, so each test here has a database of its
own (``own_database``): the models earlier tests left would otherwise share the tick's time budget.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, delete, select
from sqlalchemy.orm import Session

from driftwatch import db
from driftwatch.app import create_app
from driftwatch.config import Settings
from driftwatch.core.time import window_start
from driftwatch.models import BaselineColumn, MonitoredModel, Run
from driftwatch.monitoring.scheduler import Scheduler
from driftwatch.testing import start_serve
from tests.conftest import ADMIN_KEY, create_model, free_port, wait_until
from tests.factories import MONITORED as FEATURES
from tests.factories import frame, post
from tests.factories import frame_baseline as baseline_records


def model_with_history(api: TestClient, *, windows: int, window: str = "1m") -> dict[str, Any]:
    """A model with a baseline and predictions spread over ``windows`` closed windows."""
    model = create_model(api, features=FEATURES, window=window)
    name = model["name"]
    post(api, f"/api/v1/models/{name}/baselines",
         {"name": "b", "records": baseline_records(frame(300, seed=20))}, 201)  # fmt: skip
    length = timedelta(minutes=1)
    first = window_start(datetime.now(UTC), length) - windows * length
    data = frame(windows * 20, seed=21)
    recs = []
    for i, row in enumerate(data.to_dict("records")):
        recs.append({
            "prediction_id": f"h-{i}",
            "timestamp": (first + timedelta(seconds=3 * i)).isoformat(),
            "features": {k: (None if row[k] != row[k] else row[k]) for k in ("age", "income",
                                                                              "state")},
            "prediction": row["prediction"],
        })  # fmt: skip
    post(api, f"/api/v1/models/{name}/predictions", {"records": recs})
    return {"name": name, "first": first, "windows": windows}


def runs_of(engine: Engine, name: str) -> list[Run]:
    with Session(engine) as session:
        model_id = session.scalars(
            select(MonitoredModel.id).where(MonitoredModel.name == name)
        ).one()
        # (not the day and week spans the scheduler keeps for the dashboard's long ranges)
        return list(session.scalars(select(Run).where(Run.model_id == model_id,
                                                      Run.kind != "span")
                                    .order_by(Run.window_start)))  # fmt: skip


@dataclass
class Own:
    url: str
    settings: Settings
    engine: Engine
    api: TestClient


@pytest.fixture
def own(own_database: str) -> Iterator[Own]:
    settings = Settings(database_url=own_database, admin_key=ADMIN_KEY)  # type: ignore[arg-type]
    engine = db.get_engine(own_database)
    with TestClient(
        create_app(settings, engine), headers={"Authorization": f"Bearer {ADMIN_KEY}"}
    ) as api:
        yield Own(own_database, settings, engine, api)


def scheduler(settings: Settings, engine: Engine) -> Scheduler:
    return Scheduler(engine, settings.model_copy(update={"window_grace_seconds": 0.0}),
                     owner="test")  # fmt: skip


def test_a_tick_computes_every_closed_window_once(own: Own) -> None:
    api, settings, engine = own.api, own.settings, own.engine
    history = model_with_history(api, windows=4)
    ticker = scheduler(settings, engine)
    ticker.tick()
    # (a minute may close while the test runs: that window is computed too, empty)
    runs = runs_of(engine, history["name"])[:4]
    assert [r.window_start for r in runs] == [
        history["first"] + timedelta(minutes=i) for i in range(4)
    ]
    assert [(r.status, r.computations, r.error) for r in runs] == [("done", 1, None)] * 4
    assert [r.rows for r in runs] == [20, 20, 20, 20]
    ticker.tick()  # the same windows are not computed again
    assert {r.computations for r in runs_of(engine, history["name"])} == {1}
    listed = api.get(f"/api/v1/models/{history['name']}/runs").json()
    assert len(listed) >= 4
    assert listed[-1]["dataset"]["drifted_share"] is not None


def test_late_labels_recompute_their_window(own: Own) -> None:
    api, settings, engine = own.api, own.settings, own.engine
    history = model_with_history(api, windows=2)
    ticker = scheduler(settings, engine)
    ticker.tick()
    before = runs_of(engine, history["name"])[:2]
    assert [r.labeled_rows for r in before] == [0, 0]
    # labels for predictions of the second window only (predictions 20..39)
    post(
        api,
        f"/api/v1/models/{history['name']}/ground-truth",
        {"records": [{"prediction_id": f"h-{i}", "label": i % 2} for i in range(20, 30)]},
    )
    ticker.tick()
    after = runs_of(engine, history["name"])[:2]
    assert [r.labeled_rows for r in after] == [0, 10]
    assert [r.computations for r in after] == [1, 2]
    assert after[1].result is not None
    assert after[1].result.accuracy is not None


def test_late_shadow_predictions_recompute_their_window(own: Own) -> None:
    """A shadow prediction sent after its served prediction's window was computed marks that
    window for recompute, as a late label does; one sent again (a duplicate) does not."""
    api, settings, engine = own.api, own.settings, own.engine
    history = model_with_history(api, windows=2)
    ticker = scheduler(settings, engine)
    ticker.tick()
    before = runs_of(engine, history["name"])[:2]
    assert before[0].result is not None
    assert [v.role for v in before[0].result.versions] == ["served"]
    shadows = {"records": [{"prediction_id": f"h-{i}", "model_version": "v2", "prediction": 0.5}
                           for i in range(5, 15)]}  # the first window's  # fmt: skip
    post(api, f"/api/v1/models/{history['name']}/shadow-predictions", shadows)
    ticker.tick()
    after = runs_of(engine, history["name"])[:2]
    assert [r.computations for r in after] == [2, 1]
    assert after[0].result is not None
    shadow = next(v for v in after[0].result.versions if v.role == "shadow")
    assert (shadow.model_version, shadow.rows) == ("v2", 10)
    post(api, f"/api/v1/models/{history['name']}/shadow-predictions", shadows)  # a retry
    ticker.tick()
    assert [r.computations for r in runs_of(engine, history["name"])[:2]] == [2, 1]


def test_one_failing_model_does_not_stop_the_others(own: Own) -> None:
    api, settings, engine = own.api, own.settings, own.engine
    broken = model_with_history(api, windows=1)
    healthy = model_with_history(api, windows=1)
    with Session(engine) as session:  # break the first model's baseline for real
        model = session.scalars(
            select(MonitoredModel).where(MonitoredModel.name == broken["name"])
        ).one()
        session.execute(
            delete(BaselineColumn).where(BaselineColumn.baseline_id == model.active_baseline_id)
        )
        session.commit()
    scheduler(settings, engine).tick()
    failed = runs_of(engine, broken["name"])[0]
    assert failed.status == "pending"  # retried later, with a back-off
    assert failed.error
    done = runs_of(engine, healthy["name"])[0]
    assert done.status == "done"


@pytest.mark.slow
def test_three_serve_processes_compute_each_window_exactly_once(own: Own, tmp_path: Path) -> None:
    api, database_url, engine = own.api, own.url, own.engine
    history = model_with_history(api, windows=12)
    env = {"DRIFTWATCH_ADMIN_KEY": ADMIN_KEY, "DRIFTWATCH_SCHEDULER_INTERVAL_SECONDS": "0.5",
           "DRIFTWATCH_WINDOW_GRACE_SECONDS": "0"}  # fmt: skip
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for index in range(3):
            processes.append(start_serve(database_url, free_port(), tmp_path / f"serve{index}.log",
                                         env=env, args=()))  # fmt: skip

        def all_done() -> bool:
            runs = runs_of(engine, history["name"])
            return len(runs) >= 12 and all(r.status == "done" for r in runs[:12])

        assert wait_until(all_done, timeout=120), [
            r.status for r in runs_of(engine, history["name"])
        ]
        time.sleep(2)  # further ticks must not compute anything again
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            process.wait(timeout=30)
    runs = runs_of(engine, history["name"])[:12]
    windows = [r.window_start for r in runs]
    assert windows == [history["first"] + timedelta(minutes=i) for i in range(12)]
    assert len(set(windows)) == 12
    assert [r.computations for r in runs] == [1] * 12
    assert [r.attempts for r in runs] == [1] * 12
    owners = {r.owner for r in runs}
    assert len(owners) >= 1
