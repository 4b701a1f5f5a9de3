"""Summaries kept at ingest: through the real API, a span's summary is the summary of exactly
the rows stored in it (duplicates, retries, concurrent writers, midnight, compaction), and it
outlives the raw rows retention removes."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import orjson
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from driftwatch import db
from driftwatch.app import create_app
from driftwatch.config import Settings
from driftwatch.ingest import repository
from driftwatch.models import ColumnSummary, MonitoredModel
from driftwatch.stats import summaries as sm
from driftwatch.summaries import service
from tests.conftest import ADMIN_KEY, create_model
from tests.test_retention import cli, client, days_ago, load_history
from tests.test_summaries import assert_same_numerical

FEATURES = [{"name": "age", "kind": "numerical"}, {"name": "state", "kind": "categorical"}]
T0 = datetime(2026, 11, 20, 10, tzinfo=UTC)
STATES = ["CA", "NY", "TX", None]


def rec(pid: str, when: datetime, age: Any, state: Any, prediction: Any = 0.5) -> dict[str, Any]:
    return {"prediction_id": pid, "timestamp": when.isoformat(),
            "features": {"age": age, "state": state}, "prediction": prediction}  # fmt: skip


def records(prefix: str, count: int, start: datetime, step: timedelta) -> list[dict[str, Any]]:
    rng = np.random.default_rng(len(prefix) + count)
    ages = rng.standard_cauchy(count).round(3)
    ages[::9] = np.nan  # missing
    return [
        rec(f"{prefix}-{i}", start + step * i, None if np.isnan(a) else float(a),
            STATES[i % 4], round(float(rng.random()), 4))
        for i, a in enumerate(ages.tolist())
    ]  # fmt: skip


def post(api: TestClient, model: str, batch: list[dict[str, Any]]) -> dict[str, Any]:
    response = api.post(
        f"/api/v1/models/{model}/predictions", content=orjson.dumps({"records": batch})
    )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def model_id(engine: Engine, name: str) -> int:
    with Session(engine) as session:
        return int(
            session.scalars(select(MonitoredModel.id).where(MonitoredModel.name == name)).one()
        )


def span(engine: Engine, name: str, start: datetime, end: datetime) -> service.SpanSummary:
    with Session(engine) as session:
        return service.span_summary(session, model_id=model_id(engine, name), start=start, end=end)


def assert_summarizes_the_stored_rows(
    engine: Engine, name: str, start: datetime, end: datetime
) -> service.SpanSummary:
    """The span's summary against one computed from the rows read back from storage."""
    with Session(engine) as session:
        window = repository.read_window(session, model_id=model_id(engine, name), num_width=1,
                                        cat_width=1, start=start, end=end)  # fmt: skip
    summary = span(engine, name, start, end)
    assert summary.rows == len(window)
    if not len(window):
        assert summary.columns == {}
        return summary
    age, state = summary.feature("age"), summary.feature("state")
    assert isinstance(age, sm.NumericalSummary)
    assert isinstance(state, sm.CategoricalSummary)
    assert_same_numerical(age, sm.NumericalSummary.of(window.num_values[:, 0]))
    want = sm.CategoricalSummary.of(window.category_values(0))
    assert (state.count, state.missing, state.counts) == (want.count, want.missing, want.counts)
    prediction = summary.columns[(service.PREDICTION, "value")]
    assert isinstance(prediction, sm.NumericalSummary)
    assert_same_numerical(prediction, sm.NumericalSummary.of(window.prediction_values))
    return summary


def test_bucket_lengths_divide_the_window_and_an_hour() -> None:
    windows = (900, 3600, 5400, 86400, 604800, 420, 7, 3601)
    assert [service.bucket_seconds(s) for s in windows] == [
        900, 3600, 1800, 3600, 3600, 60, 7, 3601,
    ]  # fmt: skip
    assert all(window % service.bucket_seconds(window) == 0 for window in windows)


