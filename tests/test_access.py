"""Access: every API route, enumerated from the OpenAPI document, refuses a request without a
key (401) and with a key of too small a scope (403); ingestion is rate limited per key."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import Engine

import driftwatch
from driftwatch.app import create_app
from driftwatch.auth.ratelimit import RateLimiter
from driftwatch.config import Settings
from tests.conftest import ADMIN_KEY, create_model, start_server, wait_until
from tests.test_auth import as_key, make_key

WEAKER = {"admin": ("ingest", "read"), "read": ("ingest",), "ingest": ("read",)}


def _api_routes(routes: list[Any]) -> Iterator[APIRoute]:
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        included = getattr(route, "original_router", None)  # FastAPI's lazily included routers
        if included is not None:
            yield from _api_routes(included.routes)


def _required_scope(app: Any, path: str, method: str) -> str | None:
    for route in _api_routes(app.routes):
        if route.path == path and method in route.methods:
            stack = list(route.dependant.dependencies)
            while stack:
                dependency = stack.pop()
                scope = getattr(dependency.call, "required_scope", None)
                if scope is not None:
                    return str(scope)
                stack.extend(dependency.dependencies)
    return None


def _operations(api: TestClient) -> Iterator[tuple[str, str]]:
    for path, methods in api.get("/openapi.json").json()["paths"].items():
        for method in methods:
            yield path, method.upper()


def test_every_api_route_needs_a_key_of_its_scope(api: TestClient, engine: Engine) -> None:
    model = create_model(api)["name"]
    keys = {scope: make_key(engine, scope) for scope in ("ingest", "read")}
    checked = 0
    for path, method in _operations(api):
        if not path.startswith("/api/"):
            continue  # health and metrics are open on purpose
        scope = _required_scope(api.app, path, method)
        assert scope is not None, f"{method} {path} asks for no API key"
        url = re.sub(r"\{name\}", model, path)
        url = re.sub(r"\{[a-z_]+\}", "1", url)
        body = {} if method in ("POST", "PUT", "PATCH") else None
        response = api.request(method, url, json=body, headers=as_key(None))
        assert response.status_code == 401, f"{method} {path} without a key: {response.status_code}"
        for weaker in WEAKER[scope]:
            response = api.request(method, url, json=body, headers=as_key(keys[weaker]))
            assert response.status_code == 403, (
                f"{method} {path} with a {weaker} key: {response.status_code}"
            )
        checked += 1
    assert checked >= 20


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        # (seconds after the start, records) with 100 records a second and a 2-second burst
        ([(0, 150), (0, 50)], [None, None]),
        ([(0, 150), (0, 100)], [None, 1]),
        ([(0, 200), (0, 1)], [None, 1]),
        ([(0, 200), (1.0, 100)], [None, None]),
        ([(0, 200), (0.5, 100)], [None, 1]),
        ([(0, 1000)], [None]),  # a batch over the burst goes when the bucket is full
        ([(0, 1000), (0, 1000)], [None, 2]),
    ],
)
def test_the_rate_limiter_is_a_token_bucket(
    steps: list[tuple[float, int]], expected: list[int | None]
) -> None:
    limiter = RateLimiter(100.0, burst_seconds=2.0)
    assert [limiter.take(7, records, now=1000.0 + at) for at, records in steps] == expected
    assert RateLimiter(0).take(7, 10**9) is None


def test_sign_in_failures_are_counted_per_address_and_idle_addresses_are_forgotten(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    limiter = RateLimiter(5 / 60, burst_seconds=60)  # as the app makes it: 5 a minute
    for _ in range(5):
        assert limiter.wait("10.0.0.1", now=0.0) is None
        limiter.take("10.0.0.1", 1, now=0.0)
    assert limiter.wait("10.0.0.1", now=0.0) == 12  # one more in 12 s
    assert limiter.wait("10.0.0.2", now=0.0) is None  # another address has its own
    assert limiter.wait("10.0.0.1", now=12.0) is None
    # many addresses came by: past the bound, the buckets that filled up again are dropped
    monkeypatch.setattr("driftwatch.auth.ratelimit.MAX_BUCKETS", 100)
    for i in range(150):
        limiter.take(f"addr-{i}", 1, now=100.0)
    limiter.take("late", 1, now=200.0)  # every earlier bucket is full by then
    assert len(limiter._buckets) <= 2


def _records(prefix: str, count: int) -> list[dict[str, Any]]:
    return [{"prediction_id": f"{prefix}-{i}", "features": {"x": float(i)}, "prediction": 0.5}
            for i in range(count)]  # fmt: skip


def test_ingestion_over_the_rate_is_429_with_retry_after_and_stores_nothing(
    settings: Settings, engine: Engine
) -> None:
    limited = settings.model_copy(update={"ingest_rate_limit": 100.0})
    with TestClient(create_app(limited, engine), headers=as_key(ADMIN_KEY)) as api:
        model = create_model(api, features=[{"name": "x", "kind": "numerical"}])["name"]
        key = make_key(engine, "ingest")
        path = f"/api/v1/models/{model}/predictions"
        first = api.post(path, json={"records": _records("a", 150)}, headers=as_key(key))
        assert first.status_code == 200
        refused = api.post(path, json={"records": _records("b", 100)}, headers=as_key(key))
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) >= 1
        assert "100 records a second" in refused.json()["detail"]
        other = make_key(engine, "ingest")  # the limit is per key
        assert api.post(path, json={"records": _records("c", 100)},
                        headers=as_key(other)).status_code == 200  # fmt: skip
        counts = api.get(f"/api/v1/models/{model}").json()["counts"]
        assert counts["predictions"] == 250


@pytest.mark.slow
def test_the_sdk_waits_out_the_rate_limit_and_loses_nothing(
    settings: Settings, engine: Engine, tmp_path: Any
) -> None:
    limited = settings.model_copy(update={"ingest_rate_limit": 400.0})
    server = start_server(limited, engine)
    try:
        with TestClient(create_app(limited, engine), headers=as_key(ADMIN_KEY)) as api:
            model = create_model(api, features=[{"name": "x", "kind": "numerical"}])["name"]
            began = time.monotonic()
            with driftwatch.Client(server.url, api_key=make_key(engine, "ingest"),
                                   spool_dir=tmp_path, batch_size=500) as client:  # fmt: skip
                for i in range(2000):
                    client.log_prediction(model, features={"x": float(i)}, prediction=0.5,
                                          prediction_id=f"s-{i}")  # fmt: skip
                assert client.flush(timeout=60)
            assert time.monotonic() - began >= 2.0  # 2000 records at 400 a second, 800 burst
            assert wait_until(lambda: api.get(f"/api/v1/models/{model}").json()["counts"]
                              ["predictions"] == 2000)  # fmt: skip
    finally:
        server.stop()
