"""A run from summaries racing compaction of its own buckets, and batches still arriving: each
run counts every stored row once, never a bucket both before and after its merge."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from driftwatch.app import create_app
from driftwatch.config import Settings
from driftwatch.summaries import service
from tests.conftest import ADMIN_KEY, create_model
from tests.test_summaries_ingest import FEATURES, records

DAY = datetime(2026, 11, 12, tzinfo=UTC)
BATCH = 100


@pytest.fixture
def summaries_api(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    # every window is past the exact limit: each run below reads summaries only
    custom = settings.model_copy(update={"exact_max_rows": 50})
    with TestClient(
        create_app(custom, engine), headers={"Authorization": f"Bearer {ADMIN_KEY}"}
    ) as client:
        yield client


def _batches(prefix: str, count: int) -> list[list[dict[str, object]]]:
    # a day's rows spread over all 24 hourly buckets, so each batch touches many buckets
    sent = records(prefix, count * BATCH, DAY, timedelta(seconds=86_000 / (count * BATCH)))
    return [sent[i::count] for i in range(count)]


def test_runs_racing_compaction_and_new_batches_count_each_row_once(
    summaries_api: TestClient, engine: Engine
) -> None:
    api = summaries_api
    name = create_model(api, features=FEATURES, window="1d")["name"]
    baseline = [{"features": r["features"], "prediction": r["prediction"]}
                for r in records("base", 600, DAY, timedelta(seconds=1))]  # fmt: skip
    made = api.post(f"/api/v1/models/{name}/baselines", json={"name": "b", "records": baseline})
    assert made.status_code == 201, made.text
    early, late = _batches("early", 8), _batches("late", 8)
    for batch in early:
        posted = api.post(f"/api/v1/models/{name}/predictions",
                          content=orjson.dumps({"records": batch}))  # fmt: skip
        assert posted.json()["accepted"] == BATCH, posted.text
    window = {"start": DAY.isoformat(), "end": (DAY + timedelta(days=1)).isoformat()}
    stop = threading.Event()
    failures: list[BaseException] = []

    def guarded(work: object) -> None:
        try:
            work()  # type: ignore[operator]
        except BaseException as error:  # surfaced by the main thread
            failures.append(error)
            stop.set()

    def compact_until_stopped() -> None:
        while not stop.is_set():
            service.compact(engine, now=DAY + timedelta(days=3))

    def send_late_rows() -> None:
        for batch in late:  # each batch lands in buckets compaction has merged or is merging
            posted = api.post(f"/api/v1/models/{name}/predictions",
                              content=orjson.dumps({"records": batch}))  # fmt: skip
            assert posted.json()["accepted"] == BATCH, posted.text

    compactor = threading.Thread(target=guarded, args=(compact_until_stopped,))
    sender = threading.Thread(target=guarded, args=(send_late_rows,))
    compactor.start()
    sender.start()
    seen: list[int] = []
    try:
        while sender.is_alive() or len(seen) < 3:
            run = api.post(f"/api/v1/models/{name}/runs", json=window)
            assert run.status_code == 200, run.text
            body = run.json()
            assert body["source"] == "summaries", body
            seen.append(body["rows"])
            if failures:
                break
    finally:
        sender.join()
        stop.set()
        compactor.join()
    assert not failures, failures
    total = BATCH * (len(early) + len(late))
    # a batch's rows and its summaries commit together: a run sees whole batches, and a bucket
    # being merged once, never both its parts and their merge nor neither
    assert all(rows % BATCH == 0 and BATCH * len(early) <= rows <= total for rows in seen), seen
    assert seen == sorted(seen), seen
    final = api.post(f"/api/v1/models/{name}/runs", json=window).json()
    assert final["rows"] == total
    exact = api.post(f"/api/v1/models/{name}/runs", json={**window, "exact": True}).json()
    assert exact["rows"] == total
    for approximate, from_rows in zip(final["features"], exact["features"], strict=True):
        assert approximate["missing_share"] == from_rows["missing_share"]
        assert abs(approximate["score"] - from_rows["score"]) <= approximate["max_error"] + 1e-12
