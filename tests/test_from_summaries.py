"""Runs computed from summaries (CONTRACT section 8): each score within its stated
``max_error`` of the exact one, in a table of shapes; the API's source, ``exact`` and limit."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from driftwatch.app import create_app
from driftwatch.config import Settings
from driftwatch.stats import from_summary, registry, summaries
from driftwatch.stats.samples import CategoricalPair, NumericalPair
from tests.conftest import ADMIN_KEY, create_model

Sample = Callable[[np.random.Generator, int], np.ndarray]

SHAPES: dict[str, tuple[Sample, Sample]] = {
    "normal": (lambda g, n: g.normal(0, 1, n), lambda g, n: g.normal(0.1, 1.05, n)),
    "no drift": (lambda g, n: g.normal(5, 2, n), lambda g, n: g.normal(5, 2, n)),
    "heavy tails": (lambda g, n: g.standard_t(2, n), lambda g, n: 1.1 * g.standard_t(2, n)),
    "cauchy": (lambda g, n: g.standard_cauchy(n), lambda g, n: g.standard_cauchy(n) + 0.2),
    "integers, ties": (
        lambda g, n: g.integers(0, 1000, n).astype(float),
        lambda g, n: g.integers(0, 1100, n).astype(float),
    ),
    "rounded, ties": (
        lambda g, n: g.normal(50, 10, n).round(), lambda g, n: g.normal(52, 10, n).round()
    ),
    "lognormal": (lambda g, n: g.lognormal(0, 2, n), lambda g, n: g.lognormal(0.1, 2, n)),
    "far from zero (KLL)": (lambda g, n: g.normal(1e6, 1, n), lambda g, n: g.normal(1e6, 1, n)),
    "missing values": (
        lambda g, n: g.normal(0, 1, n),
        lambda g, n: np.where(g.random(n) < 0.2, np.nan, g.normal(0.2, 1, n)),
    ),
    "mixed signs near zero": (
        lambda g, n: g.normal(0, 1e-3, n), lambda g, n: g.normal(1e-4, 1e-3, n)
    ),
}  # fmt: skip
TESTS = ["ks", "wasserstein", "jensenshannon", "psi", "kl_div"]


@pytest.mark.parametrize("size", [3_000, 40_000])
@pytest.mark.parametrize("shape", list(SHAPES))
def test_every_score_from_a_summary_is_within_its_bound_of_the_exact_one(
    shape: str, size: int
) -> None:
    rng = np.random.default_rng([len(shape), size])
    make_reference, make_current = SHAPES[shape]
    reference = np.sort(make_reference(rng, 2_000))
    current = make_current(rng, size)
    summary = summaries.NumericalSummary.of(current)
    pair = NumericalPair(reference, np.sort(current[np.isfinite(current)]))
    for name in TESTS:
        exact = registry.get(name).score(pair)
        bounded = from_summary.score(name, reference, summary)
        assert bounded.low - 1e-12 <= exact <= bounded.high + 1e-12, (name, exact, bounded)
        assert abs(bounded.score - exact) <= bounded.max_error + 1e-12, (name, exact, bounded)
        if name == "ks":  # the verdict's p-value is that of D - bound: never more drifted
            assert bounded.conservative >= exact - 1e-12
    # the bounds say something where the bins are fine (0.78%), not only that they hold; a
    # value's place inside its bin is unknown: whole numbers near 50 leave 0.4 of 10 sd each
    if shape not in {"far from zero (KLL)", "rounded, ties"}:
        wasserstein = from_summary.score("wasserstein", reference, summary)
        assert wasserstein.max_error < 0.02, (shape, wasserstein)


def test_values_counted_exactly_give_the_exact_sample() -> None:
    values = np.array([3.0, 1.0, 1.0, 2.5, np.nan, 3.0, 3.0])
    found = from_summary.exact_values(summaries.NumericalSummary.of(values))
    assert found is not None
    assert found.tolist() == [1.0, 1.0, 2.5, 3.0, 3.0, 3.0]
    many = summaries.NumericalSummary.of(np.arange(100.0))
    assert from_summary.exact_values(many) is None


def test_a_test_without_a_bound_says_it_needs_rows() -> None:
    summary = summaries.NumericalSummary.of(np.random.default_rng(0).normal(size=500))
    with pytest.raises(from_summary.NeedsRows, match="needs the window's raw rows"):
        from_summary.score("anderson", np.sort(np.random.default_rng(1).normal(size=500)), summary)


# -- through the API ---------------------------------------------------------------------------

LIMIT = 300
FEATURES = [
    {"name": "age", "kind": "numerical"},
    {"name": "income", "kind": "numerical"},
    {"name": "state", "kind": "categorical"},
    {"name": "city", "kind": "categorical"},
]
DAY = datetime(2026, 11, 10, tzinfo=UTC)


@pytest.fixture
def small_limit(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    custom = settings.model_copy(update={"exact_max_rows": LIMIT})
    with TestClient(
        create_app(custom, engine), headers={"Authorization": f"Bearer {ADMIN_KEY}"}
    ) as client:
        yield client


def _records(rng: np.random.Generator, count: int, start: datetime | None, shift: float) -> list[
    dict[str, Any]
]:  # fmt: skip
    ages = rng.integers(18, 90, count)  # ties, whole numbers
    incomes = rng.lognormal(10 + shift, 1, count)  # heavy tail
    incomes[::7] = np.nan  # missing
    out = []
    for i in range(count):
        record: dict[str, Any] = {
            "features": {
                "age": float(ages[i]),
                "income": None if np.isnan(incomes[i]) else float(incomes[i]),
                "state": ["CA", "NY", "TX", "WA"][int(rng.integers(0, 4 if shift else 3))],
                "city": f"c{int(rng.integers(0, 60))}",  # many categories
            },
            "prediction": round(float(rng.random()), 3),
        }
        if start is not None:
            record["prediction_id"] = f"p{i}"
            record["timestamp"] = (start + timedelta(seconds=40 * i)).isoformat()
        out.append(record)
    return out


@pytest.mark.parametrize("verdict", ["evidently", "calibrated"])
def test_a_window_above_the_limit_is_computed_from_summaries_within_its_bounds(
    small_limit: TestClient, verdict: str
) -> None:
    api = small_limit
    model = create_model(api, features=FEATURES, window="1d", drift={"verdict": verdict})
    name = model["name"]
    rng = np.random.default_rng(7)
    baseline = {"name": "training", "records": _records(rng, 1500, None, 0.0)}
    made = api.post(f"/api/v1/models/{name}/baselines", json=baseline)
    assert made.status_code == 201, made.text
    batch = _records(rng, 2000, DAY, 0.3)
    posted = api.post(
        f"/api/v1/models/{name}/predictions", content=orjson.dumps({"records": batch})
    )
    assert posted.status_code == 200, posted.text
    window = {"start": DAY.isoformat(), "end": (DAY + timedelta(days=1)).isoformat()}

    approximate = api.post(f"/api/v1/models/{name}/runs", json=window).json()
    assert approximate["source"] == "summaries", approximate
    exact = api.post(f"/api/v1/models/{name}/runs", json={**window, "exact": True}).json()
    assert exact["source"] == "rows"
    assert exact["max_error"] == {}
    assert exact["id"] == approximate["id"]  # the exact result replaced the stored one
    stored = api.get(f"/api/v1/models/{name}/runs/{exact['id']}").json()
    assert stored["source"] == "rows"

    assert approximate["rows"] == exact["rows"] == 2000
    assert set(approximate["max_error"]) == {"age", "income", "state", "city"}
    for a, e in zip(approximate["features"], exact["features"], strict=True):
        assert a["stattest"] == e["stattest"]
        assert abs(a["score"] - e["score"]) <= a["max_error"] + 1e-12, (a, e)
        assert a["missing_share"] == e["missing_share"]
        if a["max_error"] == 0:  # exact counts: the same test input as rows
            assert a == {**e, "max_error": 0.0}
    assert approximate["features"][2]["max_error"] == 0.0  # categorical: exact counts
    assert approximate["quality"]["new_categories"] == exact["quality"]["new_categories"]
    assert approximate["quality"]["missing_share"] == exact["quality"]["missing_share"]
    prediction = approximate["prediction"]
    assert abs(prediction["score"] - exact["prediction"]["score"]) <= prediction["max_error"]
    if verdict == "calibrated":
        for a in approximate["features"]:
            assert a["p_value"] is not None
            assert a["verdict"] is not None
    # labels as a run from rows has them; no estimate without row-level scores
    assert approximate["labels"] == exact["labels"]
    assert approximate["labels"]["coverage"] == 0.0
    assert approximate["estimated"] is None
    assert approximate["estimated_reason"] == "computed_from_summaries"


def test_a_window_under_the_limit_is_computed_from_rows_as_before(small_limit: TestClient) -> None:
    api = small_limit
    name = create_model(api, features=FEATURES, window="1d")["name"]
    rng = np.random.default_rng(8)
    api.post(f"/api/v1/models/{name}/baselines",
             json={"name": "training", "records": _records(rng, 500, None, 0.0)})  # fmt: skip
    batch = _records(rng, LIMIT, DAY, 0.3)
    api.post(f"/api/v1/models/{name}/predictions", content=orjson.dumps({"records": batch}))
    window = {"start": DAY.isoformat(), "end": (DAY + timedelta(days=1)).isoformat()}
    run = api.post(f"/api/v1/models/{name}/runs", json=window).json()
    assert run["source"] == "rows"
    assert run["max_error"] == {}
    assert all(f["max_error"] is None for f in run["features"])
    again = api.post(f"/api/v1/models/{name}/runs", json={**window, "exact": True}).json()
    assert again["features"] == run["features"]


def test_a_test_without_a_bound_reads_the_rows_while_they_exist(small_limit: TestClient) -> None:
    api = small_limit
    drift = {"verdict": "evidently", "num_stattest": "anderson"}
    name = create_model(api, features=FEATURES, window="1d", drift=drift)["name"]
    rng = np.random.default_rng(9)
    baseline = {"name": "training", "records": _records(rng, 500, None, 0.0)}
    assert api.post(f"/api/v1/models/{name}/baselines", json=baseline).status_code == 201
    batch = _records(rng, 2 * LIMIT, DAY, 0.3)
    api.post(f"/api/v1/models/{name}/predictions", content=orjson.dumps({"records": batch}))
    window = {"start": DAY.isoformat(), "end": (DAY + timedelta(days=1)).isoformat()}
    run = api.post(f"/api/v1/models/{name}/runs", json=window).json()
    assert run["source"] == "rows"  # anderson has no bound from summaries: rows, as before
    assert run["features"][1]["stattest"] == "anderson"


@pytest.mark.parametrize("shift", [0.0, 0.5])
def test_many_categories_past_the_limit_are_bounded_from_frequent_items(shift: float) -> None:
    rng = np.random.default_rng([3, int(shift * 10)])
    names = np.array([f"c{i}" for i in range(5000)])
    weights = 1.0 / np.arange(1, 5001) ** 1.1  # a long tail: thousands of rare categories
    reference = rng.choice(5000, 20_000, p=weights / weights.sum())
    drifted = np.roll(weights, int(shift * 40))
    current = rng.choice(5000, 60_000, p=drifted / drifted.sum())
    summary = summaries.CategoricalSummary.of(names[current].tolist())
    assert summary.frequent is not None  # past the limit: frequent items
    kept = np.unique(reference)
    categories = names[kept].tolist()
    counts = np.bincount(reference, minlength=5000)[kept]
    pair = CategoricalPair.from_values(names[reference].tolist(), names[current].tolist())
    exact = registry.get("jensenshannon").score(pair)
    bounded = from_summary.categorical_jensenshannon(categories, counts, summary)
    assert bounded.low - 1e-12 <= exact <= bounded.high + 1e-12, (exact, bounded)
    assert abs(bounded.score - exact) <= bounded.max_error + 1e-12


def test_a_window_past_the_category_limit_is_bounded_through_the_api(
    small_limit: TestClient,
) -> None:
    api = small_limit
    features = [{"name": "x", "kind": "numerical"}, {"name": "city", "kind": "categorical"}]
    name = create_model(api, features=features, window="1d", drift={"verdict": "evidently"})["name"]
    rng = np.random.default_rng(11)

    def rows(count: int, start: datetime | None) -> list[dict[str, Any]]:
        cities = rng.integers(0, 3000, count)
        out: list[dict[str, Any]] = []
        for i in range(count):
            record: dict[str, Any] = {
                "features": {"x": float(rng.normal()), "city": f"c{int(cities[i])}"},
                "prediction": 0.5,
            }
            if start is not None:
                when = start + timedelta(seconds=30 * i)
                record |= {"prediction_id": f"q{i}", "timestamp": when.isoformat()}
            out.append(record)
        return out

    baseline = {"name": "training", "records": rows(1500, None)}
    assert api.post(f"/api/v1/models/{name}/baselines", json=baseline).status_code == 201
    batch = rows(2500, DAY)
    api.post(f"/api/v1/models/{name}/predictions", content=orjson.dumps({"records": batch}))
    window = {"start": DAY.isoformat(), "end": (DAY + timedelta(days=1)).isoformat()}
    approximate = api.post(f"/api/v1/models/{name}/runs", json=window).json()
    exact = api.post(f"/api/v1/models/{name}/runs", json={**window, "exact": True}).json()
    assert approximate["source"] == "summaries"
    city, exact_city = approximate["features"][1], exact["features"][1]
    assert city["stattest"] == exact_city["stattest"] == "jensenshannon"
    assert abs(city["score"] - exact_city["score"]) <= city["max_error"] + 1e-12
