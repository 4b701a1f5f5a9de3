"""The window series of a model: runs of custom ranges kept apart from it, and windows without
traffic recorded cheaply (one row a stretch) while the pages speak of the last window with data.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from driftwatch.config import Settings
from driftwatch.core.time import window_start
from driftwatch.dashboard import repository as pages
from driftwatch.dashboard import service as dashboard
from driftwatch.models import MonitoredModel, RunMetric
from tests.conftest import create_model, silenced_rule_app
from tests.factories import MONITORED as FEATURES
from tests.factories import frame, post
from tests.factories import frame_baseline as baseline_records
from tests.factories import frame_records as records
from tests.test_scheduler import Own, own, runs_of, scheduler

__all__ = ["own"]  # the fixture, for the tests below
HOUR = timedelta(hours=1)


def _model_id(engine: Engine, name: str) -> int:
    with Session(engine) as session:
        return session.scalars(select(MonitoredModel.id).where(MonitoredModel.name == name)).one()


def _run(api: TestClient, model: str, start: datetime, end: datetime) -> dict[str, Any]:
    body = {"start": start.isoformat(), "end": end.isoformat()}
    result: dict[str, Any] = post(api, f"/api/v1/models/{model}/runs", body)
    return result


def _gauges(api: TestClient, model: str) -> dict[str, float]:
    """The model's gauges in ``/metrics`` that have only the model as label."""
    return {sample.name: sample.value
            for family in text_string_to_metric_families(api.get("/metrics").text)
            for sample in family.samples if sample.labels == {"model": model}}  # fmt: skip


@pytest.fixture
def alerting_api(settings: Settings, engine: Engine, tmp_path: Path) -> Iterator[TestClient]:
    """The app with one rule that breaches on any window holding a prediction."""
    with silenced_rule_app(settings, engine, tmp_path, models="win-*", when="rows > 0") as client:
        yield client


def _three_hours(api: TestClient, model: str) -> datetime:
    """A baseline and 50 predictions in each of the last three closed hourly windows; returns
    the first window's start."""
    post(api, f"/api/v1/models/{model}/baselines",
         {"name": "b", "records": baseline_records(frame(300, seed=1))}, 201)  # fmt: skip
    first = window_start(datetime.now(UTC), HOUR) - 3 * HOUR
    for index in range(3):
        start = first + index * HOUR
        recs = records(frame(50, seed=2 + index), prefix=f"w{index}", start=start)
        post(api, f"/api/v1/models/{model}/predictions", {"records": recs})
    return first


def test_a_daily_model_counts_the_day_its_last_window_holds(
    alerting_api: TestClient, engine: Engine
) -> None:
    """The models page's predictions a day: a daily model's last closed window started more
    than a day ago whenever the page is read after its first second; its rows are the day's
    (the one before it is not counted)."""
    model = create_model(alerting_api, name="win-daily", window="1d",
                         features=FEATURES)["name"]  # fmt: skip
    post(alerting_api, f"/api/v1/models/{model}/baselines",
         {"name": "b", "records": baseline_records(frame(300, seed=1))}, 201)  # fmt: skip
    today = window_start(datetime.now(UTC), timedelta(days=1))
    for index, rows in ((1, 30), (2, 70)):
        start = today - index * timedelta(days=1) + timedelta(hours=6)
        recs = records(frame(rows, seed=index), prefix=f"d{index}", start=start)
        post(alerting_api, f"/api/v1/models/{model}/predictions", {"records": recs})
        _run(alerting_api, model, today - index * timedelta(days=1),
             today - (index - 1) * timedelta(days=1))  # fmt: skip
    now = today + timedelta(hours=13)  # the page read in the afternoon
    with Session(engine) as session:
        row = next(r for r in dashboard.overview(session, now=now) if r["name"] == model)
    assert row["predictions_per_day"] == 30


