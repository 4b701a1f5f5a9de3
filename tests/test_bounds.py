"""Bounds on what traffic can make the service keep (issue 13): features per model, memory per
batch, how far back a record may be dated, partitions per batch, unseen categories per run,
the cost of ``/metrics`` scrapes, and feature names that cannot be stored or shown."""

from __future__ import annotations

import threading
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event

from driftwatch import db
from driftwatch.app import create_app
from driftwatch.config import Settings
from driftwatch.core.time import day_start, utcnow
from driftwatch.storage import partitions
from tests.conftest import ADMIN_KEY, create_model, unique
from tests.factories import baseline_records, model, predictions

NOW = day_start(datetime.now(UTC)) + timedelta(hours=1)


def _numbers(count: int) -> list[dict[str, str]]:
    return [{"name": f"f{i}", "kind": "numerical"} for i in range(count)]


# -- item 4: width ------------------------------------------------------------------------------


def test_a_first_batch_of_more_features_than_the_limit_is_refused(api: TestClient) -> None:
    name = create_model(api, task="regression")["name"]
    wide = [{"prediction_id": "w", "features": {f"f{i}": 1.0 for i in range(2001)},
             "prediction": 1.0}]  # fmt: skip
    answer = api.post(f"/api/v1/models/{name}/predictions", json={"records": wide})
    assert answer.status_code == 422, answer.text
    detail = answer.json()["detail"]
    assert "2001 features" in detail
    assert "at most 500 (DRIFTWATCH_MAX_FEATURES)" in detail
    assert api.get(f"/api/v1/models/{name}").json()["features"] == []  # nothing adopted
    narrow = [{"prediction_id": "n", "features": {"a": 1.0}, "prediction": 1.0}]
    assert api.post(f"/api/v1/models/{name}/predictions",
                    json={"records": narrow}).json()["accepted"] == 1  # fmt: skip


def test_registering_or_patching_past_the_feature_limit_is_refused(api: TestClient) -> None:
    body = {"name": unique(), "task": "regression", "features": _numbers(501)}
    answer = api.post("/api/v1/models", json=body)
    assert answer.status_code == 422, answer.text
    assert "501 features" in answer.json()["detail"]
    assert "DRIFTWATCH_MAX_FEATURES" in answer.json()["detail"]
    name = create_model(api, task="regression", features=_numbers(400))["name"]
    more = [{"name": f"g{i}", "kind": "numerical"} for i in range(101)]
    answer = api.patch(f"/api/v1/models/{name}", json={"features": more})
    assert answer.status_code == 422, answer.text
    assert "501 features" in answer.json()["detail"]
    assert len(api.get(f"/api/v1/models/{name}").json()["features"]) == 400


