"""The dashboard's time series: daily sums kept as runs are computed agree with the runs; the
pages show the calibrated verdict's budget, and windows too small to tell apart from no drift."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from driftwatch.app import create_app
from driftwatch.config import Settings
from driftwatch.dashboard import repository
from driftwatch.models import Run
from tests.conftest import create_model, sign_in
from tests.factories import MONITORED as FEATURES
from tests.factories import frame, post
from tests.factories import frame_baseline as baseline_records
from tests.factories import frame_records as records

DAY0 = datetime(2026, 10, 3, tzinfo=UTC)


def _run(api: TestClient, model: str, start: datetime) -> dict[str, Any]:
    result: dict[str, Any] = post(
        api,
        f"/api/v1/models/{model}/runs",
        {"start": start.isoformat(), "end": (start + timedelta(hours=1)).isoformat()},
    )
    return result


def test_daily_sums_follow_runs_and_their_recomputations(api: TestClient, engine: Engine) -> None:
    model = create_model(api, features=FEATURES, window="1h")["name"]
    post(api, f"/api/v1/models/{model}/baselines",
         {"name": "b", "records": baseline_records(frame(400, seed=1))}, 201)  # fmt: skip
    starts = [DAY0 + timedelta(hours=h) for h in (1, 5, 23, 24, 30)]  # 3 on one day, 2 on the next
    for index, start in enumerate(starts):
        data = frame(50 + 10 * index, seed=10 + index, shift=0.8 * (index % 2))
        post(api, f"/api/v1/models/{model}/predictions",
             {"records": records(data, prefix=f"w{index}", start=start)})  # fmt: skip
        _run(api, model, start)
    # a late batch for the first window: its run is computed again, and its day summed again
    post(api, f"/api/v1/models/{model}/predictions",
         {"records": records(frame(30, seed=99), prefix="late", start=starts[0])})  # fmt: skip
    _run(api, model, starts[0])
    runs = api.get(f"/api/v1/models/{model}/runs").json()
    with Session(engine) as session:
        model_id = next(m.id for m in repository.list_models(session) if m.name == model)
        buckets = repository.bucketed(
            session, model_id=model_id, metrics=["rows", "dataset.drifted_share"],
            start=DAY0, end=DAY0 + timedelta(days=2), bucket_seconds=86400,
        )  # fmt: skip
    by = {(b.metric, b.index): b for b in buckets}
    for day in (0, 1):
        day_runs = [r for r in runs
                    if datetime.fromisoformat(r["window"]["start"]).date()
                    == (DAY0 + timedelta(days=day)).date()]  # fmt: skip
        index = int((DAY0 + timedelta(days=day)).timestamp()) // 86400
        rows = by[("rows", index)]
        assert rows.total == sum(r["rows"] for r in day_runs)
        assert rows.count == len(day_runs)
        shares = [r["dataset"]["drifted_share"] for r in day_runs]
        share = by[("dataset.drifted_share", index)]
        assert (share.low, share.high) == (min(shares), max(shares))
        assert share.mean == pytest.approx(sum(shares) / len(shares))
    assert by[("rows", int(DAY0.timestamp()) // 86400)].total == 50 + 30 + 60 + 70


def _store_calibrated(engine: Engine, run_id: int, verdicts: dict[str, dict[str, Any]]) -> None:
    """Give a stored run's features the calibrated verdict's fields (as the calibrated verdict
    computes them), so that the pages can be checked apart from the statistics."""
    with Session(engine) as session:
        run = session.get(Run, run_id)
        assert run is not None
        assert run.result is not None
        features = [f.model_copy(update=verdicts.get(f.name, {})) for f in run.result.features]
        run.result = run.result.model_copy(update={"features": features})
        session.commit()


def _page_data(html: str) -> dict[str, Any]:
    found = re.search(r'<script type="application/json" id="page-data">(.*?)</script>', html, re.S)
    assert found is not None
    data: dict[str, Any] = json.loads(found.group(1))
    return data


CALIBRATED = {
    "age": {"drifted": False, "verdict": "insufficient", "p_value": 0.41, "detectable": 0.23,
            "effect_interval": (0.0, 0.27)},
    "income": {"drifted": True, "verdict": "drift", "p_value": 0.0004, "detectable": 0.11,
               "effect_interval": (0.2, 0.4)},
    "state": {"drifted": False, "verdict": "no_drift", "p_value": 0.62, "detectable": 0.12,
              "effect_interval": (0.01, 0.05)},
}  # fmt: skip


def test_the_pages_show_the_budget_and_too_few_rows_apart_from_no_drift(
    api: TestClient, engine: Engine, settings: Settings
) -> None:
    model = create_model(api, features=FEATURES, window="1h", drift={
        "num_stattest": "wasserstein", "cat_stattest": "jensenshannon"})["name"]  # fmt: skip
    post(api, f"/api/v1/models/{model}/baselines",
         {"name": "b", "records": baseline_records(frame(300, seed=1))}, 201)  # fmt: skip
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
    post(api, f"/api/v1/models/{model}/predictions",
         {"records": records(frame(40, seed=2), prefix="w", start=start)})  # fmt: skip
    run = _run(api, model, start)
    _store_calibrated(engine, run["id"], CALIBRATED)
    with TestClient(create_app(settings, engine)) as browser:
        sign_in(browser, follow_redirects=False)
        page = browser.get(f"/models/{model}")
        feature = browser.get(f"/models/{model}/features/age")
        other = browser.get(f"/models/{model}/features/income")
    assert page.status_code == 200, page.text
    text = page.text
    # the budget: one false alarm a month over 720 hourly windows
    assert 'data-verdict="calibrated"' in text
    assert re.search(r"data-budget>1<", text), text
    assert re.search(r"data-alpha>0.001389<", text)
    assert "the budget over 720 windows a month" in text
    # per feature, how small a change the last window can detect, and its verdict
    table = text[text.index("data-detectable") :]
    assert re.search(r'data-column="age">.*?0\.23.*?not enough rows</span>', table, re.S)
    assert re.search(r'data-column="income">.*?0\.11.*?0\.0004.*?>drift</span>', table, re.S)
    assert re.search(r'data-column="state">.*?>no drift</span>', table, re.S)
    # the heatmap: the too-small window is its own kind of cell, with what it could detect
    heat = _page_data(text)["heatmap"]
    cells = {heat["features"][c[1]]: c for c in heat["cells"]}
    assert cells["age"][4:] == [0, cells["age"][5], 1, 0.23, 0.41, None]  # not drifted, too few
    # rows to tell; from rows: no bound
    assert cells["income"][4] == 1
    assert cells["income"][6] == 0
    assert cells["state"][6] == 0
    assert cells["state"][8] == 0.62
    assert heat["tests"][cells["age"][5]] == {"stattest": "wasserstein", "threshold": 0.1,
                                              "pvalue": False}  # fmt: skip
    # the feature page: the selected window's p-value, verdict, detectable and interval
    assert feature.status_code == 200, feature.text
    tile = {name: re.search(rf'data-tile="{name}">(.*?)</div></div>', feature.text, re.S)
            for name in ("p_value", "verdict", "detectable", "effect_interval")}  # fmt: skip
    assert all(tile.values()), feature.text
    shown = {name: re.sub(r"<[^>]+>", " ", found.group(1)) for name, found in tile.items() if found}
    assert "0.41" in shown["p_value"]
    assert "not enough rows" in shown["verdict"]
    assert "not enough rows to tell a change of 0.1 from noise" in feature.text
    assert "0.23" in shown["detectable"]
    assert "0 \u2013 0.27" in shown["effect_interval"]  # an en dash
    assert "data-insufficient" in feature.text
    assert "badge healthy" not in feature.text
    scores = _page_data(feature.text)["scores"]
    assert [p[3:] for p in scores[0]["points"]] == [[0, 1]]  # not drifted; too few rows
    assert "badge drifting" in other.text
    assert "data-insufficient" not in other.text


def test_a_model_under_evidently_s_rule_shows_no_budget(
    api: TestClient, engine: Engine, settings: Settings
) -> None:
    model = create_model(api, features=FEATURES, drift={"verdict": "evidently"})["name"]
    with TestClient(create_app(settings, engine)) as browser:
        sign_in(browser, follow_redirects=False)
        page = browser.get(f"/models/{model}")
    assert page.status_code == 200, page.text
    assert 'data-verdict="evidently"' in page.text
    assert "Verdict: Evidently&#39;s rule" in page.text or "Verdict: Evidently's rule" in page.text
    assert "data-budget" not in page.text
    assert "data-detectable" not in page.text


def test_the_model_page_lists_the_last_windows_versions_and_shadows(
    api: TestClient, engine: Engine, settings: Settings
) -> None:
    model = create_model(api, features=FEATURES, window="1h")["name"]
    post(api, f"/api/v1/models/{model}/baselines",
         {"name": "b", "records": baseline_records(frame(300, seed=1))}, 201)  # fmt: skip
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
    sent = records(frame(60, seed=2), prefix="w", start=start)
    for i, record in enumerate(sent):
        record["model_version"] = "v4" if i < 40 else "v4.1"
    post(api, f"/api/v1/models/{model}/predictions", {"records": sent})
    post(api, f"/api/v1/models/{model}/ground-truth", {"records": [
        {"prediction_id": r["prediction_id"], "label": int(r["prediction"] >= 0.5)}
        for r in sent]})  # fmt: skip
    post(api, f"/api/v1/models/{model}/shadow-predictions", {"records": [
        {"prediction_id": r["prediction_id"], "model_version": "v5",
         "prediction": 1 - r["prediction"]} for r in sent]})  # fmt: skip
    _run(api, model, start)
    with TestClient(create_app(settings, engine)) as browser:
        sign_in(browser, follow_redirects=False)
        page = browser.get(f"/models/{model}")
    assert page.status_code == 200, page.text
    table = page.text[page.text.index("data-versions") :]
    rows = re.findall(r'data-version="([^"]*)" data-role="(\w+)">(.*?)</tr>', table, re.S)
    assert [(v, role) for v, role, _ in rows] == [("v4", "served"), ("v4.1", "served"),
                                                   ("v5", "shadow")]  # fmt: skip
    served, _, shadow = (re.sub(r"<[^>]+>", " ", cells) for _, _, cells in rows)
    assert " 40 " in served
    assert " 1 " in served  # the served model's accuracy on its own labels
    assert " 0 " in shadow  # it never agrees: its classes are the served ones flipped
    assert "worse" in shadow  # -1 accuracy, its interval below 0
    over_time = _page_data(page.text)["versions"]
    assert over_time["metric"] == "accuracy"
    assert {name: [share for _, share in points]
            for name, points in over_time["served"].items()} == {
        "v4": [pytest.approx(40 / 60)], "v4.1": [pytest.approx(20 / 60)]}  # fmt: skip
    (delta,) = over_time["shadow"]["v5"]["value"]
    assert delta[1] == pytest.approx(-1.0)
    assert over_time["shadow"]["v5"]["upper"][0][1] < 0
    assert 'data-chart="versions"' in page.text


@pytest.mark.parametrize(
    ("p_value", "level", "past"),
    [(0.001, 1e-5, False), (1e-7, 1e-5, True), (0.001, None, True), (0.2, None, False)],
)
def test_a_p_value_is_drawn_against_the_level_that_judged_it(
    p_value: float, level: float | None, past: bool
) -> None:
    """Under the calibrated verdict a ks column drifts when its p-value passes the window's
    level (its ``detectable``), not ks's nominal 0.05: a p-value of 0.001 at a level of 1e-5
    is short of it in the heatmap's colour and in the score chart's threshold line; under
    Evidently's rule (no level) 0.05 judges."""
    from driftwatch.dashboard import service

    tested = repository.TestedBucket(
        feature="age", index=0, stattest="ks", threshold=0.05, low=p_value, high=p_value,
        drifted=past, runs=1, detectable=level,
    )  # fmt: skip
    found = service._intensity(tested)
    assert found is not None
    assert (found[0] >= 1) is past
    [series] = service._score_series([tested], 3600)
    assert series["points"][0][2] == (level if level is not None else 0.05)


