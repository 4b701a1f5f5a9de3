"""Migrations carry stored data over: 0005 partitions predictions by day (Postgres), splits
chunks that span days, and fills the key table, without losing or changing a prediction; 0006
gives runs their kind; 0009 keeps models stored before verdicts on Evidently's rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from alembic import command
from alembic.config import Config
from sqlalchemy import JSON, Engine, column, func, insert, select, table
from sqlalchemy.orm import Session

from driftwatch import db
from driftwatch.core.result import RunResult
from driftwatch.core.settings import DriftSettings
from driftwatch.core.specs import FeatureSpec
from driftwatch.core.time import day_start
from driftwatch.ingest import repository as ingest
from driftwatch.ingest.validation import validate_predictions
from driftwatch.models import (
    Alert,
    AlertEvent,
    Baseline,
    MonitoredModel,
    Prediction,
    PredictionChunk,
    PredictionKey,
    Run,
    RunMetric,
    RunMetricDay,
)
from driftwatch.models.base import UTCDateTime
from driftwatch.monitoring import repository as monitoring
from driftwatch.storage import chunks, partitions

SPECS = [FeatureSpec("age", "numerical"), FeatureSpec("state", "categorical")]
MIDNIGHT = datetime(2026, 11, 20, tzinfo=UTC)


def _records(prefix: str, start: datetime, count: int, step: timedelta) -> list[dict[str, Any]]:
    return [
        {"prediction_id": f"{prefix}-{i}", "timestamp": (start + i * step).isoformat(),
         "features": {"age": 20.0 + i, "state": ["CA", "NY", None][i % 3]},
         "prediction": i / 10, "model_version": "v1"}
        for i in range(count)
    ]  # fmt: skip


def _store_as_0004(session: Session, model_id: int, records: list[dict[str, Any]]) -> None:
    """Write a batch the way revision 0004 did: one chunk, whatever days it spans."""
    columns = validate_predictions(
        records, SPECS, task="regression", received_at=datetime.now(UTC)
    ).columns
    row = ingest._chunk_row(model_id, columns)
    chunk_id = session.execute(
        insert(PredictionChunk.__table__).returning(PredictionChunk.id), [row]
    ).scalar_one()
    session.execute(
        insert(Prediction.__table__),
        [
            {"model_id": model_id, "prediction_id": pid, "ts": chunks.from_us(int(ts)),
             "chunk_id": chunk_id, "chunk_row": i, "model_version": "v1",
             "prediction_value": float(columns.prediction_values[i]), "prediction_class": None}
            for i, (pid, ts) in enumerate(zip(columns.prediction_ids, columns.timestamps_us,
                                              strict=True))
        ],
    )  # fmt: skip


def test_0005_keeps_every_prediction_and_splits_chunks_by_day(empty_database: str) -> None:
    config = db.alembic_config(empty_database)
    command.upgrade(config, "0004")
    engine = db.get_engine(empty_database)
    spanning = _records("span", MIDNIGHT - timedelta(minutes=25), 10, timedelta(minutes=5))
    one_day = _records("day", MIDNIGHT + timedelta(hours=2), 4, timedelta(minutes=1))
    backfill = _records("old", datetime(2024, 5, 30, tzinfo=UTC), 6, timedelta(days=1))
    with db.session_scope(engine) as session:
        model_id = session.execute(
            insert(MonitoredModel.__table__).returning(MonitoredModel.id),
            [{"name": "legacy", "task": "regression", "window_seconds": 3600,
              "features": [{"name": "age", "kind": "numerical"},
                           {"name": "state", "kind": "categorical"}],
              "created_at": MIDNIGHT, "updated_at": MIDNIGHT}],
        ).scalar_one()  # fmt: skip
        for batch in (spanning, one_day, backfill):
            _store_as_0004(session, model_id, batch)

    command.upgrade(config, "head")

    everything = [*spanning, *one_day, *backfill]
    with Session(engine) as session:
        keys = dict(session.execute(select(PredictionKey.prediction_id, PredictionKey.ts)).all())
        assert keys == {r["prediction_id"]: datetime.fromisoformat(r["timestamp"])
                        for r in everything}  # fmt: skip
        assert session.scalar(select(func.count()).select_from(Prediction)) == len(everything)
        stored = session.execute(select(PredictionChunk.ts_min, PredictionChunk.ts_max)).all()
        assert all(day_start(low) == day_start(high) for low, high in stored)
        # the spanning batch became two chunks, the backfill (one record a day) six
        assert len(stored) == 2 + 1 + 6
        for start, end, expected in (
            (MIDNIGHT - timedelta(hours=1), MIDNIGHT, spanning[:5]),
            (MIDNIGHT, MIDNIGHT + timedelta(hours=1), spanning[5:]),
            (MIDNIGHT - timedelta(hours=1), MIDNIGHT + timedelta(hours=3), [*spanning, *one_day]),
            (datetime(2024, 5, 1, tzinfo=UTC), datetime(2024, 7, 1, tzinfo=UTC), backfill),
        ):
            window = ingest.read_window(
                session, model_id=model_id, num_width=1, cat_width=1, start=start, end=end
            )
            order = np.argsort(window.timestamps_us)
            assert window.num_values[order, 0].tolist() == [r["features"]["age"] for r in expected]
            states = window.category_values(0)
            assert [states[i] for i in order] == [r["features"]["state"] for r in expected]
            assert window.prediction_values[order].tolist() == [r["prediction"] for r in expected]
        # labels still join their predictions, through the narrow rows
        labeled = session.execute(
            select(Prediction.prediction_id, Prediction.chunk_id, Prediction.chunk_row)
        ).all()
        assert len({(chunk, row) for _, chunk, row in labeled}) == len(everything)
        if session.get_bind().dialect.name == "postgresql":
            names = {p.name for p in partitions.list_partitions(session.connection())}
            assert "predictions_p20261119_20261120" in names
            assert "prediction_chunks_p20261120_20261121" in names
            assert "predictions_p20240501_20240601" in names  # a backfill shares its month


def _at_0005(url: str) -> tuple[Config, Engine]:
    """The database at revision 0005 (before run kinds), and its engine."""
    config = db.alembic_config(url)
    command.upgrade(config, "0005")
    return config, db.get_engine(url)


def test_0006_tells_windows_from_custom_ranges_and_takes_custom_ones_out_of_the_series(
    empty_database: str,
) -> None:
    config, engine = _at_0005(empty_database)
    hour = timedelta(hours=1)
    spans = {  # run id: its span, and whether it is one window of the hourly model
        1: (MIDNIGHT, MIDNIGHT + hour, True),
        2: (MIDNIGHT + hour, MIDNIGHT + 2 * hour, True),
        3: (MIDNIGHT, MIDNIGHT + 3 * hour, False),  # three windows at once
        4: (MIDNIGHT + timedelta(minutes=30), MIDNIGHT + timedelta(minutes=90), False),
    }
    runs = table("runs", column("id"), column("model_id"), column("baseline_id"),
                 column("window_start", UTCDateTime()), column("window_end", UTCDateTime()),
                 column("status"), column("attempts"), column("computations"), column("rows"),
                 column("created_at", UTCDateTime()))  # fmt: skip
    with db.session_scope(engine) as session:
        model_id = session.execute(
            insert(MonitoredModel.__table__).returning(MonitoredModel.id),
            [{"name": "legacy", "task": "regression", "window_seconds": 3600, "features": [],
              "created_at": MIDNIGHT, "updated_at": MIDNIGHT}],
        ).scalar_one()  # fmt: skip
        baseline_id = session.execute(
            insert(Baseline.__table__).returning(Baseline.id),
            [{"model_id": model_id, "name": "b", "source": "records", "rows": 1,
              "created_at": MIDNIGHT}],
        ).scalar_one()  # fmt: skip
        session.execute(insert(runs), [
            {"id": run_id, "model_id": model_id, "baseline_id": baseline_id, "window_start": start,
             "window_end": end, "status": "done", "attempts": 1, "computations": 1,
             "rows": 10 * run_id, "created_at": MIDNIGHT}
            for run_id, (start, end, _) in spans.items()
        ])  # fmt: skip
        for run_id, (start, _, _) in spans.items():
            session.execute(insert(RunMetric.__table__), [{
                "run_id": run_id, "metric": "rows", "model_id": model_id, "window_start": start,
                "value": 10.0 * run_id,
            }])  # fmt: skip
        monitoring.refresh_day(session, model_id=model_id, moment=MIDNIGHT)

    command.upgrade(config, "head")

    with Session(engine) as session:
        kinds = dict(session.execute(select(Run.id, Run.kind)).all())
        assert kinds == {run_id: "window" if window else "custom"
                         for run_id, (_, _, window) in spans.items()}  # fmt: skip
        assert set(session.scalars(select(RunMetric.run_id))) == {1, 2}
        day = session.execute(select(RunMetricDay.total, RunMetricDay.count)).one()
        assert tuple(day) == (10.0 + 20.0, 2)  # the day's sums count the windows only


LEGACY_RUNS = table(
    "runs", column("id"), column("model_id"), column("baseline_id"),
    column("window_start", UTCDateTime()), column("window_end", UTCDateTime()), column("status"),
    column("owner"), column("attempts"), column("computations"), column("rows"),
    column("labeled_rows"), column("result", JSON()), column("created_at", UTCDateTime()),
    column("computed_at", UTCDateTime()),
)  # fmt: skip


def _legacy_model(session: Session, *, window_seconds: int, baselines: int = 1) -> list[int]:
    """A model (as revision 0005 stored it) and its baselines; returns the model's id and the
    baselines' ids."""
    model_id = session.execute(
        insert(MonitoredModel.__table__).returning(MonitoredModel.id),
        [{"name": "legacy", "task": "regression", "window_seconds": window_seconds,
          "features": [{"name": "age", "kind": "numerical"}],
          "created_at": MIDNIGHT, "updated_at": MIDNIGHT}],
    ).scalar_one()  # fmt: skip
    baseline_ids = []
    for index in range(baselines):
        baseline_ids.append(session.execute(
            insert(Baseline.__table__).returning(Baseline.id),
            [{"model_id": model_id, "name": f"b{index}", "source": "records", "rows": 1,
              "created_at": MIDNIGHT}],
        ).scalar_one())  # fmt: skip
    return [model_id, *baseline_ids]


