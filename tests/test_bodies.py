"""Request bodies from hostile callers (issue 13): read only after the key is checked, bounded
in size and in the time they take to arrive, never while a database connection is held; one
key's requests in progress bounded; a baseline file bounded once decoded; one record that is not
JSON by itself rejected alone."""

from __future__ import annotations

import contextlib
import io
import socket
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine

from driftwatch import db
from driftwatch.app import create_app
from driftwatch.auth import service as keys
from driftwatch.config import Settings
from driftwatch.openapi import api_routes
from driftwatch.runtime import Workers
from tests.conftest import (
    ADMIN_KEY,
    LiveServer,
    create_model,
    sign_in,
    start_server,
    unique,
    wait_until,
)
from tests.test_runtime import _model_with_a_closed_window

FEATURES = [{"name": "age", "kind": "numerical"}, {"name": "state", "kind": "categorical"}]
T = "2026-11-20T10:00:00Z"
BODY_METHODS = ("POST", "PUT", "PATCH")


def make_key(engine: Engine, scope: keys.Scope) -> str:
    with db.session_scope(engine) as session:
        _row, plain = keys.create(session, name=unique("key"), scope=scope)
    return plain


# -- one record that is not JSON alone (items 11 and 14) ------------------------------------------


def _prediction(pid: str, age: str = "31") -> str:
    return (f'{{"prediction_id": "{pid}", "timestamp": "{T}", '
            f'"features": {{"age": {age}, "state": "CA"}}, "prediction": 0.8}}')  # fmt: skip


def _label(pid: str, label: str = "1") -> str:
    return f'{{"prediction_id": "{pid}", "timestamp": "{T}", "label": {label}}}'


def _nested(levels: int) -> str:
    return "[" * levels + "]" * levels


# (what is wrong, the value sent, a word of the error) for a value in an otherwise good record
HOSTILE = [
    ("NaN", "NaN", "NaN"),
    ("Infinity", "Infinity", "Infinity"),
    ("-Infinity", "-Infinity", "Infinity"),
    ("lone surrogate", '"\\ud800"', "surrogate"),
    ("nested past orjson's 1024 levels", _nested(1100), "1024 levels"),
    ("nested 1,000 levels (past Python's recursion limit)", _nested(1000), "expected a number"),
]


@pytest.mark.parametrize("kind", ["predictions", "ground-truth"])
def test_a_record_that_is_not_json_by_itself_is_rejected_alone(api: TestClient, kind: str) -> None:
    model = create_model(api, features=FEATURES)["name"]
    make = _prediction if kind == "predictions" else _label
    texts = [make(f"ok-{unique()}")] + [make(f"bad-{i}", value)
                                        for i, (_, value, _) in enumerate(HOSTILE)]  # fmt: skip
    texts.append(make(f"ok-{unique()}"))
    body = ('{"records": [' + ",\n".join(texts) + "]}").encode()
    response = api.post(f"/api/v1/models/{model}/{kind}", content=body,
                        headers={"Content-Type": "application/json"})  # fmt: skip
    assert response.status_code == 200, response.text[:500]
    result = response.json()
    assert result["accepted"] == 2
    rejected = result["rejected"]
    assert [r["index"] for r in rejected] == list(range(1, len(HOSTILE) + 1))
    for item, (what, _, word) in zip(rejected, HOSTILE, strict=True):
        assert item["prediction_id"] == f"bad-{item['index'] - 1}", what
        assert word in item["error"], (what, item["error"])
    kept = api.get(f"/api/v1/models/{model}/rejected").json()
    assert len(kept) == len(HOSTILE)  # kept for operators, with the text as sent


