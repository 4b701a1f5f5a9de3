"""Faults that really happen: a ``serve`` process killed in the middle of computing a window,
Postgres gone (its connections cut, new ones refused) in the middle of heavy ingestion."""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import numpy as np
import psycopg
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from driftwatch import db
from driftwatch.models import Run
from driftwatch.testing import start_serve
from tests.conftest import ADMIN_KEY, POSTGRES_ADMIN_URL, free_port, wait_until

ROWS, FEATURES = 300_000, 12
DAY = datetime(2026, 3, 2, tzinfo=UTC)


@pytest.fixture
def scratch_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """A Postgres database of this test's own: the serve processes' schedulers see only its
    model. (Replicas sharing one database is a Postgres deployment; on SQLite the test's
    reader does not get to see the claimed run before the single writer finishes it.)"""
    if backend == "sqlite":
        pytest.skip("several serve processes on one database: a Postgres deployment")
    name = f"driftwatch_faults_{uuid.uuid4().hex[:8]}"
    try:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error as error:
        pytest.skip(f"Postgres not reachable: {error}")
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    yield f"{base}/{name}"
    db.get_engine(f"{base}/{name}").dispose()
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _columns(rng: np.random.Generator, rows: int, shift: float) -> dict[str, object]:
    start = DAY + timedelta(hours=1)
    return {
        "prediction_id": [uuid.uuid4().hex for _ in range(rows)],
        "timestamp": [(start + timedelta(milliseconds=10 * i)).isoformat() for i in range(rows)],
        "prediction": rng.random(rows).round(4).tolist(),
        "features": {f"f{j}": {"f8": base64.b64encode(
            rng.normal(shift, 1, rows).tobytes()).decode()} for j in range(FEATURES)},
    }  # fmt: skip