def _legacy_run(
    run_id: int, model_id: int, baseline_id: int, start: datetime, end: datetime, *,
    owner: str | None, rows: int = 10, status: str = "done", rejected: int = 0,
) -> dict[str, Any]:  # fmt: skip
    result = RunResult.empty(SPECS[:1], rejected=rejected).stored()
    result["rows"] = rows
    return {"id": run_id, "model_id": model_id, "baseline_id": baseline_id,
            "window_start": start, "window_end": end, "status": status, "owner": owner,
            "attempts": 1, "computations": 1, "rows": rows, "labeled_rows": 0,
            "result": result, "created_at": MIDNIGHT, "computed_at": MIDNIGHT}  # fmt: skip


def _store_legacy_runs(session: Session, model_id: int, runs: list[dict[str, Any]]) -> None:
    """The runs, each with its run_metrics row of ``rows``, and the days' sums."""
    session.execute(insert(LEGACY_RUNS), runs)
    session.execute(insert(RunMetric.__table__), [
        {"run_id": run["id"], "metric": "rows", "model_id": model_id,
         "window_start": run["window_start"], "value": float(run["rows"])}
        for run in runs if run["status"] == "done"
    ])  # fmt: skip
    for day in {day_start(run["window_start"]) for run in runs}:
        monitoring.refresh_day(session, model_id=model_id, moment=day)


