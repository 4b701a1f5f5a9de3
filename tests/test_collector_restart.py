"""A collector process killed mid-stream and restarted: every record arrives exactly once."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
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
