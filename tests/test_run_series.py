"""A window is one point of its model's series, whichever baselines computed it; and alert
rules read a span only once it has closed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from driftwatch.config import Settings
from driftwatch.core.time import window_start
from driftwatch.dashboard import repository as pages
from driftwatch.models import MonitoredModel, RunMetric
from tests import factories
from tests.conftest import silenced_rule_app

HOUR = timedelta(hours=1)


@pytest.fixture
def rules_api(settings: Settings, engine: Engine, tmp_path: Path) -> Iterator[TestClient]:
    """The app with one rule that breaches on any window holding a prediction."""
    with silenced_rule_app(settings, engine, tmp_path, models="ser-*", when="rows > 0") as client:
        yield client


def _model(api: TestClient) -> factories.Model:
    name = f"ser-{datetime.now(UTC).timestamp():.6f}"
    return factories.model(api, name=name)


def test_a_span_that_ends_in_the_future_is_refused_and_moves_no_alert(
    rules_api: TestClient,
) -> None:
    model = _model(rules_api)
    model.baseline(factories.baseline_records(50))
    closed = window_start(datetime.now(UTC), HOUR) - HOUR
    model.log(factories.predictions(30, start=closed, step=timedelta(minutes=1)))
    # the open window, or a custom range ending two days from now: refused, saying why
    for end in (closed + 2 * HOUR, closed + timedelta(days=2)):
        refused = model.run(closed + HOUR if end == closed + 2 * HOUR else closed, end,
                            status=400)  # fmt: skip
        assert "is in the future" in refused["detail"]
    assert rules_api.get("/api/v1/alerts", params={"model": model.name}).json() == []
    assert rules_api.get(f"{model.path}/runs").json() == []
    # the closed window is evaluated as usual: it fires
    window = model.run(closed, closed + HOUR)
    alerts = rules_api.get("/api/v1/alerts", params={"model": model.name}).json()
    assert [(a["state"], a["run_id"]) for a in alerts] == [("firing", window["id"])]


def test_a_window_computed_against_two_baselines_counts_once(
    api: TestClient, engine: Engine
) -> None:
    model = factories.model(api)
    first = model.baseline(factories.baseline_records(40), name="first")
    model.baseline(factories.baseline_records(60), name="second")  # now the active one
    start = datetime(2026, 11, 24, 10, tzinfo=UTC)
    model.log(factories.predictions(20, start=start))
    model.run(start, start + HOUR)
    again = api.post(f"{model.path}/runs", json={"start": start.isoformat(),
                                                  "end": (start + HOUR).isoformat(),
                                                  "baseline": first["id"]})  # fmt: skip
    assert again.status_code == 200, again.text
    with Session(engine) as session:
        model_id = session.scalars(
            select(MonitoredModel.id).where(MonitoredModel.name == model.name)
        ).one()
        points = session.scalar(select(func.count()).where(
            RunMetric.model_id == model_id, RunMetric.metric == "rows"))  # fmt: skip
        for seconds in (3600, 86400):  # per window, and from the daily sums
            buckets = pages.bucketed(session, model_id=model_id, metrics=["rows"],
                                     start=start - timedelta(days=1), end=start + timedelta(days=1),
                                     bucket_seconds=seconds)  # fmt: skip
            assert sum(b.total or 0 for b in buckets) == 20
    assert points == 1  # the window's last computation is its point of the series


def test_a_body_refused_by_our_own_check_reads_in_our_words(api: TestClient) -> None:
    model = factories.model(api)
    start = datetime(2026, 11, 24, 10, tzinfo=UTC)
    answer = model.run(start, start - HOUR, status=422)
    assert answer["detail"] == "body: 'end' must be after 'start'"
    assert [e["msg"] for e in answer["errors"]] == ["'end' must be after 'start'"]