def test_0006_keeps_the_windows_of_a_model_whose_window_was_changed(empty_database: str) -> None:
    config, engine = _at_0005(empty_database)
    hour, day = timedelta(hours=1), timedelta(days=1)
    scheduler = "host:1"
    with db.session_scope(engine) as session:
        # hourly windows until its window was changed (PATCH) to a day
        model_id, baseline_id = _legacy_model(session, window_seconds=86400)
        spans: dict[int, tuple[datetime, datetime, str | None, str]] = {
            # the scheduler's hourly windows, from before the change
            1: (MIDNIGHT, MIDNIGHT + hour, scheduler, "window"),
            2: (MIDNIGHT + hour, MIDNIGHT + 2 * hour, scheduler, "window"),
            # an hourly window computed on demand (`driftwatch run`), the scheduler's length
            3: (MIDNIGHT + 5 * hour, MIDNIGHT + 6 * hour, None, "window"),
            # windows of 30 minutes computed on demand one after the other (a cron job)
            4: (MIDNIGHT + 10 * hour, MIDNIGHT + 10.5 * hour, None, "window"),
            5: (MIDNIGHT + 10.5 * hour, MIDNIGHT + 11 * hour, None, "window"),
            # the scheduler's daily windows, after the change, and one on demand
            6: (MIDNIGHT + day, MIDNIGHT + 2 * day, scheduler, "window"),
            7: (MIDNIGHT + 2 * day, MIDNIGHT + 3 * day, None, "window"),
            # custom ranges: three hours at once, alone; 90 minutes across two windows; and
            # a 90-minute range the scheduler computed again for late labels
            8: (MIDNIGHT + 3 * hour, MIDNIGHT + 6 * hour, None, "custom"),
            9: (MIDNIGHT + 0.5 * hour, MIDNIGHT + 2 * hour, None, "custom"),
            10: (MIDNIGHT + 12.5 * hour, MIDNIGHT + 14 * hour, scheduler, "custom"),
        }
        _store_legacy_runs(session, model_id, [
            _legacy_run(run_id, model_id, baseline_id, start, end, owner=owner, rows=run_id)
            for run_id, (start, end, owner, _) in spans.items()
        ])  # fmt: skip

    command.upgrade(config, "head")

    with Session(engine) as session:
        kinds = dict(session.execute(select(Run.id, Run.kind)).all())
        assert kinds == {run_id: kind for run_id, (*_, kind) in spans.items()}
        windows = {run_id for run_id, (*_, kind) in spans.items() if kind == "window"}
        assert set(session.scalars(select(RunMetric.run_id))) == windows
        totals = dict(session.execute(select(RunMetricDay.day, RunMetricDay.total)).all())
        assert totals == {MIDNIGHT: 1 + 2 + 3 + 4 + 5, MIDNIGHT + day: 6, MIDNIGHT + 2 * day: 7}