def test_custom_ranges_are_listed_apart_and_never_counted_as_windows(
    alerting_api: TestClient, engine: Engine
) -> None:
    api = alerting_api
    model = create_model(api, name=f"win-{datetime.now(UTC).timestamp():.6f}",
                         features=FEATURES, window="1h")["name"]  # fmt: skip
    first = _three_hours(api, model)
    # a custom range first: all three hours and a bit more, starting before the first window
    # (and ending in the past: rules read a span only once it has closed)
    custom = _run(api, model, first - timedelta(minutes=10), first + 3 * HOUR)
    assert (custom["kind"], custom["rows"]) == ("custom", 150)
    windows = [_run(api, model, first + i * HOUR, first + (i + 1) * HOUR) for i in range(3)]
    assert [w["kind"] for w in windows] == ["window"] * 3
    # the runs API lists both kinds, and filters them
    listed = api.get(f"/api/v1/models/{model}/runs").json()
    assert sorted(r["kind"] for r in listed) == ["custom", "window", "window", "window"]
    only = api.get(f"/api/v1/models/{model}/runs", params={"kind": "custom"}).json()
    assert [r["id"] for r in only] == [custom["id"]]
    assert len(api.get(f"/api/v1/models/{model}/runs", params={"kind": "window"}).json()) == 3
    bad = api.get(f"/api/v1/models/{model}/runs", params={"kind": "hourly"})
    assert bad.status_code == 422
    assert "kind" in bad.text
    # rules evaluate every run, on demand too (CONTRACT section 5): the custom range, the
    # newest window evaluated, fired; the windows it covers, computed after it, are history
    alerts = api.get("/api/v1/alerts", params={"model": model, "state": "firing"}).json()
    assert [a["run_id"] for a in alerts] == [custom["id"]]
    # the models page: the last window is the last hour, predictions per day count windows only
    model_id = _model_id(engine, model)
    with Session(engine) as session:
        row = next(r for r in dashboard.overview(session, now=datetime.now(UTC))
                   if r["name"] == model)  # fmt: skip
        page = dashboard.model_page(
            session, model=session.get(MonitoredModel, model_id),
            span=dashboard.time_range("7d", None, None, datetime.now(UTC), window_seconds=3600,
                                      newest=None),
        )  # fmt: skip
        days = pages.bucketed(session, model_id=model_id, metrics=["rows"],
                              start=first - timedelta(days=1), end=first + timedelta(days=1),
                              bucket_seconds=86400)  # fmt: skip
        stored = session.scalars(select(RunMetric.metric).where(RunMetric.run_id == custom["id"]))
        assert list(stored) == []  # a custom run has no place in the time series
    assert row["last_run"]["id"] == windows[2]["id"]
    assert row["predictions_per_day"] == 150
    assert page["latest"]["id"] == windows[2]["id"]
    assert sum(total for _, total in page["rows"]) == 150
    assert len(page["heatmap"]["times"]) == 3
    assert sum(b.total or 0 for b in days) == 150  # the daily sums (run_metric_days)
    # Prometheus reports the last window, not the custom range
    scraped = _gauges(api, model)
    assert scraped["driftwatch_window_rows"] == 50
    assert "driftwatch_no_traffic_since_timestamp_seconds" not in scraped
    # a custom run is read and opened like any run
    one = api.get(f"/api/v1/models/{model}/runs/{custom['id']}").json()
    assert (one["kind"], one["rows"]) == ("custom", 150)


def _traffic_that_stopped(own: Own, *, minutes_ago: int = 30) -> tuple[str, datetime]:
    """A model of one-minute windows whose 40 predictions fell in two windows ``minutes_ago``
    minutes ago, and none since; returns its name and the first window's start."""
    model = create_model(own.api, features=FEATURES, window="1m")["name"]
    post(own.api, f"/api/v1/models/{model}/baselines",
         {"name": "b", "records": baseline_records(frame(300, seed=20))}, 201)  # fmt: skip
    length = timedelta(minutes=1)
    first = window_start(datetime.now(UTC), length) - minutes_ago * length
    recs = records(frame(40, seed=21), prefix="h", start=first)
    for index, record in enumerate(recs):  # 20 a window
        record["timestamp"] = (first + timedelta(seconds=3 * index)).isoformat()
    post(own.api, f"/api/v1/models/{model}/predictions", {"records": recs})
    return model, first


