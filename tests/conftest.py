"""Fixtures: a real, migrated database per backend, the real app, and real servers on 127.0.0.1.

Every test that takes ``database_url`` (directly or through ``api``/``live_server``) runs once per
selected backend: ``--db sqlite``, ``--db postgres`` or ``--db all`` (the default). Postgres gets
a scratch database for the session, dropped at the end; if Postgres cannot be reached, ``all``
skips those runs and says so, while ``--db postgres`` fails.

Tests are isolated by unique names (every model a test creates has a fresh name), so they run
against the same committed data paths as production, without a wrapping transaction. A test whose
subject acts on every model (a scheduler tick, a retention pass) takes ``own_database`` instead: a
migrated database of its own, so that what earlier tests left cannot change its outcome.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
import uvicorn
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Engine

from driftwatch import db
from driftwatch.app import create_app
from driftwatch.config import Settings
from driftwatch.runtime import NO_WORKERS, Workers
from driftwatch.testing import scratch_database

os.environ.setdefault("DO_NOT_TRACK", "1")

POSTGRES_ADMIN_URL = os.environ.get(
    "DRIFTWATCH_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
ADMIN_KEY = "test-admin-key-" + uuid.uuid4().hex


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--db",
        choices=["sqlite", "postgres", "all"],
        default="all",
        help="database backends to run the database tests on (default: all)",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        chosen = metafunc.config.getoption("--db")
        backends = ["sqlite", "postgres"] if chosen == "all" else [chosen]
        metafunc.parametrize("backend", backends, scope="session")


def _postgres_reachable() -> str | None:
    try:
        with psycopg.connect(POSTGRES_ADMIN_URL, connect_timeout=3):
            return None
    except psycopg.Error as error:
        return str(error).strip().splitlines()[0]


@pytest.fixture(scope="session")
def database_url(
    backend: str, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[str]:
    if backend == "sqlite":
        path = tmp_path_factory.mktemp("sqlite") / "driftwatch.db"
        url = f"sqlite:///{path}"
        db.upgrade(url)
        yield url
        return
    problem = _postgres_reachable()
    if problem is not None:
        message = f"Postgres not reachable at {POSTGRES_ADMIN_URL}: {problem}"
        if request.config.getoption("--db") == "postgres":
            pytest.fail(message)
        pytest.skip(message + " (set DRIFTWATCH_TEST_POSTGRES_URL)")
    name = f"driftwatch_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    url = f"{base}/{name}"
    db.upgrade(url)
    yield url
    db.get_engine(url).dispose()
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def own_database(empty_database: str) -> Iterator[str]:
    """A migrated database for one test alone (its URL), on the test's backend."""
    db.upgrade(empty_database)
    yield empty_database
    db.get_engine(empty_database).dispose()


@pytest.fixture
def empty_database(backend: str, tmp_path: Any) -> Iterator[str]:
    """A database for one test alone with no tables at all (not migrated), on its backend."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    problem = _postgres_reachable()
    if problem is not None:
        pytest.skip(f"Postgres not reachable: {problem}")
    with scratch_database(POSTGRES_ADMIN_URL, "driftwatch_empty") as url:
        yield url


@pytest.fixture(scope="session")
def engine(database_url: str) -> Engine:
    return db.get_engine(database_url)


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    # /metrics read at every scrape: tests scrape right after the change they check
    return Settings(database_url=database_url, admin_key=ADMIN_KEY,  # type: ignore[arg-type]
                    metrics_cache_seconds=0)  # fmt: skip


@pytest.fixture(scope="session")
def api(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    """The real app in process, signed in as admin."""
    with TestClient(
        create_app(settings, engine), headers={"Authorization": f"Bearer {ADMIN_KEY}"}
    ) as client:
        yield client


def unique(prefix: str = "m") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def create_model(api: TestClient, **fields: Any) -> dict[str, Any]:
    body = {"name": unique(), "task": "binary_classification", **fields}
    response = api.post("/api/v1/models", json=body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


@contextlib.contextmanager
def silenced_rule_app(
    settings: Settings, engine: Engine, folder: Any, *, models: str, when: str
) -> Iterator[TestClient]:
    """The app, signed in as admin, with one rule ``traffic`` (``when``) on the models of the
    glob ``models``, silenced: its alerts move and are recorded, and no delivery waits in the
    shared database for another test's dispatcher to send."""
    (folder / "rules.yaml").write_text(
        "channels:\n  team:\n    type: slack\n    channel: '#ml'\n"
        f"rules:\n  - name: traffic\n    model: '{models}'\n    when: {when}\n"
        "    notify: [team]\n"
    )
    custom = settings.model_copy(
        update={"rules_dir": str(folder), "slack_token": SecretStr("xoxb-unused")}
    )
    with TestClient(
        create_app(custom, engine), headers={"Authorization": f"Bearer {ADMIN_KEY}"}
    ) as client:
        until = (datetime.now(UTC) + timedelta(days=1)).isoformat()
        silence = {"model": models, "rule": "traffic", "until": until, "reason": "tests"}
        assert client.post("/api/v1/silences", json=silence).status_code == 201
        yield client


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LiveServer:
    url: str
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def start_server(
    settings: Settings, engine: Engine, port: int | None = None, workers: Workers = NO_WORKERS
) -> LiveServer:
    """The real app served by uvicorn on 127.0.0.1, with ``workers`` as ``serve`` runs them."""
    port = port or free_port()
    config = uvicorn.Config(
        create_app(settings, engine, workers=workers), host="127.0.0.1", port=port,
        log_level="warning",
    )  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("test server did not start")
        time.sleep(0.02)
    return LiveServer(f"http://127.0.0.1:{port}", server, thread)


@pytest.fixture
def live_server(settings: Settings, engine: Engine) -> Iterator[LiveServer]:
    """A real uvicorn server on 127.0.0.1 serving the real app, in this process."""
    server = start_server(settings, engine)
    yield server
    server.stop()


def wait_until(condition: Any, timeout: float = 20.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return bool(condition())


def sign_in(client: Any, key: str = ADMIN_KEY, next: str = "/", **options: Any) -> Any:
    """Signs a TestClient or httpx client in as the sign-in form does, with its CSRF token."""
    form = client.get("/login")
    found = re.search(r'name="csrf" value="([^"]+)"', form.text)
    token = found.group(1) if found else ""  # (none: the form failed, as the post will say)
    return client.post("/login", data={"key": key, "next": next, "csrf": token}, **options)


def admin_http(url: str) -> httpx.Client:
    # a run's first computation in a process prepares its baseline's nulls and calibrators:
    # seconds, more on a machine the suite's other processes load (httpx's default is 5 s)
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ADMIN_KEY}"},
                        timeout=60)  # fmt: skip