def test_a_broken_envelope_is_still_refused_whole(api: TestClient) -> None:
    model = create_model(api, features=FEATURES)["name"]
    for body in (b'{"records": [' + _prediction("a").encode() + b', {"x": "never ends}]}',
                 b'{"records": [' + _prediction("a").encode() + b"], NaN: 1}"):  # fmt: skip
        response = api.post(f"/api/v1/models/{model}/predictions", content=body,
                            headers={"Content-Type": "application/json"})  # fmt: skip
        assert response.status_code == 422, response.text
        assert response.json()["detail"].startswith("body: not valid JSON")


# -- the body limit, on every route ---------------------------------------------------------------


@pytest.fixture
def small_body_api(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    small = settings.model_copy(update={"max_body_bytes": 2000})
    with TestClient(create_app(small, engine),
                    headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as client:  # fmt: skip
        yield client


def _body_operations(app: Any) -> list[tuple[str, str, bool]]:
    """Every operation whose method carries a body, and whether it reads one."""
    found = [(method, path, route.body_field is not None
              or "requestBody" in (route.openapi_extra or {}))
             for path, route in api_routes(app.routes)
             for method in sorted(route.methods or ()) if method in BODY_METHODS]  # fmt: skip
    return [*found, ("POST", "/login", True)]  # the dashboard's forms too


def _fill(path: str, model: str) -> str:
    return (path.replace("{name}", model).replace("{baseline_id}", "1")
            .replace("{delivery_id}", "1").replace("{run_id}", "1"))  # fmt: skip


def test_every_body_is_bounded_on_every_route(small_body_api: TestClient) -> None:
    model = create_model(small_body_api, features=FEATURES)["name"]
    big = b'{"name": "' + b"x" * 5000 + b'"}'
    operations = _body_operations(small_body_api.app)
    assert ("POST", "/api/v1/models", True) in operations
    assert len(operations) >= 8
    for method, path, reads_body in operations:
        url = _fill(path, model)
        # declared by Content-Length, and sent chunked (no length: counted as it arrives, by
        # an operation that reads it)
        chunked = iter([big[:1000], big[1000:]])
        for content in (big, chunked) if reads_body else (big,):
            kind = "application/x-www-form-urlencoded" if path == "/login" else "application/json"
            response = small_body_api.request(method, url, content=content,
                                              headers={"Content-Type": kind})  # fmt: skip
            assert response.status_code == 413, (method, path, response.text[:200])
            assert "limit of 2000 bytes" in response.json()["detail"]
    form = {"name": "b"}
    files = {"file": ("b.csv", b"age,state\n" + b"1,CA\n" * 2000, "text/csv")}
    response = small_body_api.post(f"/api/v1/models/{model}/baselines", data=form, files=files)
    assert response.status_code == 413, response.text


# -- baseline files bounded once decoded ----------------------------------------------------------


def _upload(api: TestClient, model: str, name: str, data: bytes) -> httpx.Response:
    files = {"file": (name, data, "application/octet-stream")}
    return api.post(f"/api/v1/models/{model}/baselines", data={"name": "b"}, files=files)


@pytest.fixture
def bounded_files_api(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    bounded = settings.model_copy(
        update={"max_baseline_cells": 100_000, "max_baseline_decoded_bytes": 1_000_000}
    )
    with TestClient(create_app(bounded, engine),
                    headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as client:  # fmt: skip
        yield client


def test_a_parquet_bomb_is_refused_before_it_is_decoded(bounded_files_api: TestClient) -> None:
    model = create_model(bounded_files_api, features=FEATURES)["name"]
    rows = 2_000_000  # 4 million cells of zeros: a few kB compressed
    bomb = io.BytesIO()
    pq.write_table(pa.table({"age": np.zeros(rows), "state": np.zeros(rows, dtype=np.int8)}),
                   bomb, compression="zstd")  # fmt: skip
    assert len(bomb.getvalue()) < 200_000
    response = _upload(bounded_files_api, model, "bomb.parquet", bomb.getvalue())
    assert response.status_code == 413, response.text
    assert "DRIFTWATCH_MAX_BASELINE_CELLS" in response.json()["detail"]
    assert "2,000,000 rows" in response.json()["detail"]
    # few cells, but large once uncompressed (distinct text values compress well)
    wide = io.BytesIO()
    text = [f"{'CA' * 500}{i}" for i in range(5000)]
    pq.write_table(pa.table({"age": np.arange(5000.0), "state": text}), wide,
                   compression="zstd", use_dictionary=False)  # fmt: skip
    response = _upload(bounded_files_api, model, "wide.parquet", wide.getvalue())
    assert response.status_code == 413, response.text
    assert "DRIFTWATCH_MAX_BASELINE_DECODED_BYTES" in response.json()["detail"]
    small = io.BytesIO()
    pq.write_table(pa.table({"age": [30.0, 40.0], "state": ["CA", "NY"]}), small)
    assert _upload(bounded_files_api, model, "ok.parquet", small.getvalue()).status_code == 201


def test_a_csv_of_too_many_cells_is_refused(bounded_files_api: TestClient) -> None:
    model = create_model(bounded_files_api, features=FEATURES)["name"]
    csv = b"age,state\n" + b"1,CA\n" * 50_001  # 100,002 cells
    response = _upload(bounded_files_api, model, "big.csv", csv)
    assert response.status_code == 413, response.text
    assert "DRIFTWATCH_MAX_BASELINE_CELLS" in response.json()["detail"]
    fits = b"age,state\n" + b"1,CA\n" * 100
    assert _upload(bounded_files_api, model, "ok.csv", fits).status_code == 201


# -- a real server and raw sockets: what is read, and when ----------------------------------------


class RawRequest:
    """A request written to the server by hand: its head, then the body a piece at a time."""

    def __init__(self, server: LiveServer, method: str, path: str, length: int,
                 headers: dict[str, str] | None = None) -> None:  # fmt: skip
        parts = urlsplit(server.url)
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
        lines = [f"{method} {path} HTTP/1.1", f"Host: {parts.netloc}",
                 f"Content-Length: {length}", "Content-Type: application/json"]  # fmt: skip
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.sent = 0

    def send(self, data: bytes) -> bool:
        """Whether the server still took it (it may have answered and closed)."""
        try:
            self.sock.sendall(data)
        except OSError:
            return False
        self.sent += len(data)
        return True

    def answered(self, timeout: float) -> int | None:
        """The status of the answer that came within ``timeout`` s, else None."""
        self.sock.settimeout(timeout)
        received = b""
        try:
            while b"\r\n" not in received:
                chunk = self.sock.recv(4096)
                if not chunk:
                    break
                received += chunk
        except (TimeoutError, OSError):
            return None
        if not received.startswith(b"HTTP/1.1 "):
            return None
        self.head = received
        return int(received.split()[1])

    def close(self) -> None:
        self.sock.close()


@pytest.mark.slow
def test_an_unauthenticated_body_is_answered_before_it_is_read(
    live_server: LiveServer, api: TestClient, engine: Engine
) -> None:
    """50 MB declared (under the 64 MB limit, so only the key can stop it), 1 MB sent: the
    answer comes while 49 MB are still to send; before, POST /models, /silences and /runs read
    and parsed the whole body first (FastAPI reads a pydantic body before the key's check)."""
    model = create_model(api, features=FEATURES)["name"]
    read_key = make_key(engine, "read")
    declared = 50_000_000
    cases = [(path, key, status)
             for path in ("/api/v1/models", "/api/v1/silences", f"/api/v1/models/{model}/runs",
                          f"/api/v1/models/{model}/predictions",
                          f"/api/v1/models/{model}/baselines")
             for key, status in ((None, 401), ("dw_wrong", 401), (read_key, 403))]  # fmt: skip
    for path, key, status in cases:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        request = RawRequest(live_server, "POST", path, declared, headers)
        try:
            for _ in range(16):
                if not request.send(b" " * 65536):
                    break
            assert request.answered(timeout=5) == status, (path, key)
            assert request.sent <= 1_048_576
        finally:
            request.close()


@pytest.mark.slow
def test_a_dashboard_form_without_a_session_is_answered_before_it_is_read(
    live_server: LiveServer,
) -> None:
    """Without a signed session cookie, a dashboard form (silence, redeliver, sign out) is
    answered (to sign in) before its body is read, as the API is without a key. The guard
    checks the cookie first; with FastAPI 0.165 the routes' own session check also comes
    before the form is parsed, so this holds the property against either changing."""
    for path, cookie in (("/alerts/1/silence", None), ("/deliveries/1/redeliver", None),
                         ("/logout", None), ("/alerts/1/silence", "forged.value.sig")):  # fmt: skip
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if cookie:
            headers["Cookie"] = f"driftwatch_session={cookie}"
        request = RawRequest(live_server, "POST", path, 50_000_000, headers)
        try:
            for _ in range(16):
                if not request.send(b"reason=" + b"a" * 65_000 + b"&"):  # fields under 1 MB
                    break
            assert request.answered(timeout=5) == 303, path
            assert request.sent <= 1_048_576
        finally:
            request.close()


@pytest.mark.slow
def test_a_body_too_slow_to_arrive_is_408(settings: Settings, engine: Engine) -> None:
    slow = settings.model_copy(update={"body_timeout_seconds": 1.0})
    server = start_server(slow, engine)
    try:
        request = RawRequest(server, "POST", "/api/v1/models", 1000,
                             {"Authorization": f"Bearer {ADMIN_KEY}"})  # fmt: skip
        request.send(b'{"name": ')
        began = time.monotonic()
        assert request.answered(timeout=5) == 408
        assert time.monotonic() - began < 3
        assert b"DRIFTWATCH_BODY_TIMEOUT_SECONDS" in request.head + request.sock.recv(4096)
        request.close()
    finally:
        server.stop()


def _small_pool_engine(database_url: str) -> Engine:
    """An engine for requests with a small pool that gives up fast when it is empty."""
    if db.is_sqlite(database_url):
        made = db.make_engine(database_url)
        made.pool._timeout = 3  # type: ignore[attr-defined]
        return made
    return create_engine(database_url, pool_size=2, max_overflow=0, pool_timeout=3)


@pytest.mark.slow
def test_one_keys_slow_uploads_do_not_starve_the_others(
    own_database: str, settings: Settings
) -> None:
    """One ingest key opens more slow uploads than it may have at once; meanwhile another key
    ingests, a page is served and the scheduler computes a closed window. Before, each slow
    upload held the database connection its key check took (on SQLite, its write lock) while
    its body trickled in: the pool ran dry (SQLite: every writer waited) and all else failed."""
    tuned = settings.model_copy(update={
        "database_url": own_database, "key_cache_seconds": 0.0, "max_requests_per_key": 3,
        "scheduler_interval_seconds": 0.2, "window_grace_seconds": 0.0,
        "body_timeout_seconds": 60.0,
    })  # fmt: skip
    engine = _small_pool_engine(own_database)
    noisy, other = make_key(engine, "ingest"), make_key(engine, "ingest")
    server = start_server(tuned, engine, workers=Workers(monitoring=True))
    uploads: list[RawRequest] = []
    try:
        with httpx.Client(base_url=server.url, timeout=10,
                          headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as admin:  # fmt: skip
            model = _model_with_a_closed_window(admin)
            path = f"/api/v1/models/{model}/predictions"
            for _ in range(5):
                upload = RawRequest(server, "POST", path, 100_000,
                                    {"Authorization": f"Bearer {noisy}"})  # fmt: skip
                upload.send(b'{"records": [')
                uploads.append(upload)
                time.sleep(0.2)  # each one's key check has run before the next
            began = time.monotonic()
            batch = {"records": [{"prediction_id": unique(), "timestamp": T,
                                  "features": {"a": 1.0}, "prediction": 0.5}]}  # fmt: skip
            logged = httpx.post(f"{server.url}{path}", json=batch, timeout=10,
                                headers={"Authorization": f"Bearer {other}"})  # fmt: skip
            assert logged.status_code == 200, logged.text
            assert admin.get("/api/v1/models").status_code == 200
            signed = sign_in(admin)
            assert signed.status_code in (200, 303), signed.text
            with httpx.Client(base_url=server.url, cookies=signed.cookies) as browser:
                assert browser.get("/").status_code == 200
            assert time.monotonic() - began < 6

            def computed() -> bool:
                runs = admin.get(f"/api/v1/models/{model}/runs").json()
                return any(run["status"] == "done" for run in runs)

            assert wait_until(computed, timeout=20)
            refused = [u for u in uploads if u.answered(timeout=0.5) is not None]
            assert len(refused) == 2
            assert all(b" 429 " in u.head for u in refused)
            assert all(b"retry-after: 1" in u.head.lower() for u in refused)
            assert all(u.answered(timeout=0.05) is None for u in uploads if u not in refused)
    finally:
        for upload in uploads:
            upload.close()
        server.stop()
        engine.dispose()


@pytest.mark.slow
def test_the_workers_keep_connections_of_their_own(own_database: str, settings: Settings) -> None:
    """Every connection of the requests' pool taken: the scheduler still ticks and the
    dispatcher still claims (a pool of their own, DRIFTWATCH_WORKER_POOL_SIZE)."""
    tuned = settings.model_copy(update={"database_url": own_database})
    engine = _small_pool_engine(own_database)
    server = start_server(tuned, engine, workers=Workers(monitoring=True, dispatcher=True))
    held: list[Any] = []
    try:
        workers = server.server.config.app.state.workers
        with contextlib.suppress(Exception):  # take connections until the pool is empty
            while len(held) < 50:
                held.append(engine.connect())
        assert held
        scheduler = next(w for w in workers if type(w).__name__ == "Scheduler")
        dispatcher = next(w for w in workers if type(w).__name__ == "Dispatcher")
        began = time.monotonic()
        scheduler.tick()
        dispatcher.claim(1)
        assert time.monotonic() - began < 2.5
    finally:
        for connection in held:
            connection.close()
        server.stop()
        engine.dispose()


def test_no_connection_is_held_while_a_body_arrives(settings: Settings, engine: Engine) -> None:
    """In process: the body's first piece is in, the rest withheld; the requests' pool lends
    no connection meanwhile (the key is checked with a session closed at once)."""
    import asyncio

    checked_out: list[int] = []
    app = create_app(settings.model_copy(update={"key_cache_seconds": 0.0}), engine)
    key = make_key(engine, "ingest")
    model_name = "unused-" + unique()

    async def run() -> None:
        pieces: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        await pieces.put({"type": "http.request", "body": b'{"records": [', "more_body": True})

        async def receive() -> dict[str, Any]:
            message = await pieces.get()
            return message

        async def send(_message: Any) -> None:
            pass

        path = f"/api/v1/models/{model_name}/predictions"
        scope = {"type": "http", "method": "POST", "path": path,
                 "headers": [(b"authorization", f"Bearer {key}".encode()),
                             (b"content-length", b"100")],
                 "query_string": b"", "app": app, "state": {}, "http_version": "1.1",
                 "scheme": "http", "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 1),
                 "root_path": ""}  # fmt: skip
        task = asyncio.create_task(app(scope, receive, send))
        await asyncio.sleep(0.5)
        checked_out.append(engine.pool.checkedout())  # type: ignore[attr-defined]
        await pieces.put({"type": "http.request", "body": b"]}" + b" " * 85, "more_body": False})
        await asyncio.wait_for(task, 10)

    before = engine.pool.checkedout()  # type: ignore[attr-defined]
    asyncio.run(run())
    assert checked_out == [before]
