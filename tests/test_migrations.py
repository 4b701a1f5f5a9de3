"""Migrations carry stored data over: 0005 partitions predictions by day (Postgres), splits
chunks that span days, and fills the key table, without losing or changing a prediction."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from alembic import command
from sqlalchemy import column, func, insert, select, table
from sqlalchemy.orm import Session

from driftwatch import db
from driftwatch.core.specs import FeatureSpec
from driftwatch.core.time import day_start
from driftwatch.ingest import repository as ingest
from driftwatch.ingest.validation import validate_predictions
from driftwatch.models import (
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


def test_0006_tells_windows_from_custom_ranges_and_takes_custom_ones_out_of_the_series(
    empty_database: str,
) -> None:
    config = db.alembic_config(empty_database)
    command.upgrade(config, "0005")
    engine = db.get_engine(empty_database)
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