def test_summaries_count_exactly_the_rows_stored_despite_retries_and_rejections(
    api: TestClient, engine: Engine
) -> None:
    name = create_model(api, features=FEATURES, window="1h")["name"]
    sent = records("r", 600, T0, timedelta(seconds=12))  # two hours
    assert post(api, name, sent[:400])["accepted"] == 400
    # an SDK retry of a batch partly stored, with an in-batch duplicate and a bad record
    retry = [*sent[300:600], sent[450], rec("bad", T0, "abc", "CA")]
    result = post(api, name, retry)
    assert (result["accepted"], result["duplicates"], len(result["rejected"])) == (200, 101, 1)
    assert post(api, name, sent[:600]) == {"accepted": 0, "duplicates": 600, "rejected": []}
    for hour in range(2):
        start = T0 + timedelta(hours=hour)
        assert (
            assert_summarizes_the_stored_rows(engine, name, start, start + timedelta(hours=1)).rows
            == 300
        )
    whole = assert_summarizes_the_stored_rows(engine, name, T0, T0 + timedelta(hours=2))
    assert (whole.rows, whole.buckets, whole.bucket_seconds) == (600, 2, {3600})
    with Session(engine) as session:
        ages = service.span_summary(
            session, model_id=model_id(engine, name), start=T0, end=T0 + timedelta(hours=2),
            columns=[("feature", "age")],
        )  # fmt: skip
    assert list(ages.columns) == [("feature", "age")]
    age, want = ages.feature("age"), whole.feature("age")
    assert isinstance(age, sm.NumericalSummary)
    assert isinstance(want, sm.NumericalSummary)
    assert_same_numerical(age, want)


def test_two_concurrent_writers_to_one_bucket_count_each_row_once(
    api: TestClient, engine: Engine
) -> None:
    name = create_model(api, features=FEATURES, window="1h")["name"]
    sent = records("c", 6000, T0, timedelta(milliseconds=500))  # all in one hour
    # two writers with overlapping ids, twice over, and a compaction running meanwhile
    batches = [sent[:3500], sent[2500:], sent[1000:4000], sent[:6000]]
    results: list[dict[str, Any]] = []
    done = threading.Event()

    def send(batch: list[dict[str, Any]]) -> None:
        for start in range(0, len(batch), 500):
            results.append(post(api, name, batch[start : start + 500]))

    def compact() -> None:
        while not done.is_set():
            service.compact(engine, now=datetime.now(UTC))

    compactor = threading.Thread(target=compact)
    compactor.start()
    writers = [threading.Thread(target=send, args=(b,)) for b in batches]
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join()
    done.set()
    compactor.join()
    assert sum(r["accepted"] for r in results) == 6000
    summary = assert_summarizes_the_stored_rows(engine, name, T0, T0 + timedelta(hours=1))
    assert summary.rows == 6000
    service.compact(engine, now=datetime.now(UTC))
    with engine.connect() as connection:
        per_column = connection.execute(
            select(ColumnSummary.name, func.count(), func.sum(ColumnSummary.parts))
            .where(ColumnSummary.model_id == model_id(engine, name))
            .group_by(ColumnSummary.role, ColumnSummary.name)
        ).all()
    assert {(n, rows) for n, rows, _ in per_column} == {("age", 1), ("state", 1), ("value", 1)}
    assert_summarizes_the_stored_rows(engine, name, T0, T0 + timedelta(hours=1))


def test_a_batch_across_midnight_and_finer_windows_is_summarized_per_bucket(
    api: TestClient, engine: Engine
) -> None:
    name = create_model(api, features=FEATURES, window="15m")["name"]
    midnight = datetime(2026, 11, 21, tzinfo=UTC)
    sent = records("m", 240, midnight - timedelta(minutes=30), timedelta(seconds=15))
    assert post(api, name, sent)["accepted"] == 240
    for quarter in range(-2, 2):
        start = midnight + timedelta(minutes=15 * quarter)
        summary = assert_summarizes_the_stored_rows(
            engine, name, start, start + timedelta(minutes=15)
        )
        assert (summary.rows, summary.bucket_seconds) == (60, {900})
    day = assert_summarizes_the_stored_rows(engine, name, midnight - timedelta(days=1), midnight)
    assert day.rows == 120


def test_a_class_prediction_is_summarized_as_categories(api: TestClient, engine: Engine) -> None:
    name = create_model(api, features=FEATURES, window="1h", task="multiclass_classification")[
        "name"
    ]
    sent = [rec(f"k-{i}", T0 + timedelta(seconds=i), float(i), "CA", ["cat", "dog", "cow"][i % 3])
            for i in range(30)]  # fmt: skip
    assert post(api, name, sent)["accepted"] == 30
    summary = span(engine, name, T0, T0 + timedelta(hours=1))
    classes = summary.columns[(service.PREDICTION, "class")]
    assert isinstance(classes, sm.CategoricalSummary)
    assert classes.counts == {"cat": 10, "dog": 10, "cow": 10}
    assert (service.PREDICTION, "value") not in summary.columns