def test_windows_without_traffic_are_one_row_and_late_predictions_are_computed(own: Own) -> None:
    model, first = _traffic_that_stopped(own)
    minute = timedelta(minutes=1)
    ticker = scheduler(own.settings, own.engine)
    ticker.tick()
    runs = runs_of(own.engine, model)
    # two computed windows, then one row for the stretch without traffic (not 28 empty runs)
    assert [(r.kind, r.rows) for r in runs] == [("window", 20), ("window", 20), ("no_traffic", 0)]
    assert [r.computations for r in runs] == [1, 1, 0]  # the stretch was never computed
    quiet = runs[2]
    assert quiet.window_start == first + 2 * minute
    assert quiet.window_end >= window_start(datetime.now(UTC), minute) - minute
    # an hour later, still no traffic: the same row, longer
    later = datetime.now(UTC) + timedelta(hours=1)
    ticker.plan(_model_id(own.engine, model), later)
    runs = runs_of(own.engine, model)
    assert [(r.id, r.kind) for r in runs] == [(r.id, r.kind) for r in runs[:3]]
    assert len(runs) == 3
    assert runs[2].window_end == window_start(later, minute)
    # a late prediction into the stretch: its window is computed, the rest stays quiet
    late = records(
        frame(1, seed=22), prefix="late", start=first + 10 * minute + timedelta(seconds=7)
    )
    post(own.api, f"/api/v1/models/{model}/predictions", {"records": late})
    ticker.tick()
    runs = runs_of(own.engine, model)
    assert [(r.kind, r.rows, r.window_start - first) for r in runs] == [
        ("window", 20, 0 * minute), ("window", 20, 1 * minute), ("no_traffic", 0, 2 * minute),
        ("window", 1, 10 * minute), ("no_traffic", 0, 11 * minute),
    ]  # fmt: skip
    assert runs[2].window_end == first + 10 * minute
    assert runs[3].status == "done"
    assert runs[3].window_end == first + 11 * minute
    assert runs[4].window_end == window_start(later, minute)
    # the API lists the stretches as such, and filters them out
    listed = own.api.get(f"/api/v1/models/{model}/runs").json()
    assert sorted(r["kind"] for r in listed).count("no_traffic") == 2
    windows = own.api.get(f"/api/v1/models/{model}/runs", params={"kind": "window"}).json()
    assert [w["rows"] for w in windows] == [1, 20, 20]


def test_the_pages_speak_of_the_last_window_with_data_and_say_when_traffic_stopped(
    own: Own,
) -> None:
    model, first = _traffic_that_stopped(own)
    scheduler(own.settings, own.engine).tick()
    stopped = first + timedelta(minutes=2)
    with Session(own.engine) as session:
        row = next(r for r in dashboard.overview(session, now=datetime.now(UTC))
                   if r["name"] == model)  # fmt: skip
    assert row["status"] in ("healthy", "drifting")  # not "no data": it has computed windows
    assert (row["last_run"]["end"], row["last_run"]["rows"]) == (
        stopped.isoformat().replace("+00:00", "Z"), 20)  # fmt: skip
    assert row["note"] == f"no traffic since {stopped:%Y-%m-%d %H:%M} UTC"
    assert row["predictions_per_day"] == 40
    scraped = _gauges(own.api, model)
    assert scraped["driftwatch_window_rows"] == 20
    assert scraped["driftwatch_no_traffic_since_timestamp_seconds"] == stopped.timestamp()


def test_catching_up_queues_the_newest_windows_with_data_and_never_calls_them_quiet(
    own: Own,
) -> None:
    model, first = _traffic_that_stopped(own, minutes_ago=30)
    settings = own.settings.model_copy(update={"max_catchup_windows": 5})
    scheduler(settings, own.engine).tick()
    runs = runs_of(own.engine, model)
    # the windows with data are older than the newest five: left out, as catching up does, and
    # not recorded as windows without traffic
    assert [r.kind for r in runs] == ["no_traffic"]
    assert runs[0].window_start >= first + timedelta(minutes=2)


TRAFFIC_LOST = (
    "rules:\n  - name: traffic-lost\n    model: '*'\n    when: rows < 5\n    for: 2\n"
    "    notify: []\n"
)


