"""A collector process killed mid-stream and restarted: every record arrives exactly once."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import driftwatch
from driftwatch.testing import start_serve
from tests.conftest import ADMIN_KEY, create_model, free_port, wait_until
from tests.test_api_ingest import FEATURES

pytestmark = pytest.mark.slow


def serve(database_url: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    return start_serve(database_url, port, log, env={"DRIFTWATCH_ADMIN_KEY": ADMIN_KEY})


def test_killing_the_collector_mid_stream_loses_and_doubles_nothing(
    api: TestClient, database_url: str, tmp_path: Path
) -> None:
    model = create_model(api, features=FEATURES)["name"]
    port = free_port()
    log = tmp_path / "serve.log"
    collector = serve(database_url, port, log)
    total = 40_000
    logged = threading.Event()
    client = driftwatch.Client(
        f"http://127.0.0.1:{port}",
        api_key=ADMIN_KEY,
        spool_dir=tmp_path / "spool",
        batch_size=500,
        max_backoff=1.0,
    )

    def produce() -> None:
        for i in range(total):
            client.log_prediction(
                model, {"age": i % 97, "state": "CA"}, 0.5, prediction_id=f"p-{i}"
            )
            if i % 500 == 0:
                time.sleep(0.01)  # a steady stream, not one burst
        logged.set()

    producer = threading.Thread(target=produce)
    producer.start()
    try:

        def some_arrived() -> bool:
            body = api.get(f"/api/v1/models/{model}").json()
            return bool(body["counts"]["predictions"] > 2000)

        assert wait_until(some_arrived, timeout=60)
        collector.send_signal(signal.SIGKILL)
        collector.wait(timeout=30)
        arrived_before = api.get(f"/api/v1/models/{model}").json()["counts"]["predictions"]
        time.sleep(1.0)  # the SDK meets a dead collector for a while
        collector = serve(database_url, port, log)
        producer.join(timeout=120)
        assert logged.is_set()
        assert client.flush(timeout=120), f"{client.pending()} records not acknowledged"
        client.close()
    finally:
        collector.send_signal(signal.SIGTERM)
        collector.wait(timeout=30)
    assert arrived_before < total  # the kill really happened mid-stream
    counts = api.get(f"/api/v1/models/{model}").json()["counts"]
    assert counts["predictions"] == total
    assert not list((tmp_path / "spool").glob("*.batch"))
    assert not client.rejected


def test_shadow_predictions_survive_a_collector_kill_exactly_once_in_either_order(
    api: TestClient, database_url: str, tmp_path: Path
) -> None:
    """Served and shadow predictions streamed together (a shadow before its served prediction
    for every other id), the collector killed mid-stream and restarted: each (id, version)
    is stored once and joined to its served prediction."""
    model = create_model(api, features=FEATURES)["name"]
    base = [{"features": {"age": i % 97, "state": "CA"}, "prediction": 0.5} for i in range(200)]
    response = api.post(f"/api/v1/models/{model}/baselines",
                        json={"name": "b", "records": base})  # fmt: skip
    assert response.status_code == 201, response.text
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    port = free_port()
    log = tmp_path / "serve.log"
    collector = serve(database_url, port, log)
    total = 8_000
    client = driftwatch.Client(f"http://127.0.0.1:{port}", api_key=ADMIN_KEY,
                               spool_dir=tmp_path / "spool", batch_size=500,
                               max_backoff=1.0)  # fmt: skip

    def served(i: int) -> None:
        client.log_prediction(
            model, {"age": i % 97, "state": "CA"}, 0.9 if i % 3 else 0.1,
            prediction_id=f"p-{i}", timestamp=start + timedelta(milliseconds=400 * i),
        )  # fmt: skip

    def produce() -> None:
        for i in range(total):
            if i % 2:
                served(i)
            client.log_shadow_prediction(model, prediction_id=f"p-{i}", model_version="v5",
                                         prediction=0.9)  # fmt: skip
            if not i % 2:
                served(i)
            if i % 500 == 0:
                time.sleep(0.01)

    producer = threading.Thread(target=produce)
    producer.start()
    try:

        def some_arrived() -> bool:
            body = api.get(f"/api/v1/models/{model}").json()
            return bool(body["counts"]["predictions"] > 1000)

        assert wait_until(some_arrived, timeout=60)
        collector.send_signal(signal.SIGKILL)
        collector.wait(timeout=30)
        arrived_before = api.get(f"/api/v1/models/{model}").json()["counts"]["predictions"]
        time.sleep(1.0)
        collector = serve(database_url, port, log)
        producer.join(timeout=120)
        assert client.flush(timeout=120), f"{client.pending()} records not acknowledged"
        client.close()
    finally:
        collector.send_signal(signal.SIGTERM)
        collector.wait(timeout=30)
    assert arrived_before < total
    assert not client.rejected
    response = api.post(f"/api/v1/models/{model}/runs", json={
        "start": start.isoformat(), "end": (start + timedelta(hours=1)).isoformat()})  # fmt: skip
    assert response.status_code == 200, response.text
    run = response.json()
    assert run["rows"] == total
    (shadow,) = [v for v in run["versions"] if v["role"] == "shadow"]
    assert (shadow["model_version"], shadow["rows"]) == ("v5", total)
    assert shadow["agreement"] == pytest.approx(sum(1 for i in range(total) if i % 3) / total)