def test_0006_records_the_empty_windows_the_old_scheduler_computed_as_stretches(
    empty_database: str,
) -> None:
    config, engine = _at_0005(empty_database)
    hour = timedelta(hours=1)
    owner = "host:1"

    def at(index: int) -> tuple[datetime, datetime]:
        return MIDNIGHT + index * hour, MIDNIGHT + (index + 1) * hour

    with db.session_scope(engine) as session:
        model_id, first, second = _legacy_model(session, window_seconds=3600, baselines=2)
        legacy = [
            _legacy_run(1, model_id, first, *at(0), owner=owner, rows=20),
            # three empty windows in a row, 23:00 to 02:00 (across midnight)
            _legacy_run(2, model_id, first, *at(1), owner=owner, rows=0, rejected=1),
            _legacy_run(3, model_id, first, *at(2), owner=owner, rows=0, rejected=2),
            _legacy_run(4, model_id, first, *at(3), owner=owner, rows=0),
            _legacy_run(5, model_id, first, *at(4), owner=owner, rows=15),
            _legacy_run(6, model_id, first, *at(5), owner=owner, rows=0),  # one alone
            # queued again (predictions came late): not known to be empty
            _legacy_run(7, model_id, first, *at(6), owner=owner, rows=0, status="pending"),
            _legacy_run(8, model_id, first, *at(7), owner=owner, rows=0),
            # the other baseline's runs of the same windows are a stretch of their own
            _legacy_run(9, model_id, second, *at(1), owner=owner, rows=0),
            _legacy_run(10, model_id, second, *at(2), owner=owner, rows=0),
        ]
        for run in legacy:
            run["window_start"] -= 2 * hour  # from 22:00 the evening before
            run["window_end"] -= 2 * hour
        _store_legacy_runs(session, model_id, legacy)
        alert_id = session.execute(
            insert(Alert.__table__).returning(Alert.id),
            [{"model_id": model_id, "rule": "traffic-lost", "severity": "warning",
              "condition": "rows < 5", "metric": "rows", "state": "firing", "value": 0.0,
              "run_id": 3, "window_start": MIDNIGHT, "window_end": MIDNIGHT + hour,
              "started_at": MIDNIGHT}],
        ).scalar_one()  # fmt: skip
        session.execute(insert(AlertEvent.__table__), [
            {"alert_id": alert_id, "event": event, "run_id": run_id, "window_start": MIDNIGHT,
             "window_end": MIDNIGHT + hour, "value": 0.0, "metrics": {}, "created_at": MIDNIGHT}
            for event, run_id in (("pending", 2), ("firing", 3))
        ])  # fmt: skip

    command.upgrade(config, "head")

    with Session(engine) as session:
        runs = session.scalars(select(Run).order_by(Run.baseline_id, Run.window_start)).all()
        assert [(r.id, r.kind, r.window_start, r.window_end) for r in runs] == [
            (1, "window", *at(-2)),
            (2, "no_traffic", at(-1)[0], at(2)[0]),
            (5, "window", *at(2)),
            (6, "no_traffic", *at(3)),
            (7, "window", *at(4)),
            (8, "no_traffic", *at(5)),
            (9, "no_traffic", at(-1)[0], at(1)[0]),
        ]  # fmt: skip
        stretch = runs[1]
        assert stretch.result is not None
        assert (stretch.rows, stretch.result.rows, stretch.result.quality.rejected) == (0, 0, 3)
        # stretches are not windows of the series: their metrics go, the days are summed again
        assert set(session.scalars(select(RunMetric.run_id))) == {1, 5}
        days = dict(session.execute(
            select(RunMetricDay.day, func.sum(RunMetricDay.count)).group_by(RunMetricDay.day)
        ).all())  # fmt: skip
        assert days == {MIDNIGHT - timedelta(days=1): 1, MIDNIGHT: 1}
        # the alert and its events name the stretch that holds their window
        assert session.scalar(select(Alert.run_id)) == 2
        assert set(session.scalars(select(AlertEvent.run_id))) == {2}


