"""The SDK against a real collector on 127.0.0.1: batched, spooled, nothing lost or doubled."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi import Request
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session

import driftwatch
from driftwatch.config import Settings
from driftwatch.deps import get_session
from tests.conftest import (
    ADMIN_KEY,
    LiveServer,
    admin_http,
    create_model,
    free_port,
    start_server,
    wait_until,
)
from tests.test_api_ingest import FEATURES, stored


def counts(server_url: str, model: str) -> dict[str, int]:
    with admin_http(server_url) as http:
        result: dict[str, int] = http.get(f"/api/v1/models/{model}").json()["counts"]
        return result


def test_logged_records_arrive_once(
    api: TestClient, live_server: LiveServer, tmp_path: Path
) -> None:
    model = create_model(api, features=FEATURES)["name"]
    with driftwatch.Client(
        live_server.url, api_key=ADMIN_KEY, spool_dir=tmp_path, batch_size=500
    ) as client:
        ids = [client.log_prediction(model, {"age": i, "state": "CA"}, i % 2) for i in range(3000)]
        given = client.log_prediction(
            model,
            {"age": 1, "state": "NY"},
            0.2,
            prediction_id="p-1",
            model_version="v3",
            timestamp=datetime(2026, 11, 20, 10, tzinfo=UTC),
        )
        client.log_ground_truth(model, prediction_id="p-1", label=1)
        client.log_ground_truth(
            model, prediction_id=ids[0], label=0, timestamp="2026-11-27T09:00:00Z"
        )
        assert client.flush(timeout=30)
        assert client.pending() == 0
    assert given == "p-1"
    assert len(set(ids)) == 3000
    assert counts(live_server.url, model) == {"predictions": 3001, "labeled": 2}
    assert not list(tmp_path.glob("*.batch"))


def test_dataframes_and_lists_are_logged(
    api: TestClient, live_server: LiveServer, engine: Engine, tmp_path: Path
) -> None:
    model = create_model(api, features=FEATURES)["name"]
    frame = pd.DataFrame(
        {
            "prediction_id": ["a", "b", "c"],
            "timestamp": pd.to_datetime(["2026-11-20T10:00:00Z"] * 3),
            "age": np.array([31.0, np.nan, 40.0]),
            "state": ["CA", None, "TX"],
            "prediction": np.array([0.1, 0.9, 0.5]),
        }
    )
    with driftwatch.Client(live_server.url, api_key=ADMIN_KEY, spool_dir=tmp_path) as client:
        assert client.log_predictions(model, frame, model_version="v9") == ["a", "b", "c"]
        ids = client.log_predictions(
            model,
            [{"features": {"age": np.int64(5), "state": "WA"}, "prediction": np.float32(0.25)}],
        )
        client.log_ground_truths(
            model, pd.DataFrame({"prediction_id": ["a", "b"], "label": [1, 0]})
        )
        assert client.flush(timeout=30)
    rows = stored(engine, model)
    assert sorted(rows) == sorted(["a", "b", "c", *ids])
    assert rows["a"].ts == datetime(2026, 11, 20, 10, tzinfo=UTC)
    assert rows["a"].model_version == "v9"
    assert rows["c"].features == {"age": 40.0, "state": "TX"}
    assert rows["b"].features == {"age": None, "state": None}
    assert rows[ids[0]].features == {"age": 5.0, "state": "WA"}
    assert rows[ids[0]].prediction_value == 0.25
    assert counts(live_server.url, model)["labeled"] == 2


def test_rejected_records_are_reported_and_not_retried(
    api: TestClient, live_server: LiveServer, tmp_path: Path
) -> None:
    model = create_model(api, features=FEATURES)["name"]
    with driftwatch.Client(live_server.url, api_key=ADMIN_KEY, spool_dir=tmp_path) as client:
        client.log_prediction(model, {"age": 1}, 1, prediction_id="ok")
        client.log_prediction(model, {"age": "abc"}, 1, prediction_id="bad")
        circular: list[object] = []
        circular.append(circular)
        client.log_prediction(model, {"age": circular}, 1, prediction_id="weird")
        client.log_prediction(model, {"age": 2}, 1, prediction_id="ok-2")
        assert client.flush(timeout=30)
        reported = {r.prediction_id: r.error for r in client.rejected}
        assert reported["bad"] == "feature 'age': expected a number, got 'abc'"
        assert reported["weird"].startswith("cannot be sent as JSON")
        assert len(reported) == 2
    assert counts(live_server.url, model)["predictions"] == 2


def test_records_wait_on_disk_while_the_collector_is_down(
    api: TestClient, settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    model = create_model(api, features=FEATURES)["name"]
    port = free_port()
    client = driftwatch.Client(
        f"http://127.0.0.1:{port}",
        api_key=ADMIN_KEY,
        spool_dir=tmp_path,
        max_backoff=0.5,
        batch_size=1000,
    )
    server = None
    try:
        for i in range(2500):
            client.log_prediction(model, {"age": i}, 0.5, prediction_id=f"p-{i}")
        assert client.flush(timeout=1) is False
        assert client.pending() == 2500
        # on disk, not only in memory (in batches of at most 1000: three, or more where the
        # writer's flush interval cut one short on a slow machine)
        assert wait_until(lambda: client.stats()["spooled"] == 2500, timeout=10)
        assert sum(1 for _ in tmp_path.glob("*.batch")) >= 3
        server = start_server(settings, engine, port=port)
        assert client.flush(timeout=30)
        client.close()
        assert counts(server.url, model)["predictions"] == 2500
    finally:
        client.close()  # a client left running retries, and logs, into the next tests
        if server is not None:
            server.stop()


def test_the_spool_outlives_a_logging_process_that_is_killed(
    api: TestClient, live_server: LiveServer, tmp_path: Path
) -> None:
    model = create_model(api, features=FEATURES)["name"]
    script = textwrap.dedent(f"""
        import os, signal, time, driftwatch
        client = driftwatch.Client("http://127.0.0.1:{free_port()}", api_key="k",
                                   spool_dir={str(tmp_path)!r})
        for i in range(1500):
            client.log_prediction({model!r}, {{"age": i}}, 0.5, prediction_id=f"p-{{i}}")
        time.sleep(1.5)  # the writer spools within its flush interval
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    process = subprocess.run([sys.executable, "-c", script], timeout=60, check=False)
    assert process.returncode == -9
    assert list(tmp_path.glob("*.batch"))
    with driftwatch.Client(live_server.url, api_key=ADMIN_KEY, spool_dir=tmp_path) as client:
        assert client.flush(timeout=30)
    assert counts(live_server.url, model)["predictions"] == 1500