def test_a_regression_model_page_carries_its_estimated_errors_and_their_band(
    api: TestClient, engine: Engine, settings: Settings
) -> None:
    """CONTRACT section 9 on the dashboard: the performance card's series for a regression
    model are its estimated mae and rmse with their bands, as the runs hold them."""
    model = create_model(api, task="regression", features=[{"name": "x", "kind": "numerical"}],
                         window="1h")["name"]  # fmt: skip
    rows = [{"features": {"x": i % 40}, "prediction": i % 40 * 2.0,
             "label": i % 40 * 2.0 + (i % 7 - 3) * (1 + i % 40 / 10)}
            for i in range(400)]  # fmt: skip
    post(api, f"/api/v1/models/{model}/baselines", {"name": "b", "records": rows}, 201)
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
    post(api, f"/api/v1/models/{model}/predictions", {"records": [
        {"prediction_id": f"r{i}", "timestamp": (start + timedelta(seconds=30 * i)).isoformat(),
         "features": {"x": i % 30}, "prediction": i % 30 * 2.0} for i in range(100)]})  # fmt: skip
    run = _run(api, model, start)
    assert run["estimated_reason"] is None
    with TestClient(create_app(settings, engine)) as browser:
        sign_in(browser, follow_redirects=False)
        page = browser.get(f"/models/{model}")
    assert page.status_code == 200, page.text
    assert "direct loss estimation" in page.text
    estimated = _page_data(page.text)["estimated"]
    assert set(estimated) == {"mae", "rmse"}
    for name in ("mae", "rmse"):
        ((_, value),) = estimated[name]["value"]
        ((_, lower),) = estimated[name]["lower"]
        ((_, upper),) = estimated[name]["upper"]
        found = run["estimated"][name]
        assert (value, lower, upper) == pytest.approx(
            (found["value"], found["lower"], found["upper"]))  # fmt: skip
