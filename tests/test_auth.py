"""API keys: hashed at rest, scoped, and required on every API route."""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from driftwatch.auth import service as keys
from driftwatch.models import ApiKey
from tests.conftest import ADMIN_KEY, create_model


def make_key(engine: Engine, scope: keys.Scope) -> str:
    with Session(engine) as session:
        _row, plain = keys.create(session, name=f"test-{scope}", scope=scope)
        session.commit()
    return plain


def as_key(key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if key is not None else {"Authorization": ""}


@pytest.mark.parametrize("header", ["", "Bearer", "Bearer wrong-key", "Basic abc", "dw_x"])
def test_a_missing_or_wrong_key_is_401(api: TestClient, header: str) -> None:
    response = api.get("/api/v1/models", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    ("scope", "method", "path", "allowed"),
    [
        ("ingest", "POST", "/predictions", True),
        ("ingest", "POST", "/ground-truth", True),
        ("ingest", "GET", "", False),
        ("ingest", "GET", "/rejected", False),
        ("read", "GET", "", True),
        ("read", "GET", "/rejected", True),
        ("read", "POST", "/predictions", False),
        ("read", "PATCH", "", False),
        ("admin", "POST", "/predictions", True),
        ("admin", "GET", "/rejected", True),
        ("admin", "PATCH", "", True),
    ],
)
def test_scopes(
    api: TestClient, engine: Engine, scope: keys.Scope, method: str, path: str, allowed: bool
) -> None:
    model = create_model(api)["name"]
    key = make_key(engine, scope)
    body = {"records": []} if method == "POST" else {} if method == "PATCH" else None
    response = api.request(method, f"/api/v1/models/{model}{path}", json=body, headers=as_key(key))
    assert (response.status_code == 403) is not allowed, response.text
    assert response.status_code in (200, 403)
    if not allowed:
        assert f"scope '{scope}'" in response.json()["detail"]


def test_only_admin_creates_models(api: TestClient, engine: Engine) -> None:
    for scope in ("ingest", "read"):
        response = api.post(
            "/api/v1/models",
            json={"name": "x", "task": "regression"},
            headers=as_key(make_key(engine, scope)),
        )  # type: ignore[arg-type]
        assert response.status_code == 403


def test_keys_are_stored_only_as_hashes(engine: Engine) -> None:
    plain = make_key(engine, "read")
    with Session(engine) as session:
        row = session.scalars(select(ApiKey).where(ApiKey.key_hash == keys.hash_key(plain))).one()
        assert plain not in (row.key_hash, row.prefix, row.name)
        assert len(row.key_hash) == 64
        assert ADMIN_KEY not in {k.key_hash for k in session.scalars(select(ApiKey))}


def test_a_revoked_key_stops_working(api: TestClient, engine: Engine) -> None:
    plain = make_key(engine, "read")
    api.app.state.key_verifier.cache_seconds = 0  # type: ignore[attr-defined]
    try:
        assert api.get("/api/v1/models", headers=as_key(plain)).status_code == 200
        with Session(engine) as session:
            row = session.scalars(
                select(ApiKey).where(ApiKey.key_hash == keys.hash_key(plain))
            ).one()
            row.revoked_at = row.created_at
            session.commit()
        assert api.get("/api/v1/models", headers=as_key(plain)).status_code == 401
    finally:
        api.app.state.key_verifier.cache_seconds = 5.0  # type: ignore[attr-defined]


def test_cli_creates_a_key_that_works(api: TestClient, database_url: str) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "driftwatch.cli",
            "keys",
            "create",
            "--name",
            "ci",
            "--scope",
            "read",
        ],
        env={"DRIFTWATCH_DATABASE_URL": database_url, "PATH": ""},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    plain = done.stdout.strip()
    assert plain.startswith("dw_")
    assert "\n" not in plain
    assert "shown only this once" in done.stderr
    assert api.get("/api/v1/models", headers=as_key(plain)).status_code == 200


def test_the_admin_key_from_the_environment_is_kept_at_start(api: TestClient) -> None:
    assert api.get("/api/v1/models", headers=as_key(ADMIN_KEY)).status_code == 200


@pytest.mark.slow
def test_keys_are_listed_and_revoked_from_the_command_line(
    api: TestClient, database_url: str, settings: Any
) -> None:
    import os

    env = {**os.environ, "DRIFTWATCH_DATABASE_URL": database_url}
    created = subprocess.run(
        [sys.executable, "-m", "driftwatch.cli", "keys", "create", "--name", "to-revoke",
         "--scope", "read"], env=env, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    assert api.get("/api/v1/models", headers=as_key(created)).status_code == 200
    listed = subprocess.run([sys.executable, "-m", "driftwatch.cli", "keys", "list"], env=env,
                            capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert "to-revoke" in listed
    assert created not in listed  # never shown again
    revoked = subprocess.run(
        [sys.executable, "-m", "driftwatch.cli", "keys", "revoke", "to-revoke"], env=env,
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert revoked.returncode == 0, revoked.stderr
    time.sleep(settings.key_cache_seconds + 0.5)
    assert api.get("/api/v1/models", headers=as_key(created)).status_code == 401
    again = subprocess.run(
        [sys.executable, "-m", "driftwatch.cli", "keys", "revoke", "to-revoke"], env=env,
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert again.returncode == 1
    assert "no active key" in again.stderr
