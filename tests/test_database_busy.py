"""A database that is busy or down: the API answers 503 with ``Retry-After`` (which the SDK
sends again after), never a 500, and nothing of the refused request is stored."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, func, select

from driftwatch import db
from driftwatch.app import create_app, ensure_admin_key
from driftwatch.config import Settings
from driftwatch.models import Prediction
from tests.conftest import ADMIN_KEY

HEADERS = {"Authorization": f"Bearer {ADMIN_KEY}"}
BATCH = {"records": [{"prediction_id": "p-1", "features": {"age": 31}, "prediction": 0.4}]}


def _settings(url: str) -> Settings:
    return Settings(database_url=url, admin_key=ADMIN_KEY)


def test_a_database_that_cannot_be_reached_is_a_503_to_send_again() -> None:
    url = "postgresql+psycopg://postgres@127.0.0.1:1/driftwatch?connect_timeout=2"
    api = TestClient(create_app(_settings(url), db.make_engine(url)), headers=HEADERS)
    answer = api.post("/api/v1/models/credit/predictions", json=BATCH)
    assert answer.status_code == 503, answer.text
    assert int(answer.headers["Retry-After"]) > 0
    assert answer.json()["detail"].startswith("the database is busy or cannot be reached")


@pytest.mark.slow
def test_sqlite_held_by_another_writer_past_its_busy_timeout_is_a_503(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'busy.db'}"
    db.upgrade(url)
    engine = db.make_engine(url)

    @event.listens_for(engine, "connect")
    def _short_wait(dbapi_connection: Any, _record: Any) -> None:  # 30 s in production
        dbapi_connection.execute("PRAGMA busy_timeout=300")

    settings = _settings(url)
    ensure_admin_key(engine, settings)
    with TestClient(create_app(settings, engine), headers=HEADERS) as api:
        made = api.post("/api/v1/models", json={"name": "credit", "task": "binary_classification",
                                                "features": [{"name": "age",
                                                              "kind": "numerical"}]})  # fmt: skip
        assert made.status_code == 201, made.text
        writer = sqlite3.connect(tmp_path / "busy.db", isolation_level=None)
        writer.execute("BEGIN IMMEDIATE")  # another process's long write transaction
        try:
            answer = api.post("/api/v1/models/credit/predictions", json=BATCH)
        finally:
            writer.execute("ROLLBACK")
            writer.close()
        assert answer.status_code == 503, answer.text
        assert "database is locked" in answer.json()["detail"]
        assert int(answer.headers["Retry-After"]) > 0
        with engine.connect() as connection:
            assert connection.scalar(select(func.count()).select_from(Prediction)) == 0
        again = api.post("/api/v1/models/credit/predictions", json=BATCH)  # as the SDK does
        assert again.json()["accepted"] == 1, again.text
    engine.dispose()