def test_0009_models_stored_before_verdicts_keep_evidently_s_rule(empty_database: str) -> None:
    config = db.alembic_config(empty_database)
    command.upgrade(config, "0008")
    engine = db.get_engine(empty_database)
    settings = {"plain": None, "tuned": {"num_stattest": "psi", "drift_share": 0.3}}
    with db.session_scope(engine) as session:
        session.execute(insert(MonitoredModel.__table__), [
            {"name": name, "task": "regression", "window_seconds": 3600, "features": [],
             "drift": drift, "created_at": MIDNIGHT, "updated_at": MIDNIGHT}
            for name, drift in settings.items()
        ])  # fmt: skip

    command.upgrade(config, "head")

    with Session(engine) as session:
        stored = dict(session.execute(select(MonitoredModel.name, MonitoredModel.drift)).all())
        assert stored == {
            "plain": {"verdict": "evidently"},
            "tuned": {"num_stattest": "psi", "drift_share": 0.3, "verdict": "evidently"},
        }
        model = session.scalars(select(MonitoredModel).where(MonitoredModel.name == "tuned")).one()
        assert DriftSettings.from_model(model.drift).verdict == "evidently"

    command.downgrade(config, "0008")

    with Session(engine) as session:
        stored = dict(session.execute(select(MonitoredModel.name, MonitoredModel.drift)).all())
        assert stored == {"plain": None, "tuned": settings["tuned"]}
