"""Spans (CONTRACT section 8): a run over several whole windows is its buckets' summaries
merged, tested once; the dashboard's long ranges draw the spans the scheduler keeps."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from driftwatch.app import create_app
from driftwatch.config import Settings
from driftwatch.core.time import day_start
from driftwatch.dashboard import service as dashboard
from driftwatch.models import MonitoredModel, Run, RunMetric
from driftwatch.monitoring import service as monitoring
from driftwatch.monitoring import spans
from driftwatch.stats import summaries
from tests.conftest import ADMIN_KEY, create_model, silenced_rule_app
from tests.test_scheduler import Own, own, scheduler

__all__ = ["own"]  # the fixture, for the tests below

HOUR = timedelta(hours=1)
FEATURES = [
    {"name": "age", "kind": "numerical"},  # 26 whole numbers: counted exactly
    {"name": "income", "kind": "numerical"},  # heavy tail: fine bins, bounded
    {"name": "state", "kind": "categorical"},
]
PER_HOUR = 60


def _records(rng: np.random.Generator, count: int, start: datetime | None, shift: float,
             prefix: str = "p") -> list[dict[str, Any]]:  # fmt: skip
    ages = rng.integers(20, 46, count)
    incomes = rng.lognormal(10 + shift, 1, count)
    incomes[::9] = np.nan
    out = []
    for i in range(count):
        record: dict[str, Any] = {
            "features": {
                "age": float(ages[i]),
                "income": None if np.isnan(incomes[i]) else float(incomes[i]),
                "state": ["CA", "NY", "TX", "WA"][int(rng.integers(0, 4 if shift else 3))],
            },
            "prediction": round(float(rng.random()), 3),
        }
        if start is not None:
            record["prediction_id"] = f"{prefix}{i}"
            record["timestamp"] = (start + i * (HOUR / PER_HOUR)).isoformat()
        out.append(record)
    return out


def _hourly_model(api: TestClient, day: datetime, hours: int = 24, **fields: Any) -> str:
    """An hourly model with a baseline and PER_HOUR predictions in each of ``hours`` hours
    from ``day`` (sent in one batch: its summaries are kept per hour bucket)."""
    name: str = create_model(api, features=FEATURES, window="1h", **fields)["name"]
    rng = np.random.default_rng(11)
    made = api.post(
        f"/api/v1/models/{name}/baselines",
        json={"name": "training", "records": _records(rng, 800, None, 0.0)},
    )
    assert made.status_code == 201, made.text
    batch = _records(rng, hours * PER_HOUR, day, 0.3)
    sent = api.post(f"/api/v1/models/{name}/predictions",
                    content=orjson.dumps({"records": batch}))  # fmt: skip
    assert sent.status_code == 200, sent.text
    return name


def _yesterday() -> datetime:
    return day_start(datetime.now(UTC)) - timedelta(days=1)


@pytest.mark.parametrize("verdict", ["evidently", "calibrated"])
def test_a_day_span_is_its_hours_merged_within_max_error_of_the_rows(
    api: TestClient, verdict: str
) -> None:
    day = _yesterday()
    name = _hourly_model(api, day, drift={"verdict": verdict})
    span = {"start": day.isoformat(), "end": (day + timedelta(days=1)).isoformat()}
    merged = api.post(f"/api/v1/models/{name}/runs", json=span)
    assert merged.status_code == 200, merged.text
    merged_run = merged.json()
    assert (merged_run["kind"], merged_run["source"], merged_run["rows"]) == (
        "span", "summaries", 24 * PER_HOUR)  # fmt: skip
    assert merged_run["span"] == {
        "start": span["start"].replace("+00:00", "Z"), "end": span["end"].replace("+00:00", "Z"),
        "window_seconds": 3600, "windows": 24, "windows_with_data": 24, "buckets": 24,
    }  # fmt: skip
    exact = api.post(f"/api/v1/models/{name}/runs", json={**span, "exact": True}).json()
    assert (exact["id"], exact["kind"], exact["source"]) == (merged_run["id"], "span", "rows")
    assert exact["span"]["buckets"] is None  # read from rows
    assert set(merged_run["max_error"]) == {"age", "income", "state"}
    for m, e in zip(merged_run["features"], exact["features"], strict=True):
        assert m["stattest"] == e["stattest"]
        assert abs(m["score"] - e["score"]) <= m["max_error"] + 1e-12, (m, e)
        assert m["missing_share"] == e["missing_share"]
    # counted exactly (whole ages, categories): the very test of the rows, verdicts included
    by_name = {f["name"]: f for f in merged_run["features"]}
    for exact_entry in exact["features"]:
        if exact_entry["name"] in ("age", "state"):
            assert by_name[exact_entry["name"]] == {**exact_entry, "max_error": 0.0}
    assert merged_run["dataset"]["drifted_share"] is not None
    assert merged_run["quality"]["new_categories"] == exact["quality"]["new_categories"]
    prediction = merged_run["prediction"]
    assert abs(prediction["score"] - exact["prediction"]["score"]) <= prediction["max_error"]
    listed = api.get(f"/api/v1/models/{name}/runs", params={"kind": "span"}).json()
    assert [r["id"] for r in listed] == [merged_run["id"]]


def test_a_span_costs_one_merge_per_column_and_reads_no_rows(
    api: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    day = _yesterday()
    name = _hourly_model(api, day)
    merges: list[int] = []
    original = summaries.merge

    def counting(parts: Any) -> Any:
        parts = list(parts)
        merges.append(len(parts))
        return original(parts)

    def no_rows(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a span from summaries read raw rows")

    monkeypatch.setattr(summaries, "merge", counting)
    monkeypatch.setattr(monitoring, "read_window", no_rows)
    week = {"start": day.isoformat(), "end": (day + timedelta(days=1)).isoformat()}
    run = api.post(f"/api/v1/models/{name}/runs", json=week).json()
    assert run["source"] == "summaries"
    # one merge of the 24 hours' summaries per column (3 features, the prediction's score),
    # whatever the span's length: no window is computed on the way
    assert merges == [24] * 4


def test_a_range_off_the_bucket_bounds_reads_its_rows(settings: Settings, engine: Engine) -> None:
    # above a small limit a window is computed from summaries; a range cutting buckets is not
    # (its buckets would hold other rows)
    custom = settings.model_copy(update={"exact_max_rows": 50})
    with TestClient(create_app(custom, engine),
                    headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as api:  # fmt: skip
        day = _yesterday()
        name = _hourly_model(api, day, hours=6)
        half = {"start": (day + HOUR / 2).isoformat(), "end": (day + 3.5 * HOUR).isoformat()}
        run = api.post(f"/api/v1/models/{name}/runs", json=half).json()
        assert (run["kind"], run["source"], run["rows"]) == ("custom", "rows", 3 * PER_HOUR)
        assert run["span"] is None
        window = {"start": (day + HOUR).isoformat(), "end": (day + 2 * HOUR).isoformat()}
        one = api.post(f"/api/v1/models/{name}/runs", json=window).json()
        assert (one["kind"], one["source"], one["span"]) == ("window", "summaries", None)


def test_span_for_range_gives_a_readable_number_of_points() -> None:
    hourly = 3600
    assert spans.span_for_range(hourly, timedelta(days=7)) is None  # 168 windows, each shown
    assert spans.span_for_range(hourly, timedelta(days=30)) == spans.DAY
    assert spans.span_for_range(hourly, timedelta(days=90)) == spans.DAY
    assert spans.span_for_range(hourly, timedelta(days=365)) == spans.WEEK
    assert spans.span_for_range(86400, timedelta(days=365)) is None  # daily: 365 windows
    assert spans.lengths(hourly) == [spans.DAY, spans.WEEK]
    assert spans.lengths(86400) == []
    assert spans.is_span(_yesterday(), _yesterday() + 2 * HOUR, HOUR)
    assert not spans.is_span(_yesterday(), _yesterday() + HOUR, HOUR)
    assert not spans.is_span(_yesterday() + HOUR / 2, _yesterday() + 3 * HOUR, HOUR)


# -- the scheduler's spans and the dashboard's long ranges -------------------------------------


@pytest.fixture
def hourly(own: Own) -> tuple[Own, str, datetime]:
    """Two closed days of an hourly model, every window and span computed by the scheduler."""
    first = _yesterday() - timedelta(days=1)
    name = _hourly_model(own.api, first, hours=48)
    ticker = scheduler(own.settings, own.engine)
    ticker.plan(_model_id(own.engine, name), datetime.now(UTC))
    ticker.work(deadline=time.monotonic() + 120)
    return own, name, first


def _model_id(engine: Engine, name: str) -> int:
    with Session(engine) as session:
        return int(session.scalars(select(MonitoredModel.id)
                                   .where(MonitoredModel.name == name)).one())  # fmt: skip


def _spans(engine: Engine, name: str) -> list[Run]:
    with Session(engine) as session:
        return list(session.scalars(
            select(Run).where(Run.model_id == _model_id(engine, name), Run.kind == "span")
            .order_by(Run.window_start, Run.window_end)
        ))  # fmt: skip


def _page(engine: Engine, name: str, label: str) -> dict[str, Any]:
    with Session(engine) as session:
        model = session.get(MonitoredModel, _model_id(engine, name))
        assert model is not None
        span = dashboard.time_range(label, None, None, datetime.now(UTC),
                                    window_seconds=model.window_seconds, newest=None)  # fmt: skip
        return dashboard.model_page(session, model=model, span=span)


def test_the_scheduler_keeps_day_and_week_spans_apart_from_the_windows(
    hourly: tuple[Own, str, datetime],
) -> None:
    mine, name, first = hourly
    kept = _spans(mine.engine, name)
    days = [(r.window_start, r.window_end) for r in kept if r.window_end - r.window_start
            == timedelta(days=1)]  # fmt: skip
    assert days == [(first, first + timedelta(days=1)),
                    (first + timedelta(days=1), first + timedelta(days=2))]  # fmt: skip
    assert all(r.status == "done" and r.result is not None for r in kept)
    assert all(r.result is not None and r.result.source == "summaries" for r in kept)
    weeks = [r for r in kept if r.window_end - r.window_start == timedelta(days=7)]
    # the week holding the two days, once it has closed (the current week has not)
    assert all(w.window_end <= datetime.now(UTC) for w in weeks)
    with Session(mine.engine) as session:
        counted = session.scalars(select(RunMetric.run_id).where(
            RunMetric.run_id.in_([r.id for r in kept]))).all()  # fmt: skip
    assert counted == []  # spans have no place in the window series or the daily sums
    # a second pass queues nothing again
    ticker = scheduler(mine.settings, mine.engine)
    ticker.plan(_model_id(mine.engine, name), datetime.now(UTC))
    assert [r.computations for r in _spans(mine.engine, name)] == [1] * len(kept)
    seven = _page(mine.engine, name, "7d")
    assert seven["point"]["kind"] == "window"
    assert len(seven["heatmap"]["times"]) == 48


def test_long_ranges_draw_spans_that_follow_late_labels(
    hourly: tuple[Own, str, datetime],
) -> None:
    mine, name, first = hourly
    page = _page(mine.engine, name, "30d")
    assert page["point"] == {"kind": "span", "seconds": 86400, "windows": 24, "name": "day"}
    heat = page["heatmap"]
    assert heat["mode"] == "windows"
    assert [datetime.fromisoformat(t) for t in heat["times"]] == [first, first + timedelta(days=1)]
    kept = {r.window_start: r for r in _spans(mine.engine, name)
            if r.window_end - r.window_start == timedelta(days=1)}  # fmt: skip
    # each cell is its span's own test: the score its run stored
    for cell in heat["cells"]:
        run = kept[datetime.fromisoformat(heat["times"][cell[0]])]
        assert run.result is not None
        assert cell[3] == run.result.features[cell[1]].score
        assert cell[9] == run.result.features[cell[1]].max_error  # the tooltip's bound
    drifted = page["drifted_share"]["mean"]
    assert [v for _, v in drifted] == [kept[t].result.dataset.drifted_share for t in sorted(kept)]
    assert sum(v for _, v in page["rows"]) == 48 * PER_HOUR
    assert page["accuracy"] == {}
    # labels arrive for the first day's first hour: its windows and its span are computed again
    labels = [{"prediction_id": f"p{i}", "label": i % 2} for i in range(PER_HOUR)]
    sent = mine.api.post(f"/api/v1/models/{name}/ground-truth", json={"records": labels})
    assert sent.status_code == 200, sent.text
    ticker = scheduler(mine.settings, mine.engine)
    ticker.plan(_model_id(mine.engine, name), datetime.now(UTC))
    ticker.work(deadline=time.monotonic() + 60)
    day_span = next(r for r in _spans(mine.engine, name) if r.window_start == first
                    and r.window_end == first + timedelta(days=1))  # fmt: skip
    assert day_span.computations == 2
    assert day_span.result is not None
    assert day_span.result.labeled_rows == PER_HOUR
    page = _page(mine.engine, name, "30d")
    accuracy = page["accuracy"]["accuracy"]
    assert [datetime.fromisoformat(t) for t, _ in accuracy] == [first]
    assert accuracy[0][1] == day_span.result.accuracy["accuracy"]  # type: ignore[index]
    coverage = dict(page["coverage"])
    assert coverage[heat["times"][0]] == pytest.approx(1 / 24)


def test_custom_ranges_are_never_charted(hourly: tuple[Own, str, datetime]) -> None:
    mine, name, first = hourly
    before = _page(mine.engine, name, "30d")
    custom = mine.api.post(
        f"/api/v1/models/{name}/runs",
        json={"start": (first + HOUR / 2).isoformat(), "end": (first + 30 * HOUR).isoformat()},
    )
    assert custom.status_code == 200, custom.text
    assert custom.json()["kind"] == "custom"
    after = _page(mine.engine, name, "30d")
    assert after["heatmap"] == before["heatmap"]
    assert after["drifted_share"] == before["drifted_share"]
    assert after["rows"] == before["rows"]
    seven = _page(mine.engine, name, "7d")
    assert len(seven["heatmap"]["times"]) == 48


def test_the_rules_do_not_evaluate_a_span(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    # a rule breaching on any run holding a prediction: a span is no window to the rules
    with silenced_rule_app(settings, engine, tmp_path, models="span-*", when="rows > 0") as api:
        day = _yesterday()
        name = _hourly_model(api, day, hours=3, name=f"span-{time.time_ns()}")
        span = {"start": day.isoformat(), "end": (day + 3 * HOUR).isoformat()}
        run = api.post(f"/api/v1/models/{name}/runs", json=span).json()
        assert run["kind"] == "span"
        alerts = api.get(
            "/api/v1/alerts", params={"model": name, "state": "pending,firing,resolved,cleared"}
        ).json()
        assert alerts == []
        window = {"start": day.isoformat(), "end": (day + HOUR).isoformat()}
        one = api.post(f"/api/v1/models/{name}/runs", json=window).json()
        alerts = api.get(
            "/api/v1/alerts", params={"model": name, "state": "pending,firing,resolved,cleared"}
        ).json()
        assert [a["run_id"] for a in alerts] == [one["id"]]