def test_a_batch_too_large_for_the_collector_is_split(
    api: TestClient, settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    model = create_model(api, features=FEATURES)["name"]
    server = start_server(settings.model_copy(update={"max_body_bytes": 20_000}), engine)
    try:
        with driftwatch.Client(
            server.url, api_key=ADMIN_KEY, spool_dir=tmp_path, batch_size=1000
        ) as client:
            for i in range(1000):
                client.log_prediction(model, {"age": i, "state": "CA"}, 0.5)
            assert client.flush(timeout=30)
            assert not client.rejected
        assert counts(server.url, model)["predictions"] == 1000
    finally:
        server.stop()


def test_records_for_a_model_not_yet_registered_wait_for_it(
    api: TestClient, live_server: LiveServer, tmp_path: Path
) -> None:
    name = "later-" + tmp_path.name[-8:].replace("_", "-")
    with driftwatch.Client(
        live_server.url, api_key=ADMIN_KEY, spool_dir=tmp_path, max_backoff=0.3
    ) as client:
        client.log_prediction(name, {"age": 3}, 1, prediction_id="x")
        assert client.flush(timeout=1) is False
        assert (
            api.post(
                "/api/v1/models", json={"name": name, "task": "regression", "features": FEATURES}
            ).status_code
            == 201
        )
        assert client.flush(timeout=30)
    assert counts(live_server.url, name)["predictions"] == 1


def test_a_closed_client_refuses_new_records(live_server: LiveServer, tmp_path: Path) -> None:
    client = driftwatch.Client(live_server.url, api_key=ADMIN_KEY, spool_dir=tmp_path)
    client.close()
    with pytest.raises(RuntimeError, match="closed"):
        client.log_prediction("m", {}, 1)


def test_a_naive_timestamp_is_refused_in_the_callers_thread(
    live_server: LiveServer, tmp_path: Path
) -> None:
    naive = datetime(2026, 1, 1)  # noqa: DTZ001 - the point of the test
    with driftwatch.Client(live_server.url, spool_dir=tmp_path) as client:
        with pytest.raises(ValueError, match="no timezone"):
            client.log_prediction("m", {}, 1, timestamp=naive)
        assert client.pending() == 0


def test_a_batch_is_committed_before_it_is_acknowledged(
    api: TestClient, settings: Settings, engine: Engine
) -> None:
    """The SDK deletes a spool file on a 200, so the 200 must come after the commit."""

    def slow_commit_session(request: Request) -> Iterator[Session]:
        with Session(request.app.state.engine, expire_on_commit=False) as session:
            yield session
            time.sleep(0.5)  # a slow commit: the reply must wait for it
            session.commit()

    model = create_model(api, features=FEATURES)["name"]
    server = start_server(settings, engine)
    server.server.config.app.dependency_overrides[get_session] = slow_commit_session
    try:
        with admin_http(server.url) as http:
            response = http.post(
                f"/api/v1/models/{model}/predictions",
                json={"records": [{"prediction_id": "x", "features": {"age": 1}, "prediction": 1}]},
            )
            assert response.json()["accepted"] == 1, response.text
            assert sorted(stored(engine, model)) == ["x"]  # visible the moment the reply came
    finally:
        server.stop()


def test_batches_decode_to_what_was_queued() -> None:
    from driftwatch.sdk.client import PREDICTIONS, _decode, _encode

    records = [
        ("a", 1.5, ("x", "y", "n"), (0.25, "CA", 3), 0.9, "v1"),
        ("b", "2026-11-20T10:00:00Z", ("x", "y", "n"), (None, None, None), "cat", None),
        ("c", 2.5, ("y", "z"), ("NY", 1.0), 0.1, None),  # other features
    ]
    decoded = _decode(_encode(PREDICTIONS, list(records)))
    assert [dict(zip(r[2], r[3], strict=True)) for r in decoded] == [
        {"x": 0.25, "y": "CA", "n": 3, "z": None},
        {"x": None, "y": None, "n": None, "z": None},
        {"x": None, "y": "NY", "n": None, "z": 1.0},
    ]
    assert [(r[0], r[1], r[4], r[5]) for r in decoded] == [
        ("a", 1.5, 0.9, "v1"),
        ("b", "2026-11-20T10:00:00Z", "cat", None),
        ("c", 2.5, 0.1, None),
    ]


# -- hostile neighbours: a misspelled model, a full spool, a full or unusable disk -------------


def test_a_misspelled_model_does_not_hold_back_other_models(
    api: TestClient, live_server: LiveServer, tmp_path: Path
) -> None:
    model = create_model(api, features=FEATURES)["name"]
    typo = model + "-typo"  # answers 404
    with driftwatch.Client(
        live_server.url, api_key=ADMIN_KEY, spool_dir=tmp_path, batch_size=2000, give_up_after=2.0
    ) as client:
        for i in (1, 2):  # two spool files of the misspelled model, first in line
            client.log_prediction(typo, {"age": i}, 0.5, prediction_id=f"typo-{i}")
            assert wait_until(lambda n=i: len(list(tmp_path.glob("*.batch"))) == n, timeout=5)
        began = time.monotonic()
        for i in range(20_000):
            client.log_prediction(model, {"age": i, "state": "CA"}, 0.5, prediction_id=f"g-{i}")
        assert wait_until(lambda: counts(live_server.url, model)["predictions"] == 20_000, 10)
        assert time.monotonic() - began < 10
        assert wait_until(lambda: len(client.rejected) == 2, timeout=10)
        assert {r.prediction_id for r in client.rejected} == {"typo-1", "typo-2"}
        assert all(r.model == typo for r in client.rejected)
        assert all("set aside" in r.error and "404" in r.error for r in client.rejected), (
            client.rejected
        )
        assert client.flush(timeout=10)
        assert client.stats()["set_aside"] == 2
    assert not list(tmp_path.glob("*.batch"))


def test_a_spool_at_its_cap_drops_with_a_counter_and_one_log_line(
    api: TestClient,
    settings: Settings,
    engine: Engine,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    model = create_model(api, features=FEATURES)["name"]
    port = free_port()  # the collector is down: everything waits
    caplog.set_level(logging.WARNING, logger="driftwatch.sdk")
    client = driftwatch.Client(
        f"http://127.0.0.1:{port}",
        api_key=ADMIN_KEY,
        spool_dir=tmp_path,
        batch_size=500,
        max_queue=1000,
        max_spool_bytes=40_000,
        max_backoff=0.3,
    )
    for i in range(10_000):
        client.log_prediction(model, {"age": i}, 0.5, prediction_id=f"p-{i}")
    assert client.flush(timeout=1) is False
    spooled = sum(p.stat().st_size for p in tmp_path.glob("*.batch"))
    assert 0 < spooled <= 40_000
    assert client.dropped > 0
    assert client.pending() + client.dropped == 10_000
    assert client.pending() <= 40_000 // 10 + 2 * 1000  # bounded: the spool, then memory
    stats = client.stats()
    assert stats["dropped"] == client.dropped
    assert stats["spool_bytes"] == spooled
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert sum("reached its cap" in m for m in warnings) == 1, warnings
    assert sum("dropping" in m for m in warnings) == 1, warnings
    server = start_server(settings, engine, port=port)
    try:
        assert client.flush(timeout=30)
        client.close()
        assert counts(server.url, model)["predictions"] == 10_000 - client.dropped
    finally:
        server.stop()


def test_a_full_disk_neither_raises_nor_leaves_tmp_files(
    api: TestClient, live_server: LiveServer, tmp_path: Path
) -> None:
    """A real full disk: RLIMIT_FSIZE makes every write past 64 bytes fail (EFBIG) in the
    logging process, as ENOSPC would, after ``open`` has created the file."""
    model = create_model(api, features=FEATURES)["name"]
    script = textwrap.dedent(f"""
        import json, resource, driftwatch
        resource.setrlimit(resource.RLIMIT_FSIZE, (64, resource.RLIM_INFINITY))
        client = driftwatch.Client({live_server.url!r}, api_key={ADMIN_KEY!r},
                                   spool_dir={str(tmp_path)!r}, batch_size=500, max_queue=1000)
        for i in range(5000):
            client.log_prediction({model!r}, {{"age": i}}, 0.5, prediction_id=f"p-{{i}}")
        flushed = client.flush(timeout=30)
        client.close()
        print(json.dumps({{"flushed": flushed, "dropped": client.dropped}}))
    """)
    process = subprocess.run(
        [sys.executable, "-c", script], timeout=60, check=False, capture_output=True, text=True
    )
    assert process.returncode == 0, process.stderr[-3000:]
    result = json.loads(process.stdout.strip().splitlines()[-1])
    assert result["flushed"] is True
    assert counts(live_server.url, model)["predictions"] + result["dropped"] == 5000
    assert counts(live_server.url, model)["predictions"] > 0
    assert list(tmp_path.iterdir()) == []  # no .tmp files, no half batches


def test_a_client_starts_and_works_without_a_usable_spool_folder(
    api: TestClient, live_server: LiveServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    model = create_model(api, features=FEATURES)["name"]
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    caplog.set_level(logging.WARNING, logger="driftwatch.sdk")
    with driftwatch.Client(
        live_server.url, api_key=ADMIN_KEY, spool_dir=blocker / "spool", batch_size=500
    ) as client:
        for i in range(3000):
            client.log_prediction(model, {"age": i}, 0.5)
        assert client.flush(timeout=30)
        assert client.stats()["spool"] is False
    assert counts(live_server.url, model)["predictions"] == 3000
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert sum("without a spool" in m for m in warnings) == 1, warnings
    assert len(warnings) == 1, warnings


def test_without_a_spool_memory_is_bounded_and_drops_are_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    caplog.set_level(logging.WARNING, logger="driftwatch.sdk")
    client = driftwatch.Client(
        f"http://127.0.0.1:{free_port()}",
        spool_dir=blocker / "spool",
        batch_size=500,
        max_queue=1000,
        max_backoff=0.3,
    )
    try:
        for i in range(20_000):
            client.log_prediction("m", {"age": i}, 0.5)
        assert client.flush(timeout=0.5) is False
        assert client.pending() <= 2 * 1000
        assert client.pending() + client.dropped == 20_000
        warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        assert sum("dropping" in m for m in warnings) == 1, warnings
    finally:
        client.close(timeout=0.5)


def test_stale_tmp_files_are_removed_at_start(live_server: LiveServer, tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    stale = tmp_path / f"{time.time_ns():020d}-{int(dead.stdout)}-00000000.tmp"
    stale.write_bytes(b"")  # a write that failed, or a process that died mid-write
    with driftwatch.Client(live_server.url, api_key=ADMIN_KEY, spool_dir=tmp_path):
        assert not stale.exists()


def test_two_clients_sharing_a_spool_folder_send_each_batch_once(
    api: TestClient, settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    model = create_model(api, features=FEATURES)["name"]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    first = driftwatch.Client(url, api_key=ADMIN_KEY, spool_dir=tmp_path, batch_size=200)
    for i in range(2000):
        first.log_prediction(model, {"age": i}, 0.5, prediction_id=f"p-{i}")
    assert first.flush(timeout=0.5) is False
    second = driftwatch.Client(url, api_key=ADMIN_KEY, spool_dir=tmp_path)  # adopts them all
    assert second.pending() == 2000
    server = start_server(settings, engine, port=port)
    try:
        assert first.flush(timeout=30)
        assert second.flush(timeout=30)  # what the first sent is no longer its to send
        assert first.pending() == second.pending() == 0
        assert first.stats()["models"] == second.stats()["models"] == {}
        first.close()
        second.close()
        assert counts(server.url, model)["predictions"] == 2000
        assert not list(tmp_path.iterdir())
    finally:
        server.stop()