@pytest.mark.slow
def test_a_run_whose_process_dies_is_finished_by_another_once(
    scratch_url: str, tmp_path: Path
) -> None:
    env = {
        "DRIFTWATCH_ADMIN_KEY": ADMIN_KEY,
        "DRIFTWATCH_RUN_LEASE_SECONDS": "3",
        "DRIFTWATCH_SCHEDULER_INTERVAL_SECONDS": "0.5",
        "DRIFTWATCH_WINDOW_GRACE_SECONDS": "0",
    }
    log = tmp_path / "serve.log"
    port = free_port()
    # the first process serves only, while the model and its data are set up
    setup = start_serve(scratch_url, port, log, env=env, args=("--no-scheduler",))
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120,
                          headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as http:  # fmt: skip
            features = [{"name": f"f{j}", "kind": "numerical"} for j in range(FEATURES)]
            http.post("/api/v1/models", json={"name": "heavy", "task": "regression",
                                              "window": "1d", "features": features})  # fmt: skip
            rng = np.random.default_rng(0)
            baseline = [
                {"features": {f"f{j}": float(v) for j, v in enumerate(row)}, "prediction": 0.5}
                for row in rng.normal(0, 1, (2000, FEATURES))
            ]
            http.post("/api/v1/models/heavy/baselines",
                      json={"name": "b", "records": baseline}).raise_for_status()  # fmt: skip
            for _ in range(ROWS // 50_000):
                answer = http.post("/api/v1/models/heavy/predictions",
                                   json={"columns": _columns(rng, 50_000, 0.3)})  # fmt: skip
                assert answer.json()["accepted"] == 50_000, answer.text
    finally:
        setup.send_signal(signal.SIGTERM)
        setup.wait(timeout=30)
    engine = db.get_engine(scratch_url)

    def runs() -> list[Run]:
        with Session(engine) as session:
            return list(session.scalars(select(Run).where(Run.window_start == DAY)))

    assert runs() == []  # (and the pooled connection is open before the serve process writes)
    # a process that starts computing the window at once, killed as soon as it has claimed it
    doomed = subprocess.Popen(
        [sys.executable, "-m", "driftwatch.cli", "serve", "--port", str(free_port()),
         "--no-dispatcher"],
        env={**os.environ, "DRIFTWATCH_DATABASE_URL": scratch_url, **env},
        stdout=log.open("ab"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        assert wait_until(lambda: any(r.status == "running" for r in runs()), timeout=60,
                          interval=0.001), log.read_text()[-3000:]  # fmt: skip
        doomed.send_signal(signal.SIGKILL)  # while it computes
        doomed.wait(timeout=30)
    finally:
        if doomed.poll() is None:
            doomed.kill()
    [claimed] = runs()
    assert claimed.status == "running"
    assert claimed.computations == 0  # it never committed a result
    survivor = start_serve(scratch_url, free_port(), log, env={**env, "HOSTNAME": "survivor"},
                           args=("--no-dispatcher",))  # fmt: skip
    try:
        assert wait_until(lambda: runs()[0].status == "done", timeout=90), log.read_text()[-3000:]
        time.sleep(1.5)  # further ticks compute nothing again
    finally:
        survivor.send_signal(signal.SIGTERM)
        survivor.wait(timeout=30)
    [finished] = runs()
    assert finished.rows == ROWS
    assert finished.computations == 1
    assert finished.attempts == 2  # the dead process's attempt and the survivor's
    assert finished.owner != claimed.owner
    assert finished.result is not None
    assert finished.result.dataset.drifted_share == 1.0


class Outage:
    """A TCP proxy in front of Postgres that a test takes down and brings back: while down,
    the connections through it are cut and new ones refused, which is what a Postgres restart
    looks like to its clients, and no other test's connections are touched (the suite runs in
    several processes, and a real restart would cut theirs too)."""

    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self.port = free_port()
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self.up()

    def up(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # taken down
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                self._open += [client, server]
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)

    def down(self) -> None:
        """Refuse new connections and cut the open ones."""
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
            self._listener.close()
            self._listener = None
        with self._lock:
            cut, self._open = self._open, []
        for end in cut:
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
            end.close()


@pytest.mark.slow
def test_postgres_gone_under_ingestion_loses_and_doubles_nothing(
    scratch_url: str, tmp_path: Path
) -> None:
    import driftwatch

    log = tmp_path / "serve.log"
    port = free_port()
    env = {"DRIFTWATCH_ADMIN_KEY": ADMIN_KEY}
    where = urlsplit(POSTGRES_ADMIN_URL)
    outage = Outage(where.hostname or "127.0.0.1", where.port or 5432)
    through = scratch_url.replace(f"@{where.netloc.split('@')[-1]}/",
                                  f"@127.0.0.1:{outage.port}/")  # fmt: skip
    assert through != scratch_url
    serve = start_serve(through, port, log, env=env, args=("--no-scheduler",))
    total, batch = 60_000, 2_000
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}",
                          headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as http:  # fmt: skip
            http.post("/api/v1/models", json={
                "name": "steady", "task": "regression", "window": "1h",
                "features": [{"name": f"f{j}", "kind": "numerical"} for j in range(5)],
            }).raise_for_status()  # fmt: skip
        client = driftwatch.Client(f"http://127.0.0.1:{port}", api_key=ADMIN_KEY,
                                   spool_dir=tmp_path / "spool", max_backoff=1.0)  # fmt: skip

        def log_steadily() -> None:
            rng = np.random.default_rng(1)
            for start in range(0, total, batch):
                for i in range(start, start + batch):
                    client.log_prediction("steady", prediction_id=f"s-{i}", prediction=0.5,
                                          features={f"f{j}": float(v) for j, v in
                                                    enumerate(rng.normal(size=5))})  # fmt: skip
                time.sleep(0.2)

        logging_thread = threading.Thread(target=log_steadily)
        logging_thread.start()
        time.sleep(1.5)
        outage.down()  # while batches are in flight
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30,
                          headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as http:  # fmt: skip
            probe = {"prediction_id": "probe", "features": {"f0": 1.0}, "prediction": 0.5}
            refused = http.post("/api/v1/models/steady/predictions", json={"records": [probe]})
        time.sleep(2.0)  # a fast restart's outage
        outage.up()
        assert refused.status_code == 503, refused.text  # the collector saw Postgres go
        logging_thread.join()
        assert client.flush(timeout=120), "the SDK could not deliver everything"
        client.close()
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(timeout=30)
        outage.down()
    plain = scratch_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain) as connection:
        stored, distinct = connection.execute(
            "SELECT count(*), count(DISTINCT prediction_id) FROM predictions"
        ).fetchone()  # type: ignore[misc]
    assert (stored, distinct) == (total, total)
