"""Segments (CONTRACT section 10): every run reports the full result per value of each
segment feature, each compared with the same segment of the baseline."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from driftwatch.app import create_app
from driftwatch.config import Settings
from driftwatch.core.result import RunResult
from driftwatch.core.vocabulary import metric_problem
from tests.conftest import ADMIN_KEY, sign_in
from tests.factories import T0, Model, baseline_records, labels, model, predictions

HOUR = timedelta(hours=1)
SEGMENTED = [
    {"name": "age", "kind": "numerical"},
    {"name": "income", "kind": "numerical"},
    {"name": "state", "kind": "categorical"},
    {"name": "region", "kind": "categorical"},
]
REGIONS = ("US", "APAC", "LATAM", "EU")  # EU is the small one: 8% of the rows


def _region(i: int) -> str:
    return "EU" if i % 25 < 2 else REGIONS[i % 3]


def _features(seed: int, count: int, *, eu_shift: float = 0.0) -> list[dict[str, Any]]:
    """Features drawn at random; in EU rows, age and income moved by ``eu_shift`` sd."""
    rng = np.random.default_rng(seed)
    age, income = rng.normal(40, 10, count), rng.normal(50, 5, count)
    out = []
    for i in range(count):
        region = _region(i)
        moved = eu_shift if region == "EU" else 0.0
        out.append({"age": round(float(age[i] + 10 * moved), 3),
                    "income": round(float(income[i] + 5 * moved), 3),
                    "state": ("CA", "NY", "TX")[int(rng.integers(0, 3))],
                    "region": region})  # fmt: skip
    return out


def _segmented(api: TestClient, **fields: Any) -> Model:
    return model(api, features=SEGMENTED, segments=["region"], segment_min_rows=150, **fields)


def _by_value(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["value"]: s for s in run["segments"] if s["feature"] == "region"}


def test_a_drift_confined_to_one_segment_is_found_there_and_not_in_the_dataset(
    api: TestClient,
) -> None:
    m = _segmented(api)
    reference = _features(1, 3000)
    m.baseline(baseline_records(3000, features=lambda i: reference[i]))
    window = _features(2, 2500, eu_shift=1.0)
    m.log(predictions(2500, features=lambda i: window[i]))
    m.label(labels([f"p-{i}" for i in range(0, 2500, 2)]))
    run = m.run(T0, T0 + HOUR)

    assert run["dataset"]["drifted"] is False
    segments = _by_value(run)
    assert set(segments) == set(REGIONS)
    rows = [s["rows"] for s in segments.values()]
    assert rows == sorted(rows, reverse=True)  # largest first
    eu = segments["EU"]
    assert eu["rows"] == 200
    assert eu["labeled_rows"] == 100
    assert eu["baseline"] == "segment"
    assert eu["baseline_rows"] == 240
    drifted = {f["name"] for f in eu["features"] if f["drifted"]}
    assert drifted == {"age", "income"}
    assert eu["dataset"]["drifted"] is True
    assert eu["accuracy"] is not None
    assert eu["labels"]["coverage"] == pytest.approx(0.5)
    for other in ("US", "APAC", "LATAM"):
        assert segments[other]["dataset"]["drifted"] is False, other
        assert not any(f["drifted"] for f in segments[other]["features"]), other
    assert sum(s["rows"] for s in segments.values()) == 2500

    flat = RunResult.model_validate(run).metrics()
    assert flat["segment[region=EU].dataset.drifted"] == 1.0
    assert flat["segment[region=EU].feature.age.drifted"] == 1.0
    assert flat["segment[region=US].dataset.drifted_share"] == 0.0
    assert flat["segment[region=EU].rows"] == 200
    assert metric_problem("segment[region=EU].dataset.drifted_share") is None
    assert metric_problem("segment[region=EU].accuracy.f2") is not None


def test_segment_min_rows_and_the_cap_of_fifty_values(api: TestClient) -> None:
    m = model(api, features=SEGMENTED, segments=["region"], segment_min_rows=10)
    m.baseline(baseline_records(500, features=lambda i: {
        "age": i % 40, "income": 1.0, "state": "CA", "region": "R0"}))  # fmt: skip

    def region(i: int) -> str:  # 60 values of 12 rows, then 10 values of 5
        return f"R{i // 12}" if i < 720 else f"S{(i - 720) // 5}"

    m.log(predictions(770, features=lambda i: {"age": i % 40, "income": 1.0, "state": "CA",
                                               "region": region(i)}))  # fmt: skip
    run = m.run(T0, T0 + HOUR)
    values = [s["value"] for s in run["segments"]]
    assert len(values) == 50
    assert all(v.startswith("R") for v in values)
    assert values == sorted(values)  # equal sizes: by name
    assert run["segments_omitted"] == {"region": 20}  # 10 past the cap, 10 too small
    assert all(s["rows"] == 12 for s in run["segments"])


def test_a_value_the_baseline_lacks_is_compared_with_the_whole_baseline(api: TestClient) -> None:
    m = _segmented(api)
    reference = [dict(f, region="US" if f["region"] == "EU" else f["region"])
                 for f in _features(3, 3000)]  # fmt: skip
    m.baseline(baseline_records(3000, features=lambda i: reference[i]))
    window = _features(4, 2500)
    m.log(predictions(2500, features=lambda i: window[i]))
    run = m.run(T0, T0 + HOUR)
    segments = _by_value(run)
    assert segments["EU"]["baseline"] == "whole"
    assert segments["EU"]["baseline_rows"] == 3000
    assert "EU" in segments["EU"]["baseline_reason"]
    assert segments["US"]["baseline"] == "segment"


def test_a_baseline_made_before_the_segments_is_the_whole_one(api: TestClient) -> None:
    m = model(api, features=SEGMENTED)
    reference = _features(5, 3000)
    m.baseline(baseline_records(3000, features=lambda i: reference[i]))
    answer = api.patch(m.path, json={"segments": ["region"], "segment_min_rows": 150})
    assert answer.status_code == 200, answer.text
    assert answer.json()["segments"] == ["region"]
    assert answer.json()["segment_min_rows"] == 150
    window = _features(6, 2500)
    m.log(predictions(2500, features=lambda i: window[i]))
    run = m.run(T0, T0 + HOUR)
    assert {s["baseline"] for s in run["segments"]} == {"whole"}
    assert "before 'region' was a segment" in run["segments"][0]["baseline_reason"]


def test_segments_must_be_categorical_features(api: TestClient) -> None:
    answer = api.post("/api/v1/models", json={
        "name": "seg-numeric", "task": "binary_classification", "features": SEGMENTED,
        "segments": ["age"],
    })  # fmt: skip
    assert answer.status_code == 400
    assert "'age' is a numerical feature" in answer.json()["detail"]
    m = model(api, features=SEGMENTED)
    answer = api.patch(m.path, json={"segments": ["colour"]})
    assert answer.status_code == 400
    assert "'colour' is not a feature" in answer.json()["detail"]
    assert api.get(m.path).json()["segments"] == []


@pytest.fixture
def small_limit(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    custom = settings.model_copy(update={"exact_max_rows": 1000})
    with TestClient(
        create_app(custom, engine), headers={"Authorization": f"Bearer {ADMIN_KEY}"}
    ) as client:
        yield client


def test_a_run_from_summaries_has_its_segments_from_the_rows(small_limit: TestClient) -> None:
    m = _segmented(small_limit)
    reference = _features(7, 3000)
    m.baseline(baseline_records(3000, features=lambda i: reference[i]))
    window = _features(8, 2500, eu_shift=1.0)
    m.log(predictions(2500, features=lambda i: window[i]))
    run = m.run(T0, T0 + HOUR)
    assert run["source"] == "summaries"
    assert run["segments_reason"] is None
    eu = _by_value(run)["EU"]
    assert {f["name"] for f in eu["features"] if f["drifted"]} == {"age", "income"}
    exact = small_limit.post(f"{m.path}/runs", json={
        "start": T0.isoformat(), "end": (T0 + HOUR).isoformat(), "exact": True}).json()  # fmt: skip
    assert exact["source"] == "rows"
    assert exact["segments"] == run["segments"]


def test_the_model_page_picks_a_segment_and_shows_segments_against_features(
    api: TestClient, engine: Engine, settings: Settings
) -> None:
    m = _segmented(api)
    reference = _features(9, 3000)
    m.baseline(baseline_records(3000, features=lambda i: reference[i]))
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - 2 * HOUR
    window = _features(10, 2500, eu_shift=1.0)
    m.log(predictions(2500, start=start, features=lambda i: window[i]))
    m.run(start, start + HOUR)
    with TestClient(create_app(settings, engine)) as browser:
        sign_in(browser, follow_redirects=False)
        whole = browser.get(m.path.replace("/api/v1", ""))
        eu = browser.get(
            m.path.replace("/api/v1", ""),
            params={"segment": "region=EU", "segment_metric": "drifted"},
        )
    assert whole.status_code == 200, whole.text
    assert "data-segment-picker" in whole.text
    assert '<option value="region=EU">region=EU</option>' in whole.text
    data = json.loads(re.search(r'id="page-data">(.*?)</script>', eu.text, re.S).group(1))
    matrix = data["segment_matrix"]
    assert matrix["metric"] == "drifted"
    assert matrix["features"] == ["age", "income", "state"]  # region: untested in its own
    assert set(matrix["segments"]) == {f"region={r}" for r in REGIONS}
    y = matrix["segments"].index("region=EU")
    assert {(c[0], c[2]) for c in matrix["cells"] if c[1] == y} == {(0, 1.0), (1, 1.0),
                                                                   (2, 0.0)}  # fmt: skip
    heatmap = data["heatmap"]
    assert heatmap["segment"] == "region=EU"
    assert heatmap["features"] == ["age", "income", "state"]
    assert {(c[1], c[2]) for c in heatmap["cells"]} == {(0, 1.0), (1, 1.0), (2, 0.0)}
    assert "Drift by feature in segment <code>region=EU</code>" in eu.text


@pytest.mark.parametrize(
    ("task", "prediction", "label", "estimated"),
    [
        ("multiclass_classification",
         lambda i: {"a": 0.6, "b": 0.3, "c": 0.1} if i % 3 else {"a": 0.2, "b": 0.7, "c": 0.1},
         lambda i: ("a", "b", "c")[i * 7 % 10 % 3], {"roc_auc", "accuracy", "f1", "precision",
                                                    "recall"}),
        ("regression", lambda i: i % 50 / 5, lambda i: i % 50 / 5 + (i % 7 - 3) / 2,
         {"mae", "rmse"}),
    ],
)  # fmt: skip
def test_each_segment_has_its_estimates_as_the_window_does(
    api: TestClient, task: str, prediction: Any, label: Any, estimated: set[str]
) -> None:
    """A segment's estimate reads the same row-level inputs as the window's (a multiclass
    model's per-class probabilities, a regression's features), calibrated on the whole
    baseline."""
    monitored = _segmented(api, task=task)
    features = _features(1, 1200)
    monitored.baseline(baseline_records(1200, features=lambda i: features[i],
                                        prediction=prediction, label=label))  # fmt: skip
    window = _features(2, 1200)
    monitored.log(predictions(1200, start=T0, step=timedelta(seconds=2),
                              features=lambda i: window[i], prediction=prediction))  # fmt: skip
    run = monitored.run(T0, T0 + HOUR)
    assert run["estimated_reason"] is None
    assert set(run["estimated"]) == estimated
    segments = _by_value(run)
    assert set(segments) == {"US", "APAC", "LATAM"}  # EU: under segment_min_rows
    for value, entry in segments.items():
        assert entry["estimated_reason"] is None, value
        assert set(entry["estimated"]) == estimated, value
        for name, found in entry["estimated"].items():
            assert found["lower"] <= found["value"] <= found["upper"], (value, name)