def _with_rules(own: Own, folder: Path, rules: str) -> Settings:
    (folder / "rules.yaml").write_text(rules)
    return own.settings.model_copy(update={"rules_dir": str(folder)})


def _events(api: TestClient, model: str) -> list[dict[str, Any]]:
    """Every alert event of the model, oldest first, each with its rule."""
    alerts = api.get("/api/v1/alerts", params={"model": model}).json()
    events = [{**e, "rule": a["rule"]} for a in alerts
              for e in api.get(f"/api/v1/alerts/{a['id']}").json()["events"]]  # fmt: skip
    return sorted(events, key=lambda e: (e["window"]["end"], e["id"]))


def _at(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def test_a_traffic_lost_rule_fires_on_windows_without_traffic_window_by_window(
    own: Own, tmp_path: Path
) -> None:
    # rows is 0 in a window without traffic, not a missing metric: `rows < 5, for: 2` is
    # pending after the first such window and fires at the second, as when each was a run
    model, first = _traffic_that_stopped(own, minutes_ago=10)
    minute = timedelta(minutes=1)
    ticker = scheduler(_with_rules(own, tmp_path, TRAFFIC_LOST), own.engine)
    model_id = _model_id(own.engine, model)
    ticker.plan(model_id, first + 2 * minute + timedelta(seconds=1))  # the two windows with data
    ticker.work(deadline=time.monotonic() + 60)
    assert _events(own.api, model) == []
    ticker.plan(model_id, first + 3 * minute + timedelta(seconds=1))  # one window without
    stretch = runs_of(own.engine, model)[-1]
    assert (stretch.kind, stretch.window_start) == ("no_traffic", first + 2 * minute)
    assert [(e["event"], e["run_id"], e["value"]) for e in _events(own.api, model)] == [
        ("pending", stretch.id, 0.0)
    ]
    ticker.plan(model_id, first + 4 * minute + timedelta(seconds=1))  # the stretch grows by one
    events = _events(own.api, model)
    assert [(e["event"], e["run_id"]) for e in events] == [
        ("pending", stretch.id), ("firing", stretch.id)
    ]  # fmt: skip
    # each event names its own window of the stretch, not the whole stretch
    assert [(e["window"]["start"], e["window"]["end"]) for e in events] == [
        (_at(first + 2 * minute), _at(first + 3 * minute)),
        (_at(first + 3 * minute), _at(first + 4 * minute)),
    ]
    assert events[1]["metrics"]["rows"] == 0
    firing = own.api.get("/api/v1/alerts", params={"model": model, "state": "firing"}).json()
    assert [(a["rule"], a["run_id"]) for a in firing] == [("traffic-lost", stretch.id)]
    # a window with traffic again resolves it
    back = records(frame(10, seed=23), prefix="back", start=first + 4 * minute)
    post(own.api, f"/api/v1/models/{model}/predictions", {"records": back})
    ticker.plan(model_id, first + 5 * minute + timedelta(seconds=1))
    ticker.work(deadline=time.monotonic() + 60)
    assert [e["event"] for e in _events(own.api, model)] == ["pending", "firing", "resolved"]


def test_catching_up_over_a_long_stretch_evaluates_its_newest_windows_only(
    own: Own, tmp_path: Path
) -> None:
    model, first = _traffic_that_stopped(own, minutes_ago=30)
    minute = timedelta(minutes=1)
    now = first + 30 * minute + timedelta(seconds=1)
    busy = "  - name: busy\n    model: '*'\n    when: rows > 10\n    notify: []\n"
    ticker = scheduler(_with_rules(own, tmp_path, TRAFFIC_LOST + busy), own.engine)
    ticker.plan(_model_id(own.engine, model), now)
    ticker.work(deadline=time.monotonic() + 60)
    runs = runs_of(own.engine, model)
    assert [(r.kind, r.rows) for r in runs] == [("window", 20), ("window", 20), ("no_traffic", 0)]
    stretch = runs[2]
    assert (stretch.window_start, stretch.window_end) == (first + 2 * minute, first + 30 * minute)
    # 28 windows without traffic at once: rules (for: 2 at most) see the newest 3, in order,
    # after the windows with data before them were computed
    events = _events(own.api, model)
    lost = [e for e in events if e["rule"] == "traffic-lost"]
    assert [(e["event"], e["run_id"]) for e in lost] == [
        ("pending", stretch.id), ("firing", stretch.id)
    ]  # fmt: skip
    assert [e["window"]["end"] for e in lost] == [
        _at(first + 28 * minute), _at(first + 29 * minute)
    ]  # fmt: skip
    # the windows with data came first: 'busy' fired at them, and resolved without traffic
    busy_events = [e for e in events if e["rule"] == "busy"]
    assert [(e["event"], e["run_id"], e["window"]["end"]) for e in busy_events] == [
        ("firing", runs[0].id, _at(first + minute)),
        ("resolved", stretch.id, _at(first + 28 * minute)),
    ]


def test_stretches_without_traffic_are_listed_with_the_result_of_an_empty_window(
    own: Own,
) -> None:
    model, _ = _traffic_that_stopped(own)
    scheduler(own.settings, own.engine).tick()
    listed = own.api.get(f"/api/v1/models/{model}/runs").json()
    quiet = [r for r in listed if r["kind"] == "no_traffic"]
    assert len(quiet) == 1
    one = own.api.get(f"/api/v1/models/{model}/runs/{quiet[0]['id']}").json()
    for run in (quiet[0], one):
        # the shape of any run (CONTRACT section 3): rows 0, every feature untested
        assert (run["rows"], run["labeled_rows"], run["accuracy"]) == (0, 0, None)
        assert run["dataset"] == {"drifted_features": None, "drifted_share": None,
                                  "drifted": None, "insufficient_share": None,
                                  "cluster_by": None, "clusters": None}  # fmt: skip
        assert [(f["name"], f["kind"], f["score"], f["drifted"], f["missing_share"])
                for f in run["features"]] == [
            (f["name"], f["kind"], None, None, None) for f in FEATURES
        ]  # fmt: skip
        assert run["quality"]["missing_share"] is None
        assert (run["quality"]["rejected"], run["quality"]["new_categories"]) == (0, {})
        assert run["prediction"] is None


def test_a_window_computed_on_demand_inside_a_stretch_splits_it(own: Own) -> None:
    model, first = _traffic_that_stopped(own)
    minute = timedelta(minutes=1)
    ticker = scheduler(own.settings, own.engine)
    ticker.tick()
    end = runs_of(own.engine, model)[-1].window_end
    asked = _run(own.api, model, first + 10 * minute, first + 11 * minute)
    assert (asked["kind"], asked["rows"]) == ("window", 0)
    runs = runs_of(own.engine, model)
    assert [(r.kind, r.window_start - first, r.window_end - first) for r in runs] == [
        ("window", 0 * minute, 1 * minute), ("window", 1 * minute, 2 * minute),
        ("no_traffic", 2 * minute, 10 * minute), ("window", 10 * minute, 11 * minute),
        ("no_traffic", 11 * minute, end - first),
    ]  # fmt: skip
    assert runs[3].id == asked["id"]
    assert all(r.result is not None and r.result.rows == 0 for r in runs[2:])
    # the stretch after it goes on growing while traffic stays away
    later = datetime.now(UTC) + timedelta(minutes=5)
    ticker.plan(_model_id(own.engine, model), later)
    runs = runs_of(own.engine, model)
    assert len(runs) == 5
    assert runs[4].window_end == window_start(later, minute)
    # a stretch of one window asked for is that stretch's row, computed
    _run(own.api, model, first + 12 * minute, first + 13 * minute)
    single = runs_of(own.engine, model)[4]
    assert (single.kind, single.window_start, single.window_end) == (
        "no_traffic", first + 11 * minute, first + 12 * minute)  # fmt: skip
    lone = _run(own.api, model, first + 11 * minute, first + 12 * minute)
    assert (lone["id"], lone["kind"]) == (single.id, "window")
    spans = [(r.window_start, r.window_end) for r in runs_of(own.engine, model)
             if r.kind != "custom"]  # fmt: skip
    assert all(end <= start for (_, end), (start, _) in itertools.pairwise(spans))  # no overlap
