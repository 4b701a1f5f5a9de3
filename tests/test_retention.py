"""Retention: raw data older than DRIFTWATCH_RETENTION goes (by dropping day partitions on
Postgres), runs and summaries stay, and the dashboard, the API and the rules keep working.

Each test here has a database of its own: retention removes old data of every model.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from driftwatch import db
from driftwatch.app import create_app
from driftwatch.config import MAX_RETENTION, Settings
from driftwatch.core.retention import Retention
from driftwatch.core.specs import FeatureSpec
from driftwatch.core.time import day_start, utcnow
from driftwatch.errors import Conflict
from driftwatch.ingest import repository
from driftwatch.ingest.validation import validate_predictions
from driftwatch.models import (
    GroundTruth,
    MonitoredModel,
    Prediction,
    PredictionChunk,
    PredictionKey,
    Run,
)
from driftwatch.retention import service
from driftwatch.storage import partitions
from driftwatch.storage.partitions import Span
from tests.conftest import ADMIN_KEY, sign_in

RETENTION = timedelta(days=30)
PER_DAY = 48  # predictions a day, one every 30 minutes
FEATURES = [{"name": "age", "kind": "numerical"}, {"name": "state", "kind": "categorical"}]


def client(url: str, retention: timedelta | None) -> TestClient:
    # records back to 2020 are accepted: these tests store old months, as a backfill does
    settings = Settings(database_url=url, admin_key=ADMIN_KEY, retention=retention,  # type: ignore[arg-type]
                        max_record_age=MAX_RETENTION)  # fmt: skip
    return TestClient(
        create_app(settings, db.get_engine(url)), headers={"Authorization": f"Bearer {ADMIN_KEY}"}
    )


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def days_ago(count: int) -> datetime:
    return day_start(utcnow()) - timedelta(days=count)


def day_records(prefix: str, day: datetime, shift: float = 0.0) -> list[dict[str, Any]]:
    rng = np.random.default_rng(abs(hash(prefix)) % 2**32)
    return [
        {"prediction_id": f"{prefix}-{i}",
         "timestamp": (day + timedelta(minutes=30 * i)).isoformat(),
         "features": {"age": float(rng.normal(40 + 10 * shift, 5)),
                      "state": str(rng.choice(["CA", "NY"]))},
         "prediction": float(rng.random())}
        for i in range(PER_DAY)
    ]  # fmt: skip


def load_history(api: TestClient, name: str, first: datetime, days: int) -> list[dict[str, Any]]:
    """A model with ``days`` days of predictions and labels, and a run for each day."""
    ok(api.post("/api/v1/models", json={"name": name, "task": "binary_classification",
                                        "features": FEATURES, "window": "1d"}), 201)  # fmt: skip
    baseline = day_records("base", first)
    ok(
        api.post(
            f"/api/v1/models/{name}/baselines",
            json={
                "name": "training",
                "records": [
                    {"features": r["features"], "prediction": r["prediction"]} for r in baseline
                ],
            },
        ),
        201,
    )
    runs = []
    for offset in range(days):
        day = first + timedelta(days=offset)
        records = day_records(f"d{offset}", day, shift=offset / 3)
        result = ok(api.post(f"/api/v1/models/{name}/predictions", json={"records": records}))
        assert result["accepted"] == PER_DAY
        labels = [
            {
                "prediction_id": r["prediction_id"],
                "label": int(r["prediction"] > 0.5),
                "timestamp": (day + timedelta(hours=23)).isoformat(),
            }
            for r in records
        ]
        ok(api.post(f"/api/v1/models/{name}/ground-truth", json={"records": labels}))
        window = {"start": day.isoformat(), "end": (day + timedelta(days=1)).isoformat()}
        runs.append(ok(api.post(f"/api/v1/models/{name}/runs", json=window)))
    return runs


def counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        return {
            model.__tablename__: connection.execute(
                select(func.count()).select_from(model)
            ).scalar_one()
            for model in (Prediction, PredictionChunk, PredictionKey, GroundTruth, Run)
        }


def cli(url: str, *args: str, retention: str = "30d") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DRIFTWATCH_DATABASE_URL": url, "DRIFTWATCH_RETENTION": retention}
    return subprocess.run([sys.executable, "-m", "driftwatch.cli", *args], env=env,
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip


def test_old_raw_data_goes_and_the_history_stays(own_database: str, backend: str) -> None:
    engine = db.get_engine(own_database)
    name = "credit-" + uuid.uuid4().hex[:6]
    first = days_ago(35)  # ten days: five before the cutoff (30 days ago), five after
    with client(own_database, retention=None) as keep_all:
        runs = load_history(keep_all, name, first, days=10)
    before = counts(engine)
    assert before["predictions"] == before["prediction_keys"] == before["ground_truth"] == 480

    dry = cli(own_database, "retention", "run", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would remove 240 rows" in dry.stdout, dry.stdout  # keys: five days of 48
    assert counts(engine) == before  # a dry run removes nothing

    done = cli(own_database, "retention", "run")
    assert done.returncode == 0, done.stderr
    cutoff = days_ago(30)
    assert f"raw data before {cutoff.isoformat().replace('+00:00', 'Z')}" in done.stdout
    for table in ("predictions", "prediction_keys", "ground_truth"):
        assert f"{table}: removed 240 rows" in done.stdout, done.stdout
    after = counts(engine)
    assert after == {"predictions": 240, "prediction_chunks": 5, "prediction_keys": 240,
                     "ground_truth": 240, "runs": 10}, after  # fmt: skip
    with engine.connect() as connection:
        oldest = connection.execute(select(func.min(Prediction.ts))).scalar_one()
        assert oldest == cutoff
        assert connection.execute(select(func.min(GroundTruth.ts))).scalar_one() >= cutoff
        if backend == "postgres":
            spans = [p.span for p in partitions.list_partitions(connection)]
            assert spans
            assert min(span.low for span in spans) == cutoff  # no older partition
            assert all(span.high - span.low == timedelta(days=1) for span in spans)

    with client(own_database, retention=RETENTION) as api:
        # every run stays, with the numbers it had
        listed = ok(api.get(f"/api/v1/models/{name}/runs", params={"limit": 100}))
        assert sorted(r["id"] for r in listed) == sorted(r["id"] for r in runs)
        for run in runs:
            again = ok(api.get(f"/api/v1/models/{name}/runs/{run['id']}"))
            assert (again["rows"], again["dataset"], again["accuracy"]) == (
                run["rows"], run["dataset"], run["accuracy"])  # fmt: skip
        assert ok(api.get(f"/api/v1/models/{name}"))["counts"] == {
            "predictions": 240, "labeled": 240}  # fmt: skip

        # an expired window is computed again from its summaries (its accuracy, computed
        # while the labels existed, stays); its raw rows cannot be read any more
        expired = {"start": runs[2]["window"]["start"], "end": runs[2]["window"]["end"]}
        recomputed = ok(api.post(f"/api/v1/models/{name}/runs", json=expired))
        assert recomputed["source"] == "summaries"
        assert (recomputed["id"], recomputed["rows"], recomputed["accuracy"]) == (
            runs[2]["id"], runs[2]["rows"], runs[2]["accuracy"])  # fmt: skip
        assert set(recomputed["max_error"]) == {f["name"] for f in runs[2]["features"]
                                                if f["score"] is not None}  # fmt: skip
        for before, now in zip(runs[2]["features"], recomputed["features"], strict=True):
            if before["score"] is not None:
                assert abs(now["score"] - before["score"]) <= now["max_error"] + 1e-12
        refused = api.post(f"/api/v1/models/{name}/runs", json={**expired, "exact": True})
        assert refused.status_code == 409, refused.text
        assert "removed by the retention policy" in refused.json()["detail"]
        # a span of two expired days is its buckets' summaries; a range cutting a bucket is
        # refused, naming the whole windows to ask for
        two = {"start": runs[1]["window"]["start"], "end": runs[2]["window"]["end"]}
        span = ok(api.post(f"/api/v1/models/{name}/runs", json=two))
        assert (span["kind"], span["source"], span["rows"]) == (
            "span", "summaries", runs[1]["rows"] + runs[2]["rows"])  # fmt: skip
        assert span["span"]["windows"] == 2
        cut = {"start": (datetime.fromisoformat(expired["start"]) + timedelta(minutes=30))
               .isoformat(), "end": expired["end"]}  # fmt: skip
        refused = api.post(f"/api/v1/models/{name}/runs", json=cut)
        assert refused.status_code == 409, refused.text
        assert "cuts a bucket" in refused.json()["detail"]
        assert f"ask for whole windows, such as {expired['start']}" in refused.json()["detail"]
        refused = api.post(f"/api/v1/models/{name}/baselines",
                           json={"name": "old", "from_window": expired})  # fmt: skip
        assert refused.status_code == 409, refused.text

        # a kept window computes to what it did before
        kept = runs[7]
        again = ok(
            api.post(
                f"/api/v1/models/{name}/runs",
                json={"start": kept["window"]["start"], "end": kept["window"]["end"]},
            )
        )
        assert (again["rows"], again["labeled_rows"], again["features"]) == (
            kept["rows"], kept["labeled_rows"], kept["features"])  # fmt: skip

        # records older than the retention are refused, saying why; the rest of the batch goes
        old_and_new = [
            *day_records("late-old", days_ago(31))[:2],
            *day_records("late-new", days_ago(1))[:2],
        ]
        result = ok(api.post(f"/api/v1/models/{name}/predictions", json={"records": old_and_new}))
        assert result["accepted"] == 2
        assert [r["index"] for r in result["rejected"]] == [0, 1]
        assert "older than the retention period (30 days)" in result["rejected"][0]["error"]
        label = {"prediction_id": "late-old-0", "label": 1, "timestamp": days_ago(40).isoformat()}
        result = ok(api.post(f"/api/v1/models/{name}/ground-truth", json={"records": [label]}))
        assert result["accepted"] == 0
        assert "older than the retention period" in result["rejected"][0]["error"]

        # the dashboard draws the whole history from the stored runs
        signed_in = sign_in(api, follow_redirects=False)
        assert signed_in.status_code == 303
        page = api.get(f"/models/{name}", params={"range": "90d"})
        assert page.status_code == 200, page.text
        feature = api.get(f"/models/{name}/features/age", params={"range": "90d"})
        assert feature.status_code == 200
        report = api.get(f"/models/{name}/evidently", params={"run": runs[2]["id"]})
        assert report.status_code == 404
        assert "removed by the retention policy (0 of 48 left)" in report.text, report.text[:300]

    second = cli(own_database, "retention", "run")  # nothing left to remove
    assert second.returncode == 0, second.stderr
    assert "nothing to remove" in second.stdout, second.stdout


def test_a_prediction_id_is_unique_across_days(own_database: str) -> None:
    """The key table keeps ``prediction_id`` unique although rows are partitioned by day: the
    same id sent again with another timestamp, or with none, is a duplicate."""
    with client(own_database, retention=None) as api:
        name = "ids-" + uuid.uuid4().hex[:6]
        ok(api.post("/api/v1/models", json={"name": name, "task": "regression",
                                            "features": FEATURES}), 201)  # fmt: skip
        record = {"prediction_id": "p-1", "features": {"age": 30, "state": "CA"},
                  "prediction": 1.5}  # fmt: skip
        url = f"/api/v1/models/{name}/predictions"
        first = ok(
            api.post(url, json={"records": [{**record, "timestamp": days_ago(3).isoformat()}]})
        )
        assert first["accepted"] == 1
        for timestamp in (days_ago(1).isoformat(), None, days_ago(3).isoformat()):
            again = ok(api.post(url, json={"records": [{**record, "timestamp": timestamp}]}))
            assert (again["accepted"], again["duplicates"]) == (0, 1), timestamp
        untimed = {**record, "prediction_id": "p-2"}
        assert ok(api.post(url, json={"records": [untimed]}))["accepted"] == 1
        assert ok(api.post(url, json={"records": [untimed]}))["duplicates"] == 1
        assert ok(api.get(f"/api/v1/models/{name}"))["counts"]["predictions"] == 2


def test_a_batch_across_midnight_is_stored_per_day(own_database: str) -> None:
    engine = db.get_engine(own_database)
    midnight = days_ago(2)
    with client(own_database, retention=None) as api:
        name = "midnight-" + uuid.uuid4().hex[:6]
        model = {"name": name, "task": "regression", "features": FEATURES, "window": "1h"}
        ok(api.post("/api/v1/models", json=model), 201)
        records = [
            {"prediction_id": f"m-{i}",
             "timestamp": (midnight + timedelta(minutes=i - 30)).isoformat(),
             "features": {"age": float(i), "state": "CA" if i < 30 else "NY"},
             "prediction": float(i)}
            for i in range(60)
        ]  # fmt: skip
        ok(
            api.post(f"/api/v1/models/{name}/baselines", json={"name": "b", "records": records}),
            201,
        )
        assert ok(api.post(f"/api/v1/models/{name}/predictions", json={"records": records}))[
            "accepted"] == 60  # fmt: skip
        with engine.connect() as connection:
            chunk_days = connection.execute(
                select(PredictionChunk.ts_min, PredictionChunk.ts_max, PredictionChunk.rows)
            ).all()
        assert len(chunk_days) == 2
        assert all(day_start(low) == day_start(high) for low, high, _ in chunk_days)
        assert sorted(rows for *_, rows in chunk_days) == [30, 30]
        for start, expected in ((midnight - timedelta(hours=1), 30), (midnight, 30)):
            window = {"start": start.isoformat(), "end": (start + timedelta(hours=1)).isoformat()}
            run = ok(api.post(f"/api/v1/models/{name}/runs", json=window))
            assert run["rows"] == expected
        across = {"start": (midnight - timedelta(minutes=10)).isoformat(),
                  "end": (midnight + timedelta(minutes=10)).isoformat()}  # fmt: skip
        assert ok(api.post(f"/api/v1/models/{name}/runs", json=across))["rows"] == 20


def test_the_scheduler_leaves_expired_windows_alone(own_database: str) -> None:
    """A window queued before retention removed its data is not computed from what is left:
    a run computed before keeps its result, one never computed fails and says why."""
    from driftwatch.monitoring.scheduler import Scheduler

    engine = db.get_engine(own_database)
    with client(own_database, retention=None) as api:
        name = "sched-" + uuid.uuid4().hex[:6]
        runs = load_history(api, name, days_ago(33), days=2)
    with db.session_scope(engine) as session:
        model_id = session.get(Run, runs[0]["id"]).model_id  # type: ignore[union-attr]
        session.execute(text("UPDATE runs SET status = 'pending' WHERE id = :id"),
                        {"id": runs[0]["id"]})  # fmt: skip
        never = Run(model_id=model_id, baseline_id=runs[0]["baseline"]["id"],
                    window_start=days_ago(32) + timedelta(hours=1),
                    window_end=days_ago(32) + timedelta(hours=2), status="pending")  # fmt: skip
        session.add(never)
    settings = Settings(database_url=own_database, retention=RETENTION)  # type: ignore[arg-type]
    scheduler = Scheduler(engine, settings, owner="test")
    assert scheduler.work(deadline=float("inf")) == 2
    with db.session_scope(engine) as session:
        kept = session.get(Run, runs[0]["id"])
        failed = session.get(Run, never.id)
        assert kept is not None
        assert failed is not None
        assert (kept.status, kept.rows) == ("done", runs[0]["rows"])
        assert failed.status == "failed"
        assert failed.rows is None
        assert "removed by the retention policy" in (failed.error or "")


def test_a_process_without_the_policy_never_overwrites_a_run_whose_data_went(
    own_database: str,
) -> None:
    """Another process (a replica with an older setting, a CLI run) removed the raw data: a
    window computed before now reads fewer predictions than it had. Recomputing it, on demand
    or because a late label arrived, reads its summaries (its rows and accuracy as they were)
    instead of storing an empty run; reading its raw rows ("exact") is refused."""
    from driftwatch.monitoring.scheduler import Scheduler

    engine = db.get_engine(own_database)
    name = "gone-" + uuid.uuid4().hex[:6]
    with client(own_database, retention=None) as api:
        runs = load_history(api, name, days_ago(33), days=2)
    service.apply(engine, Retention(RETENTION), now=utcnow())  # the other process's pass
    before = {r["id"]: (r["rows"], r["labeled_rows"], r["computed_at"]) for r in runs}
    assert [rows for rows, _, _ in before.values()] == [PER_DAY, PER_DAY]
    with client(own_database, retention=None) as api:  # this process keeps everything
        day = days_ago(33)
        window = {"start": day.isoformat(), "end": (day + timedelta(days=1)).isoformat()}
        again = api.post(f"/api/v1/models/{name}/runs", json={**window, "exact": True})
        assert again.status_code == 409, again.text
        assert f"now holds 0 predictions where it held {PER_DAY}" in again.json()["detail"]
        again = ok(api.post(f"/api/v1/models/{name}/runs", json=window))
        assert again["source"] == "summaries"
    with db.session_scope(engine) as session:  # queued again (say a late label came)
        session.execute(text("UPDATE runs SET status = 'pending' WHERE id = :id"),
                        {"id": runs[1]["id"]})  # fmt: skip
    with client(own_database, retention=None) as api:
        settings = Settings(database_url=own_database)  # type: ignore[arg-type]
        scheduler = Scheduler(engine, settings, owner="test")
        assert scheduler.work(deadline=float("inf")) == 1
        after = {r["id"]: r for r in ok(api.get(f"/api/v1/models/{name}/runs"))}
    for run_id, (rows, labeled, computed_at) in before.items():
        assert after[run_id]["status"] == "done"
        assert (after[run_id]["rows"], after[run_id]["labeled_rows"]) == (rows, labeled)
        assert after[run_id]["source"] == "summaries"
        assert after[run_id]["computed_at"] > computed_at


def test_partitions_on_postgres(own_database: str, backend: str) -> None:
    """Days near now get a partition each; a backfill months back shares its month's; retention
    drops a partition only once all of it is past the cutoff."""
    if backend != "postgres":
        pytest.skip("partitions are Postgres tables; SQLite deletes rows")
    engine = db.get_engine(own_database)
    with client(own_database, retention=None) as api:
        name = "parts-" + uuid.uuid4().hex[:6]
        ok(api.post("/api/v1/models", json={"name": name, "task": "regression",
                                            "features": FEATURES}), 201)  # fmt: skip
        backfill = datetime(2020, 3, 15, 12, tzinfo=UTC)
        records = [
            {"prediction_id": f"b-{i}", "timestamp": (backfill + timedelta(days=i)).isoformat(),
             "features": {"age": 1.0, "state": "CA"}, "prediction": 1.0}
            for i in range(3)
        ] + [
            {"prediction_id": "today", "features": {"age": 1.0, "state": "CA"}, "prediction": 1.0}
        ]  # fmt: skip
        assert ok(api.post(f"/api/v1/models/{name}/predictions",
                           json={"records": records}))["accepted"] == 4  # fmt: skip
    with engine.connect() as connection:
        spans = {p.name for p in partitions.list_partitions(connection)}
    today = day_start(utcnow())
    tomorrow = today + timedelta(days=1)
    assert "predictions_p20200301_20200401" in spans
    assert "prediction_chunks_p20200301_20200401" in spans
    assert partitions.partition_name("predictions", Span(today, tomorrow)) in spans
    # A pass that stopped between its DETACH and its DROP left one month detached: the next
    # pass drops it too, and counts its rows.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql(
            "ALTER TABLE prediction_chunks DETACH PARTITION prediction_chunks_p20200301_20200401"
        )
    with engine.connect() as connection:
        assert [p.name for p in partitions.list_detached(connection)] == [
            "prediction_chunks_p20200301_20200401"
        ]
    report = service.apply(engine, Retention(RETENTION), now=utcnow())
    assert "predictions_p20200301_20200401" in report.dropped_partitions
    assert "prediction_chunks_p20200301_20200401" in report.dropped_partitions
    assert report.rows["predictions"] == 3
    with engine.connect() as connection:
        assert partitions.list_detached(connection) == []
    assert report.created_partitions  # the coming days, made ahead
    with engine.connect() as connection:
        left = {p.name for p in partitions.list_partitions(connection)}
        assert not any(n.endswith("20200401") for n in left)
        assert connection.execute(select(func.count()).select_from(Prediction)).scalar_one() == 1


def test_a_month_straddling_the_cutoff_keeps_its_rows_keys_and_counts(
    own_database: str, backend: str
) -> None:
    """A backfill older than the daily partitions shares a monthly partition; while the cutoff
    lies inside that month the month is kept whole, and so are its rows' keys: what a pass
    reports is what is gone, and an id of a kept row is still a duplicate."""
    if backend != "postgres":
        pytest.skip("partitions are Postgres tables; SQLite deletes rows")
    engine = db.get_engine(own_database)
    month = datetime(2020, 3, 1, tzinfo=UTC)
    name = "month-" + uuid.uuid4().hex[:6]
    sent = [
        {"prediction_id": f"m-{day}",
         "timestamp": (month + timedelta(days=day, hours=6)).isoformat(),
         "features": {"age": 1.0, "state": "CA"}, "prediction": 1.0}
        for day in range(-3, 31)  # three days of February, then all of March
    ]  # fmt: skip
    with client(own_database, retention=None) as api:
        ok(api.post("/api/v1/models", json={"name": name, "task": "regression",
                                            "features": FEATURES}), 201)  # fmt: skip
        assert ok(api.post(f"/api/v1/models/{name}/predictions",
                           json={"records": sent}))["accepted"] == 34  # fmt: skip
    # the cutoff falls on 2020-03-16: February can go, March must stay whole
    now = datetime(2020, 3, 16, 12, tzinfo=UTC) + RETENTION
    dry = service.apply(engine, Retention(RETENTION), now=now, dry_run=True)
    done = service.apply(engine, Retention(RETENTION), now=now)
    assert done.cutoff == datetime(2020, 3, 16, tzinfo=UTC)
    assert done.gone_before == month
    assert (
        done.dropped_partitions
        == dry.dropped_partitions
        == ["prediction_chunks_p20200201_20200301", "predictions_p20200201_20200301"]
    )
    assert dry.rows["predictions"] == dry.rows["prediction_keys"] == 3
    assert done.rows["predictions"] == done.rows["prediction_keys"] == 3
    after = counts(engine)
    assert after["predictions"] == after["prediction_keys"] == 31
    with client(own_database, retention=None) as api:
        again = ok(api.post(f"/api/v1/models/{name}/predictions", json={"records": sent[3:5]}))
    assert (again["accepted"], again["duplicates"]) == (0, 2)
    assert counts(engine)["predictions"] == 31
    # once all of March is past the cutoff, it goes with its keys
    april = datetime(2020, 4, 2, tzinfo=UTC) + RETENTION
    later = service.apply(engine, Retention(RETENTION), now=april)
    assert later.rows["predictions"] == later.rows["prediction_keys"] == 31
    assert counts(engine)["predictions"] == counts(engine)["prediction_keys"] == 0
    # the passes' lock timeout stayed with them: pooled connections are as they were
    held = [engine.connect() for _ in range(engine.pool.size())]  # type: ignore[attr-defined]
    try:
        assert {c.exec_driver_sql("SHOW lock_timeout").scalar() for c in held} == {"0"}
    finally:
        for connection in held:
            connection.close()


def test_a_batch_that_expired_while_being_written_is_sent_back(
    own_database: str, backend: str
) -> None:
    """Records checked just before midnight moved the cutoff past them: their day's partition
    may be being dropped, so the batch is answered 409 (the SDK sends it again, and then they
    are refused with their reason) rather than written into it or failing."""
    if backend != "postgres":
        pytest.skip("SQLite has no partitions to race with; its rows go at the next pass")
    engine = db.get_engine(own_database)
    with client(own_database, retention=None) as api:
        ok(api.post("/api/v1/models", json={"name": "late", "task": "regression",
                                            "features": FEATURES}), 201)  # fmt: skip
    old = day_records("late", days_ago(31))[:2]
    checked = validate_predictions(
        old, [FeatureSpec(f["name"], f["kind"]) for f in FEATURES],
        task="regression", received_at=days_ago(31),
    )  # fmt: skip
    assert len(checked.columns) == 2
    with Session(engine) as session:
        model_id = session.scalars(select(MonitoredModel.id)).one()
        with pytest.raises(Conflict, match="expired while this batch was being written"):
            repository.insert_predictions(
                session, model_id=model_id, columns=checked.columns, retention=Retention(RETENTION)
            )
        session.rollback()
    assert counts(engine)["prediction_keys"] == 0


def test_a_window_longer_than_the_retention_is_refused(own_database: str) -> None:
    with client(own_database, retention=RETENTION) as api:
        model = {"name": "long", "task": "regression", "features": FEATURES, "window": "45d"}
        refused = api.post("/api/v1/models", json=model)
        assert refused.status_code == 400, refused.text
        assert refused.json()["detail"].startswith(
            "window: 45d is longer than the retention period (DRIFTWATCH_RETENTION, 30 days)"
        ), refused.json()
        ok(api.post("/api/v1/models", json={**model, "window": "30d"}), 201)
        refused = api.patch("/api/v1/models/long", json={"window": "31d"})
        assert refused.status_code == 400, refused.text
        assert ok(api.get("/api/v1/models/long"))["window"] == "30d"


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("RETENTION", "abc", "expected a duration such as 30d, 12w, P30D or seconds, or off"),
        ("RETENTION", "-5d", "expected a duration such as 30d"),
        ("RETENTION", "12h", "must be at least one day"),
        ("RETENTION", "1000000d", "must be at most 36500 days"),
        ("RETENTION_INTERVAL_SECONDS", "-5", "greater than 0"),
        ("RETENTION_INTERVAL_SECONDS", "0", "greater than 0"),
        ("SCHEDULER_INTERVAL_SECONDS", "0", "greater than 0"),
    ],
)
def test_a_bad_setting_is_one_clear_line(
    setting: str, value: str, message: str, tmp_path: Any
) -> None:
    url = f"sqlite:///{tmp_path / 'never.db'}"
    env = {**os.environ, "DRIFTWATCH_DATABASE_URL": url, f"DRIFTWATCH_{setting}": value}
    done = subprocess.run([sys.executable, "-m", "driftwatch.cli", "retention", "run"], env=env,
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.startswith(f"driftwatch: DRIFTWATCH_{setting}='{value}': "), done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "never.db").exists()


def test_a_dry_run_changes_nothing_not_even_the_schema(empty_database: str) -> None:
    done = cli(empty_database, "retention", "run", "--dry-run")
    assert done.returncode == 1
    assert "at revision none (empty)" in done.stderr or "no database" in done.stderr, done.stderr
    assert "driftwatch db upgrade" in done.stderr
    if empty_database.startswith("sqlite"):
        assert not os.path.exists(empty_database.removeprefix("sqlite:///"))
    else:
        with db.get_engine(empty_database).connect() as connection:
            assert not connection.exec_driver_sql(
                "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").scalar()  # fmt: skip


def test_a_partition_dropped_behind_a_writers_back_is_made_again(
    own_database: str, backend: str
) -> None:
    """Another replica's pass dropped a partition this process still knows of: the write that
    finds no partition for its rows makes it again and goes on."""
    if backend != "postgres":
        pytest.skip("partitions are Postgres tables")
    engine = db.get_engine(own_database)
    day = days_ago(3)
    with client(own_database, retention=None) as api:
        ok(api.post("/api/v1/models", json={"name": "behind", "task": "regression",
                                            "features": FEATURES}), 201)  # fmt: skip
        first, second = day_records("first", day)[:2], day_records("second", day)[:2]
        assert ok(api.post("/api/v1/models/behind/predictions",
                           json={"records": first}))["accepted"] == 2  # fmt: skip
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            for table in ("predictions", "prediction_chunks"):
                name = partitions.partition_name(table, Span(day, day + timedelta(days=1)))
                connection.exec_driver_sql(f"ALTER TABLE {table} DETACH PARTITION {name}")
                connection.exec_driver_sql(f"DROP TABLE {name}")
        assert ok(api.post("/api/v1/models/behind/predictions",
                           json={"records": second}))["accepted"] == 2  # fmt: skip
    with engine.connect() as connection:
        stored = connection.execute(select(Prediction.prediction_id)).scalars().all()
    assert sorted(stored) == ["second-0", "second-1"]