def test_summaries_can_be_turned_off(settings: Settings, engine: Engine) -> None:
    off = settings.model_copy(update={"summaries": False})
    with TestClient(
        create_app(off, engine), headers={"Authorization": f"Bearer {ADMIN_KEY}"}
    ) as api:
        name = create_model(api, features=FEATURES)["name"]
        assert post(api, name, records("o", 10, T0, timedelta(seconds=1)))["accepted"] == 10
    assert span(engine, name, T0, T0 + timedelta(hours=1)).rows == 0


def test_summaries_outlive_the_raw_rows_retention_removes(own_database: str) -> None:
    engine = db.get_engine(own_database)
    name = "kept-summaries"
    first = days_ago(35)  # five of the ten days are past the 30-day retention
    with client(own_database, retention=None) as keep_all:
        load_history(keep_all, name, first, days=10)
    days = [(first + timedelta(days=d), first + timedelta(days=d + 1)) for d in range(10)]
    before = [assert_summarizes_the_stored_rows(engine, name, start, end) for start, end in days]
    done = cli(own_database, "retention", "run")
    assert done.returncode == 0, done.stderr
    for (start, end), was in zip(days, before, strict=True):
        now = span(engine, name, start, end)
        assert now.rows == was.rows == 48
        age, old_age = now.feature("age"), was.feature("age")
        assert isinstance(age, sm.NumericalSummary)
        assert isinstance(old_age, sm.NumericalSummary)
        assert_same_numerical(age, old_age)
    # the raw rows of the first five days are gone, their summaries not
    assert assert_summarizes_the_stored_rows(engine, name, *days[-1]).rows == 48
    with Session(engine) as session:
        gone = repository.read_window(session, model_id=model_id(engine, name), num_width=1,
                                      cat_width=1, start=days[0][0], end=days[4][1])  # fmt: skip
    assert len(gone) == 0


def test_compactors_racing_on_the_same_buckets_neither_lose_nor_double_a_count(
    api: TestClient, engine: Engine
) -> None:
    name = create_model(api, features=FEATURES, window="1h")["name"]
    sent = records("z", 4000, T0, timedelta(seconds=10))  # 11.1 hours
    touched = 0  # (batch, bucket) pairs: the summaries each column gets
    for start in range(0, len(sent), 100):  # 40 batches, some straddling two buckets
        batch = sent[start : start + 100]
        assert post(api, name, batch)["accepted"] == 100
        touched += len({datetime.fromisoformat(r["timestamp"]).hour for r in batch})
    assert touched > 40
    barrier = threading.Barrier(3)

    def compact() -> None:
        barrier.wait()
        service.compact(engine, now=datetime.now(UTC))

    racers = [threading.Thread(target=compact) for _ in range(3)]
    for thread in racers:
        thread.start()
    for thread in racers:
        thread.join()
    ours = model_id(engine, name)
    with engine.connect() as connection:
        groups = connection.execute(
            select(ColumnSummary.bucket_start, ColumnSummary.name, func.count(),
                   func.sum(ColumnSummary.parts))
            .where(ColumnSummary.model_id == ours)
            .group_by(ColumnSummary.bucket_start, ColumnSummary.name)
        ).all()  # fmt: skip
    assert len(groups) == 12 * 3  # twelve hours touched, three columns
    assert all(rows == 1 for _, _, rows, _ in groups)
    # every batch's summary merged exactly once, by one of the racers
    assert sum(parts for _, column, _, parts in groups if column == "age") == touched
    summary = assert_summarizes_the_stored_rows(engine, name, T0, T0 + timedelta(hours=12))
    assert summary.rows == 4000
    with engine.connect() as connection:
        unsettled = connection.execute(
            select(func.count()).where(ColumnSummary.model_id == ours, ~ColumnSummary.settled)
        ).scalar_one()
    assert unsettled == 0
    # a late record for a settled bucket: one more row, merged into it at the next pass
    late = rec("z-late", T0 + timedelta(minutes=5), 1.5, "CA")
    assert post(api, name, [late])["accepted"] == 1
    first_hour = [p for b, column, _, p in groups if b == T0 and column == "age"]
    service.compact(engine, now=datetime.now(UTC))
    with engine.connect() as connection:
        now_first_hour = connection.execute(
            select(func.count(), func.sum(ColumnSummary.parts)).where(
                ColumnSummary.model_id == ours, ColumnSummary.bucket_start == T0,
                ColumnSummary.name == "age",
            )
        ).one()  # fmt: skip
    assert tuple(now_first_hour) == (1, first_hour[0] + 1)
    assert (
        assert_summarizes_the_stored_rows(engine, name, T0, T0 + timedelta(hours=12)).rows == 4001
    )
