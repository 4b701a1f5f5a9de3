"""Unauthenticated health, readiness and metrics endpoints."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from driftwatch import db
from driftwatch.app import create_app
from driftwatch.config import Settings
from tests.conftest import create_model, free_port


def test_health_and_readiness(api: TestClient) -> None:
    assert api.get("/healthz", headers={"Authorization": ""}).json() == {"status": "ok"}
    assert api.get("/readyz", headers={"Authorization": ""}).json() == {"status": "ok"}


def test_not_ready_when_the_database_is_unreachable() -> None:
    url = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/none?connect_timeout=2"
    with TestClient(create_app(Settings(database_url=url), db.make_engine(url))) as client:
        assert client.get("/healthz").status_code == 200
        response = client.get("/readyz")
        assert response.status_code == 503
        assert response.json()["status"] == "unavailable"


def test_metrics_count_ingested_records(api: TestClient) -> None:
    model = create_model(api, features=[{"name": "x", "kind": "numerical"}])["name"]
    api.post(
        f"/api/v1/models/{model}/predictions",
        json={
            "records": [
                {"prediction_id": "a", "features": {"x": 1}, "prediction": 1},
                {"prediction_id": "b", "features": {"x": "bad"}, "prediction": 1},
            ]
        },
    )
    text = api.get("/metrics", headers={"Authorization": ""}).text
    assert f'driftwatch_ingested_records_total{{kind="prediction",model="{model}"}} 1.0' in text
    assert f'driftwatch_rejected_records_total{{kind="prediction",model="{model}"}} 1.0' in text


def test_durations_in_settings_read_like_every_other_duration(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from datetime import timedelta

    for text, expected in (("30d", 30), ("P7D", 7), ("86400", 1)):
        monkeypatch.setenv("DRIFTWATCH_LABEL_HORIZON", text)
        assert Settings().label_horizon == timedelta(days=expected)