def test_a_first_baseline_of_more_features_than_the_limit_is_refused(
    settings: Settings, engine: Engine
) -> None:
    custom = settings.model_copy(update={"max_features": 3})
    with TestClient(create_app(custom, engine),
                    headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as api:  # fmt: skip
        name = create_model(api, task="regression")["name"]
        records = [{"features": {"a": 1.0, "b": 2.0, "c": 3.0, "d": 4.0}, "prediction": 1.0}]
        answer = api.post(f"/api/v1/models/{name}/baselines",
                          json={"name": "wide", "records": records})  # fmt: skip
        assert answer.status_code == 422, answer.text
        assert "4 features; a model has at most 3" in answer.json()["detail"]


def _post_measured(api: TestClient, name: str, body: bytes) -> tuple[Any, int]:
    """The answer to a prediction batch, and the peak memory (tracemalloc) its request took."""
    tracemalloc.start()
    try:
        answer = api.post(f"/api/v1/models/{name}/predictions", content=body,
                          headers={"content-type": "application/json"})  # fmt: skip
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return answer, peak


def test_a_wide_sparse_batch_costs_memory_in_proportion_to_its_body(api: TestClient) -> None:
    """500 features (the limit), 4,000 records each giving one of them: the body is ~280 kB.
    Stored, the batch is a dense matrix (8 bytes a feature a record: 16 MB, 57 times the body);
    the request may cost that and a little more, not several copies of it (before: 160 times
    the body, 45 MB)."""
    name = create_model(api, task="regression", features=_numbers(500))["name"]
    records = [{"prediction_id": f"p{j}", "timestamp": NOW.isoformat(),
                "features": {f"f{j % 500}": 1.5}, "prediction": 0.5}
               for j in range(4000)]  # fmt: skip
    body = orjson.dumps({"records": records})
    del records
    answer, peak = _post_measured(api, name, body)
    assert answer.json()["accepted"] == 4000, answer.text
    assert peak < 100 * len(body), f"{peak / len(body):.0f} times the body"


def test_a_batch_too_sparse_for_its_width_is_refused_before_it_is_held(api: TestClient) -> None:
    """50,000 records each giving one of 500 features: a 3.5 MB body that would be 200 MB held
    and stored densely (one key with 16 of these at once: gigabytes). Refused with 413 (the SDK
    splits it), nothing stored, and the refusal itself costs memory in proportion to the body
    (before: 609 MB of RSS for one such batch)."""
    name = create_model(api, task="regression", features=_numbers(500))["name"]
    records = [{"timestamp": NOW.isoformat(), "features": {f"f{j % 500}": 1.0},
                "prediction": 0.5} for j in range(50_000)]  # fmt: skip
    body = orjson.dumps({"records": records})
    del records
    answer, peak = _post_measured(api, name, body)
    assert answer.status_code == 413, answer.text
    assert "50000 records" in answer.json()["detail"]
    assert "fewer records per batch" in answer.json()["detail"]
    assert peak < 60 * len(body), f"{peak / len(body):.0f} times the body"
    assert api.get(f"/api/v1/models/{name}").json()["counts"]["predictions"] == 0


# -- item 6: how far back, how many partitions ------------------------------------------------


def _partition_names(engine: Engine) -> set[str]:
    if engine.dialect.name != "postgresql":
        return set()
    with engine.connect() as connection:
        return {p.name for p in partitions.list_partitions(connection)}


def test_a_record_dated_year_one_is_rejected_alone(api: TestClient, engine: Engine) -> None:
    subject = model(api)
    records = predictions(3, prefix="age", start=NOW)
    records[1]["timestamp"] = "0001-01-01T00:00:00Z"
    before = _partition_names(engine)
    answer = subject.log(records)
    assert answer["accepted"] == 2
    [rejected] = answer["rejected"]
    assert (rejected["index"], rejected["prediction_id"]) == (1, "age-1")
    assert "0001-01-01" in rejected["error"]
    assert "365 days" in rejected["error"]
    assert "DRIFTWATCH_MAX_RECORD_AGE" in rejected["error"]
    assert not {n for n in _partition_names(engine) - before if "_p0001" in n}
    labels = [{"prediction_id": "age-0", "label": 1, "timestamp": "0001-01-01T00:00:00Z"},
              {"prediction_id": "age-2", "label": 0, "timestamp": "9999-01-01T00:00:00Z"},
              {"prediction_id": "age-1", "label": 0}]  # fmt: skip
    answer = subject.label(labels)
    assert answer["accepted"] == 1
    errors = {r["index"]: r["error"] for r in answer["rejected"]}
    assert "DRIFTWATCH_MAX_RECORD_AGE" in errors[0]
    assert "more than a day after" in errors[1]


def test_the_record_age_limit_is_a_setting(settings: Settings, engine: Engine) -> None:
    custom = settings.model_copy(update={"max_record_age": timedelta(days=30)})
    with TestClient(create_app(custom, engine),
                    headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as api:  # fmt: skip
        subject = model(api)
        records = predictions(2, prefix="a", start=NOW - timedelta(days=40))
        records[1]["timestamp"] = NOW.isoformat()
        answer = subject.log(records)
        assert answer["accepted"] == 1
        assert "30 days" in answer["rejected"][0]["error"]
    assert Settings(max_record_age="90d").max_record_age == timedelta(days=90)  # type: ignore[arg-type]


@pytest.fixture
def capped(own_database: str) -> Iterator[TestClient]:
    settings = Settings(database_url=own_database, admin_key=ADMIN_KEY,  # type: ignore[arg-type]
                        max_batch_partitions=3)  # fmt: skip
    with TestClient(create_app(settings, db.get_engine(own_database)),
                    headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as client:  # fmt: skip
        yield client


def test_a_batch_needing_more_partitions_than_the_cap_is_refused(
    capped: TestClient, backend: str, own_database: str
) -> None:
    if backend != "postgres":
        pytest.skip("partitions are Postgres tables; SQLite creates none")
    engine = db.get_engine(own_database)
    subject = model(capped)
    first = day_start(utcnow()) - timedelta(days=30)
    spread = predictions(5, prefix="d", start=first + timedelta(hours=1), step=timedelta(days=1))
    before = _partition_names(engine)
    answer = capped.post(f"{subject.path}/predictions", json={"records": spread})
    assert answer.status_code == 413, answer.text  # the SDK splits a batch answered 413
    detail = answer.json()["detail"]
    assert "5 new time partitions" in detail
    assert "at most 3" in detail
    assert "DRIFTWATCH_MAX_BATCH_PARTITIONS" in detail
    assert _partition_names(engine) == before
    assert subject.log(spread[:3])["accepted"] == 3  # three new days: within the cap
    assert subject.log(spread)["accepted"] == 2  # two more new days
    assert len(_partition_names(engine) - before) == 2 * 5


# -- item 7: unseen categories, /metrics --------------------------------------------------------


def test_a_window_with_many_unseen_categories_keeps_the_top_ones_and_the_count(
    api: TestClient,
) -> None:
    subject = model(api)
    subject.baseline(baseline_records(200))  # states CA, NY, TX

    def state(i: int) -> str:  # u00..u04 five times each, then u05..u99 once each
        return f"u{i // 5:02d}" if i < 25 else f"u{i - 20:02d}"

    subject.log(predictions(120, prefix="c", start=NOW,
                            features=lambda i: {"age": 30, "state": state(i)}))  # fmt: skip
    run = subject.run(NOW, NOW + timedelta(hours=1))
    kept = run["quality"]["new_categories"]["state"]
    assert len(kept) == 20
    assert kept[:5] == ["u00", "u01", "u02", "u03", "u04"]  # the most frequent first
    assert run["quality"]["new_categories_total"] == {"state": 100}
    scraped = api.get(f"{subject.path}/runs/{run['id']}").json()
    assert scraped["quality"]["new_categories_total"] == {"state": 100}


def test_metrics_scrapes_read_the_database_once_per_cache_period(
    settings: Settings, engine: Engine
) -> None:
    custom = settings.model_copy(update={"metrics_cache_seconds": 60.0})
    statements: list[str] = []
    scraping = threading.Event()  # the endpoint runs in a worker thread of the test client

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if scraping.is_set():
            statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        with TestClient(create_app(custom, engine),
                        headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as api:  # fmt: skip
            subject = model(api)
            subject.baseline(baseline_records(50))
            subject.log(predictions(50, prefix="m", start=NOW))
            subject.run(NOW, NOW + timedelta(hours=1))
            bodies = []
            counts = []
            for _ in range(10):
                scraping.set()
                try:
                    bodies.append(api.get("/metrics", headers={"Authorization": ""}).text)
                finally:
                    scraping.clear()
                counts.append(len(statements))
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert f'driftwatch_window_rows{{model="{subject.name}"}} 50.0' in bodies[-1]
    assert counts[0] > 0
    assert counts[-1] == counts[0], counts  # the nine scrapes after the first read nothing


# -- item 10: names that cannot be stored or shown ----------------------------------------------


@pytest.mark.parametrize("bad", ["a\x00b", "tab\there", "bell\x07", "age\u202ecod", "x\u2066y"])
def test_a_feature_name_with_a_control_character_is_refused(api: TestClient, bad: str) -> None:
    name = create_model(api, task="regression")["name"]
    records = [{"prediction_id": "x", "features": {bad: 1.0, "ok": 2.0}, "prediction": 1.0},
               {"prediction_id": "y", "features": {"ok": 3.0}, "prediction": 1.0}]  # fmt: skip
    answer = api.post(f"/api/v1/models/{name}/predictions", json={"records": records})
    assert answer.status_code == 200, answer.text
    assert answer.json()["accepted"] == 1
    [rejected] = answer.json()["rejected"]
    assert rejected["index"] == 0
    assert "control or text-direction characters" in rejected["error"]
    assert api.get(f"/api/v1/models/{name}").json()["features"] == [
        {"name": "ok", "kind": "numerical"}
    ]
    listing = api.get("/api/v1/models")
    assert listing.status_code == 200, listing.text
    body = {
        "name": unique(),
        "task": "regression",
        "features": [{"name": bad, "kind": "numerical"}],
    }
    answer = api.post("/api/v1/models", json=body)
    assert answer.status_code == 422, answer.text
    assert "features.0.name: must not contain NUL, control or text-direction" in answer.text


def test_the_models_listing_survives_a_stored_name_it_cannot_validate(
    api: TestClient, engine: Engine
) -> None:
    """A name stored before names were checked (or by hand) never makes the listing fail."""
    from sqlalchemy import update

    from driftwatch.models import MonitoredModel

    name = create_model(api, task="regression")["name"]
    with db.session_scope(engine) as session:
        session.execute(update(MonitoredModel).where(MonitoredModel.name == name)
                        .values(features=[{"name": "a\x00b", "kind": "numerical"}]))  # fmt: skip
    listing = api.get("/api/v1/models")
    assert listing.status_code == 200, listing.text
    assert api.get(f"/api/v1/models/{name}").status_code == 200


@pytest.mark.slow
def test_the_sdk_splits_a_batch_over_the_partition_cap_and_loses_nothing(
    backend: str, own_database: str, tmp_path: Any
) -> None:
    """A backfill the SDK sends in one batch that needs more new partitions than the cap is
    answered 413, split in halves and resent until every half fits: all records stored."""
    if backend != "postgres":
        pytest.skip("partitions are Postgres tables; SQLite creates none")
    import driftwatch
    from tests.conftest import admin_http, start_server

    settings = Settings(database_url=own_database, admin_key=ADMIN_KEY,  # type: ignore[arg-type]
                        max_batch_partitions=2)  # fmt: skip
    server = start_server(settings, db.get_engine(own_database))
    try:
        with admin_http(server.url) as http:
            name = unique()
            body = {"name": name, "task": "regression",
                    "features": [{"name": "age", "kind": "numerical"}]}  # fmt: skip
            assert http.post("/api/v1/models", json=body).status_code == 201
        first = day_start(utcnow()) - timedelta(days=20)
        with driftwatch.Client(server.url, api_key=ADMIN_KEY, spool_dir=tmp_path,
                               batch_size=100) as client:  # fmt: skip
            for day in range(8):
                client.log_prediction(name, {"age": day}, 0.5, prediction_id=f"d{day}",
                                      timestamp=first + timedelta(days=day, hours=1))  # fmt: skip
            assert client.flush(timeout=30)
            assert not client.rejected
        with admin_http(server.url) as http:
            assert http.get(f"/api/v1/models/{name}").json()["counts"]["predictions"] == 8
    finally:
        server.stop()
