"""Trailing and lag baselines (CONTRACT section 8): each run merges the summaries of the span
its baseline names (the span just before its window, or the same-length window that far back),
names it with its rows, and compares summaries with summaries within the stated bounds."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from driftwatch.app import create_app
from driftwatch.config import Settings
from driftwatch.monitoring import moving
from driftwatch.stats import registry, summaries, summary_pair
from driftwatch.stats.samples import NumericalPair
from tests.conftest import create_model, sign_in

Sample = Callable[[np.random.Generator, int], np.ndarray]

SHAPES: dict[str, tuple[Sample, Sample]] = {
    "normal, shifted": (lambda g, n: g.normal(0, 1, n), lambda g, n: g.normal(0.1, 1.05, n)),
    "no drift": (lambda g, n: g.normal(5, 2, n), lambda g, n: g.normal(5, 2, n)),
    "heavy tails": (lambda g, n: g.standard_t(2, n), lambda g, n: 1.1 * g.standard_t(2, n)),
    "integers, ties": (
        lambda g, n: g.integers(0, 1000, n).astype(float),
        lambda g, n: g.integers(0, 1100, n).astype(float),
    ),
    "lognormal": (lambda g, n: g.lognormal(0, 2, n), lambda g, n: g.lognormal(0.1, 2, n)),
    "far from zero (one bin)": (
        lambda g, n: g.normal(1e6, 1, n), lambda g, n: g.normal(1e6 + 0.5, 1, n)
    ),
    "missing values": (
        lambda g, n: np.where(g.random(n) < 0.3, np.nan, g.normal(0, 1, n)),
        lambda g, n: np.where(g.random(n) < 0.2, np.nan, g.normal(0.2, 1, n)),
    ),
    "mixed signs near zero": (
        lambda g, n: g.normal(0, 1e-3, n), lambda g, n: g.normal(1e-4, 1e-3, n)
    ),
}  # fmt: skip


@pytest.mark.parametrize("size", [800, 30_000])
@pytest.mark.parametrize("shape", list(SHAPES))
def test_every_score_between_two_summaries_is_within_its_bounds(shape: str, size: int) -> None:
    rng = np.random.default_rng([len(shape), size])
    make_reference, make_current = SHAPES[shape]
    reference = make_reference(rng, 3 * size)
    current = make_current(rng, size)
    # the baseline merged from hourly parts, as a trailing span is
    merged = summaries.merge(
        [summaries.NumericalSummary.of(p) for p in np.array_split(reference, 9)]
    )
    window = summaries.NumericalSummary.of(current)
    assert isinstance(merged, summaries.NumericalSummary)
    pair = NumericalPair(
        np.sort(reference[np.isfinite(reference)]), np.sort(current[np.isfinite(current)])
    )
    for name in sorted(summary_pair.BOUNDED):
        exact = registry.get(name).score(pair)
        bounded = summary_pair.score(name, merged, window)
        slack = 1e-9 * max(1.0, abs(exact))
        assert bounded.low - slack <= exact <= bounded.high + slack, (name, exact, bounded)
        assert abs(bounded.score - exact) <= bounded.max_error + slack, (name, exact, bounded)
        if name == "ks":  # the verdict's p-value is never below the exact one
            assert bounded.conservative >= exact - slack


def test_the_pseudo_sample_follows_the_summary_s_quantiles() -> None:
    values = np.random.default_rng(3).lognormal(0, 1, 50_000)
    sample = summary_pair.pseudo_sample(summaries.NumericalSummary.of(values), 2_000)
    shares = (np.arange(2_000) + 0.5) / 2_000
    expected = np.quantile(values, shares)
    assert np.all(np.diff(sample) >= 0)
    assert np.max(np.abs(sample - expected) / expected) < 0.02  # the bins' 0.78%, and sampling


HOUR = timedelta(hours=1)


@pytest.mark.parametrize(
    ("source", "seconds", "expected"),
    [
        (moving.TRAILING, 7 * 86400, ("2026-11-13T10:00", "2026-11-20T10:00")),
        (moving.TRAILING, 3600, ("2026-11-20T09:00", "2026-11-20T10:00")),
        (moving.LAG, 7 * 86400, ("2026-11-13T10:00", "2026-11-13T11:00")),
        (moving.LAG, 86400, ("2026-11-19T10:00", "2026-11-19T11:00")),
    ],
)
def test_the_span_of_a_run(source: str, seconds: int, expected: tuple[str, str]) -> None:
    start = datetime(2026, 11, 20, 10, tzinfo=UTC)
    span = moving.span_of(source, seconds, start, start + HOUR)
    assert tuple(moment.isoformat()[:16] for moment in span) == expected


# -- through the API ----------------------------------------------------------------------------

FEATURES = [
    {"name": "x", "kind": "numerical"},  # continuous: summary against summary
    {"name": "k", "kind": "numerical"},  # six values: counted exactly
    {"name": "c", "kind": "categorical"},
]


def _hour(back: int) -> datetime:
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    return now - timedelta(hours=back)


def _records(rng: np.random.Generator, start: datetime, count: int, *, prefix: str,
             shift: float = 0.0, seconds: float = 3600.0) -> list[dict[str, Any]]:  # fmt: skip
    """``count`` predictions spread over ``seconds`` from ``start``."""
    step = seconds / count
    return [
        {
            "prediction_id": f"{prefix}-{i}",
            "timestamp": (start + timedelta(seconds=step * i)).isoformat(),
            "features": {
                "x": float(rng.normal(shift, 1)),
                "k": float(rng.integers(0, 6)),
                "c": ["a", "b", "c", "d"][int(rng.integers(0, 4 if shift else 3))],
            },
            "prediction": round(float(rng.random()), 4),
        }
        for i in range(count)
    ]


def _post(api: TestClient, path: str, body: dict[str, Any], status: int = 200) -> Any:
    response = api.post(path, content=orjson.dumps(body),
                        headers={"content-type": "application/json"})  # fmt: skip
    assert response.status_code == status, response.text
    return response.json()


def _traffic(api: TestClient, name: str, hours: dict[int, int], *, shift_hour: int | None = None,
             seed: int = 0) -> None:  # fmt: skip
    """Predictions in hours ``back`` hours ago: {back: count}."""
    rng = np.random.default_rng(seed)
    for back, count in hours.items():
        batch = _records(rng, _hour(back), count, prefix=f"h{back}",
                         shift=0.5 if back == shift_hour else 0.0)  # fmt: skip
        _post(api, f"/api/v1/models/{name}/predictions", {"records": batch})


def _run(api: TestClient, name: str, start: datetime, end: datetime, **extra: Any) -> Any:
    return _post(api, f"/api/v1/models/{name}/runs",
                 {"start": start.isoformat(), "end": end.isoformat(), **extra})  # fmt: skip


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def test_a_trailing_baseline_compares_with_the_span_just_before_the_window(
    api: TestClient,
) -> None:
    name = create_model(api, features=FEATURES, window="1h",
                        drift={"verdict": "evidently"})["name"]  # fmt: skip
    _traffic(api, name, {6: 50, 5: 400, 4: 450, 3: 500, 2: 300}, shift_hour=2)
    made = _post(api, f"/api/v1/models/{name}/baselines",
                 {"name": "last-3h", "trailing": "3h"}, 201)  # fmt: skip
    assert made["source"] == "trailing"
    assert made["trailing"] == "3h"
    assert made["lag"] is None
    assert made["active"] is True

    run = _run(api, name, _hour(2), _hour(1))
    # [start - 3h, start): hours 5, 4 and 3 back, not hour 6 nor the window's own hour
    assert run["baseline"] == {"id": made["id"], "name": "last-3h", "start": _iso(_hour(5)),
                               "end": _iso(_hour(2))}  # fmt: skip
    assert run["baseline_rows"] == 400 + 450 + 500
    assert run["baseline_reason"] is None
    assert run["rows"] == 300
    assert run["source"] == "summaries"
    assert run["baseline_span"] == {"start": _iso(_hour(5)), "end": _iso(_hour(2))}
    by_name = {f["name"]: f for f in run["features"]}
    assert by_name["x"]["stattest"] == "wasserstein"  # Evidently's choice above 1000 rows
    assert by_name["x"]["drifted"] is True  # half a standard deviation
    assert by_name["x"]["max_error"] > 0
    assert by_name["k"]["max_error"] == 0.0  # six values, counted exactly on both sides
    assert by_name["c"]["max_error"] == 0.0
    assert run["quality"]["new_categories"] == {"c": ["d"]}
    assert run["dataset"]["drifted"] is True
    assert run["max_error"]["x"] == by_name["x"]["max_error"]

    # the same span as a baseline of stored rows, computed exactly: the same scores
    fixed = _post(api, f"/api/v1/models/{name}/baselines", {"name": "rows", "from_window": {
        "start": _hour(5).isoformat(), "end": _hour(2).isoformat()}}, 201)  # fmt: skip
    exact = _run(api, name, _hour(2), _hour(1), baseline=fixed["id"])
    assert exact["source"] == "rows"
    assert exact["baseline_rows"] == 1350
    assert exact["baseline"] == {"id": fixed["id"], "name": "rows"}  # as the contract writes it
    for approximate, rows in zip(run["features"], exact["features"], strict=True):
        assert approximate["stattest"] == rows["stattest"]
        assert abs(approximate["score"] - rows["score"]) <= approximate["max_error"] + 1e-9
        assert approximate["drifted"] == rows["drifted"]
    assert abs(run["prediction"]["score"] - exact["prediction"]["score"]) <= (
        run["prediction"]["max_error"] + 1e-9)  # fmt: skip


def test_a_lag_baseline_compares_with_the_same_window_that_far_back(api: TestClient) -> None:
    name = create_model(api, features=FEATURES, window="1h")["name"]
    _traffic(api, name, {5: 30, 4: 70, 3: 110, 2: 150, 1: 60})
    made = _post(api, f"/api/v1/models/{name}/baselines", {"name": "lag-2h", "lag": "2h"}, 201)
    assert (made["lag"], made["trailing"]) == ("2h", None)

    run = _run(api, name, _hour(2), _hour(1))
    assert (run["baseline"]["start"], run["baseline"]["end"]) == (_iso(_hour(4)), _iso(_hour(3)))
    assert run["baseline_rows"] == 70
    # a run of two windows: the two hours two hours back
    longer = _run(api, name, _hour(3), _hour(1))
    assert longer["kind"] == "span"  # two whole windows
    assert longer["span"]["windows"] == 2
    assert (longer["baseline"]["start"], longer["baseline"]["end"]) == (
        _iso(_hour(5)), _iso(_hour(3)))  # fmt: skip
    assert longer["baseline_rows"] == 30 + 70
    assert longer["rows"] == 110 + 150
    # calibrated (the default for new models): every tested column has its verdict
    for feature in run["features"]:
        assert feature["verdict"] in {"drift", "no_drift", "insufficient"}, feature
        assert feature["p_value"] is not None


def test_windows_of_other_lengths_merge_their_own_buckets(api: TestClient) -> None:
    name = create_model(api, features=FEATURES, window="15m")["name"]
    rng = np.random.default_rng(5)
    start = _hour(2)
    for quarter in range(8):  # 10, 20, ..., 80 predictions a quarter
        batch = _records(rng, start + quarter * timedelta(minutes=15), 10 * (quarter + 1),
                         prefix=f"q{quarter}", seconds=900)  # fmt: skip
        _post(api, f"/api/v1/models/{name}/predictions", {"records": batch})
    refused = api.post(f"/api/v1/models/{name}/baselines", json={"name": "t", "trailing": "20m"})
    assert refused.status_code == 422
    assert "trailing: 20m is not a whole number of the model's summary buckets (15m" in (
        refused.json()["detail"])  # fmt: skip
    made = _post(api, f"/api/v1/models/{name}/baselines", {"name": "t", "trailing": "45m"}, 201)
    window = start + 5 * timedelta(minutes=15)
    run = _run(api, name, window, window + timedelta(minutes=15))
    assert run["baseline"]["id"] == made["id"]
    assert run["baseline_rows"] == 30 + 40 + 50  # quarters 2, 3 and 4
    assert run["rows"] == 60
    assert run["baseline"]["start"] == _iso(start + 2 * timedelta(minutes=15))


def test_activation_and_a_run_naming_its_baseline(api: TestClient) -> None:
    name = create_model(api, features=FEATURES, window="1h")["name"]
    _traffic(api, name, {4: 200, 3: 200, 2: 200})
    rng = np.random.default_rng(9)
    training = [{k: v for k, v in r.items() if k in {"features", "prediction"}}
                for r in _records(rng, _hour(30), 300, prefix="t")]  # fmt: skip
    fixed = _post(api, f"/api/v1/models/{name}/baselines",
                  {"name": "training", "records": training}, 201)  # fmt: skip
    trailing = _post(api, f"/api/v1/models/{name}/baselines",
                     {"name": "last-2h", "trailing": "2h"}, 201)  # fmt: skip
    listed = api.get(f"/api/v1/models/{name}/baselines").json()
    active = {b["name"]: b["active"] for b in listed}
    assert active == {"training": False, "last-2h": True}  # the newest is active
    shown = next(b for b in listed if b["name"] == "last-2h")
    assert shown["span"]["end"] == _iso(_hour(0))  # the span the current window compares with
    assert shown["rows"] == 200  # [now - 2h, now): hours 2 and 1 back
    assert _run(api, name, _hour(2), _hour(1))["baseline"]["id"] == trailing["id"]
    named = _run(api, name, _hour(2), _hour(1), baseline=fixed["id"])
    assert named["baseline"] == {"id": fixed["id"], "name": "training"}
    assert named["baseline_rows"] == 300
    assert named["source"] == "rows"
    refused = api.post(f"/api/v1/models/{name}/runs", json={
        "start": _hour(2).isoformat(), "end": _hour(1).isoformat(), "exact": True})  # fmt: skip
    assert refused.status_code == 400
    assert "trailing baseline, merged from summaries" in refused.json()["detail"]

    put = api.put(f"/api/v1/models/{name}/baselines/{fixed['id']}/activate")
    assert put.status_code == 200
    assert _run(api, name, _hour(3), _hour(2))["baseline"]["id"] == fixed["id"]
    put = api.put(f"/api/v1/models/{name}/baselines/{trailing['id']}/activate")
    assert put.json()["trailing"] == "2h"
    again = _run(api, name, _hour(3), _hour(2))
    assert again["baseline"]["id"] == trailing["id"]
    assert again["baseline_rows"] == 200  # hour 4 back only: hour 5 has nothing
    assert "starts before the model's first prediction" in again["baseline_reason"]


def test_a_span_without_data_is_an_insufficient_baseline_with_its_reason(
    api: TestClient,
) -> None:
    name = create_model(api, features=FEATURES, window="1h")["name"]
    made = _post(api, f"/api/v1/models/{name}/baselines", {"name": "t", "trailing": "2h"}, 201)
    assert made["rows"] == 0
    assert "holds no predictions yet" in made["warnings"][0]
    _traffic(api, name, {6: 100, 5: 80, 2: 100})
    first = _run(api, name, _hour(6), _hour(5))  # before the first prediction
    assert first["baseline_rows"] == 0
    assert "ends before the model's first prediction" in first["baseline_reason"]
    assert "insufficient baseline" in first["baseline_reason"]
    assert first["rows"] == 100
    assert first["dataset"]["drifted"] is None
    for feature in first["features"]:
        assert feature["score"] is None
        assert feature["drifted"] is None
        assert "no value of this column in the baseline span" in feature["error"]
    gap = _run(api, name, _hour(2), _hour(1))  # hours 4 and 3 back: empty
    assert gap["baseline_rows"] == 0
    assert "holds no predictions: nothing to compare with" in gap["baseline_reason"]
    whole = _run(api, name, _hour(4), _hour(3))  # hours 6 and 5 back
    assert whole["baseline_rows"] == 180
    assert whole["baseline_reason"] is None  # the span starts at the first prediction's hour
    earlier = _run(api, name, _hour(5), _hour(4))  # hours 7 and 6 back: half of it
    assert earlier["baseline_rows"] == 100
    assert earlier["rows"] == 80
    assert "holds 1h of the 2h asked" in earlier["baseline_reason"]
    assert earlier["features"][0]["score"] is not None


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"trailing": "7x"}, "trailing: '7x' is not a duration"),
        ({"trailing": "0h"}, "longer than zero"),
        ({"lag": "90m"}, "lag: 90m is not a whole number of the model's windows (1h)"),
        ({"trailing": "30m"}, "trailing: 30m is not a whole number of the model's summary bu"),
        ({"lag": "1000d"}, "lag: 1000d is longer than 400d"),
        ({"trailing": "7d", "lag": "7d"}, "give either 'records' or 'from_window', or 'trailing'"),
        ({"trailing": 7}, "trailing"),
    ],
)
def test_a_bad_length_is_refused_naming_its_field(
    api: TestClient, body: dict[str, Any], detail: str
) -> None:
    name = create_model(api, features=FEATURES, window="1h")["name"]
    response = api.post(f"/api/v1/models/{name}/baselines", json={"name": "b", **body})
    assert response.status_code == 422, response.text
    assert detail in response.json()["detail"]


def test_summaries_off_refuse_a_trailing_baseline(settings: Settings, engine: Engine) -> None:
    custom = settings.model_copy(update={"summaries": False})
    with TestClient(create_app(custom, engine),
                    headers={"Authorization": f"Bearer {settings.admin_key.get_secret_value()}"}
                    ) as api:  # fmt: skip
        name = create_model(api, features=FEATURES, window="1h")["name"]
        response = api.post(f"/api/v1/models/{name}/baselines",
                            json={"name": "t", "trailing": "1d"})  # fmt: skip
    assert response.status_code == 409
    assert "DRIFTWATCH_SUMMARIES=0" in response.json()["detail"]


def test_the_dashboard_describes_a_trailing_baseline(
    api: TestClient, settings: Settings, engine: Engine
) -> None:
    name = create_model(api, features=FEATURES, window="1h")["name"]
    _traffic(api, name, {3: 100, 2: 100})
    _post(api, f"/api/v1/models/{name}/baselines", {"name": "last-week", "trailing": "7d"}, 201)
    run = _run(api, name, _hour(2), _hour(1))
    with TestClient(create_app(settings, engine)) as browser:
        sign_in(browser, follow_redirects=False)
        page = browser.get(f"/models/{name}")
        report = browser.get(f"/models/{name}/evidently?run={run['id']}")
    assert page.status_code == 200
    assert "<strong>last-week</strong>" in page.text
    assert "trailing 7d: each window against the 7d just before it" in page.text
    assert report.status_code == 404
    assert "trailing baseline" in report.text
