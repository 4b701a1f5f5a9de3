"""The dashboard in a real headless Chromium (Debian's ``chromium``, driven by Playwright; never a
downloaded browser): sign-in, every page, charts drawn with the data the API has, the time-range
picker, silencing, redelivery, Evidently's report; no console errors, no request leaving the
machine."""

from __future__ import annotations

import base64
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Engine

from driftwatch.alerting.dispatcher import Dispatcher
from driftwatch.app import create_app
from driftwatch.auth import service as keys
from driftwatch.config import Settings
from driftwatch.dashboard import service
from driftwatch.db import session_scope
from tests.conftest import ADMIN_KEY, LiveServer, start_server, wait_until
from tests.servers import Receiver, always

pytestmark = pytest.mark.slow  # a browser, a server or the command line in processes

CHROMIUM = os.environ.get("DRIFTWATCH_TEST_CHROMIUM", "/usr/bin/chromium")
playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
if not shutil.which(CHROMIUM):
    if os.environ.get("DRIFTWATCH_REQUIRE_BROWSER"):
        raise RuntimeError(f"no Chromium at {CHROMIUM}, and DRIFTWATCH_REQUIRE_BROWSER is set")
    pytest.skip(f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium; or set "
                "DRIFTWATCH_TEST_CHROMIUM)", allow_module_level=True)  # fmt: skip

SECRET = "whsec_" + base64.b64encode(b"dashboard-test-secret-32-bytes!!").decode()
WINDOWS, DRIFTING = 30, 10
FEATURES = [{"name": "age", "kind": "numerical"}, {"name": "income", "kind": "numerical"},
            {"name": "state", "kind": "categorical"}]  # fmt: skip
SHOTS = Path(os.environ.get("DRIFTWATCH_TEST_SCREENSHOTS", "")) if os.environ.get(
    "DRIFTWATCH_TEST_SCREENSHOTS") else None  # fmt: skip


def _records(rng: np.random.Generator, n: int, *, shift: float, start: datetime, prefix: str
             ) -> list[dict[str, Any]]:  # fmt: skip
    states = ["CA", "NY", "TX"] + (["WA"] if shift else [])
    return [{
        "prediction_id": f"{prefix}-{i}",
        "timestamp": (start + timedelta(seconds=i * 3600 / n)).isoformat(),
        "features": {"age": round(float(rng.normal(40 + 8 * shift, 10)), 1),
                     "income": round(float(rng.lognormal(10 + 0.3 * shift, 0.5)), 2),
                     "state": str(rng.choice(states))},
        "prediction": round(float(rng.random()), 4), "model_version": "v3",
    } for i in range(n)]  # fmt: skip


class Site:
    def __init__(self, server: LiveServer, api: TestClient, model: str, read_key: str,
                 ingest_key: str, receiver: Receiver) -> None:  # fmt: skip
        self.url, self.api, self.model = server.url, api, model
        self.read_key, self.ingest_key, self.receiver = read_key, ingest_key, receiver

    def runs(self) -> list[dict[str, Any]]:
        runs: list[dict[str, Any]] = self.api.get(f"/api/v1/models/{self.model}/runs").json()
        return sorted(runs, key=lambda r: r["window"]["start"])


@pytest.fixture(scope="module")
def site(
    settings: Settings, engine: Engine, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    """A model with 30 hourly windows up to now (the last 10 drifted), labels, runs, a firing
    alert and its delivered webhooks; served by a real server with a dispatcher."""
    receiver = Receiver(always())
    rules = tmp_path_factory.mktemp("dashboard-rules")
    os.environ["DW_DASHBOARD_SECRET"] = SECRET
    (rules / "rules.yaml").write_text(f"""
channels:
  pipeline:
    type: webhook
    url: {receiver.url}
    secret_env: DW_DASHBOARD_SECRET
rules:
  - name: drift
    model: "dash-*"
    when: dataset.drifted_share > 0.5
    for: 2
    severity: critical
    notify: [pipeline]
""")
    custom = settings.model_copy(update={
        "rules_dir": str(rules), "dispatcher_interval_seconds": 0.1,
        "slack_token": SecretStr("xoxb-unused"),
    })  # fmt: skip
    api = TestClient(create_app(custom, engine), headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    api.__enter__()
    model = f"dash-{uuid.uuid4().hex[:6]}"
    assert (
        api.post(
            "/api/v1/models",
            json={
                "name": model,
                "task": "binary_classification",
                "window": "1h",
                "features": FEATURES,
            },
        ).status_code
        == 201
    )
    rng = np.random.default_rng(5)
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    base = _records(rng, 1500, shift=0, start=now - timedelta(days=40), prefix="b")
    assert (
        api.post(
            f"/api/v1/models/{model}/baselines",
            json={
                "name": "training",
                "records": [
                    {
                        "features": r["features"],
                        "prediction": r["prediction"],
                        "label": int(r["prediction"] > 0.3),
                    }
                    for r in base
                ],
            },
        ).status_code
        == 201
    )
    for hours_ago in range(WINDOWS, 0, -1):
        start = now - timedelta(hours=hours_ago)
        batch = _records(rng, 400, shift=1.5 if hours_ago <= DRIFTING else 0, start=start,
                         prefix=f"w{hours_ago}")  # fmt: skip
        assert (
            api.post(f"/api/v1/models/{model}/predictions", json={"records": batch}).status_code
            == 200
        )
        labels = [{"prediction_id": r["prediction_id"], "label": int(r["prediction"] > 0.3)}
                  for r in batch[:300]]  # fmt: skip
        api.post(f"/api/v1/models/{model}/ground-truth", json={"records": labels})
        run = api.post(
            f"/api/v1/models/{model}/runs",
            json={"start": start.isoformat(), "end": (start + timedelta(hours=1)).isoformat()},
        )
        assert run.status_code == 200, run.text
    with session_scope(engine) as session:
        read_key = keys.create(session, name="viewer", scope="read")[1]
        ingest_key = keys.create(session, name="logger", scope="ingest")[1]
    dispatcher = Dispatcher(engine, custom, owner="dashboard-test")
    dispatcher.start()
    server = start_server(custom, engine)
    try:
        assert wait_until(lambda: len(receiver.accepted()) >= 1)
        yield Site(server, api, model, read_key, ingest_key, receiver)
    finally:
        server.stop()
        dispatcher.shutdown()
        api.__exit__(None, None, None)
        receiver.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync"],
        )  # fmt: skip
        yield launched
        launched.close()


class Tab:
    """A browser page that records console errors and any request leaving 127.0.0.1."""

    def __init__(self, browser: Any, site: Site) -> None:
        self.site = site
        self.context = browser.new_context(viewport={"width": 1400, "height": 1000})
        self.errors: list[str] = []
        self.outside: list[str] = []
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self._watch(self.page)

    def _watch(self, page: Any) -> None:
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(str(e)))

    def _route(self, route: Any) -> None:
        url = route.request.url
        if url.startswith(("http://127.0.0.1", "data:", "blob:", "about:")):
            route.continue_()
        else:
            self.outside.append(url)
            route.abort()

    def open(self, path: str) -> Any:
        self.page.goto(self.site.url + path)
        self.page.wait_for_selector("body[data-charts-ready=true]", timeout=15000)
        return self.page

    def sign_in(self, key: str) -> Any:
        self.page.goto(self.site.url + "/login")
        self.page.fill("#key", key)
        self.page.click("button[type=submit]")
        return self.page

    def chart(self, name: str) -> dict[str, Any]:
        option: dict[str, Any] = self.page.evaluate(
            "name => JSON.parse(JSON.stringify(window.driftwatch.charts[name].getOption()))", name
        )
        return option

    def shot(self, name: str) -> None:
        if SHOTS is not None:
            SHOTS.mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)

    def close(self) -> None:
        assert self.errors == [], self.errors
        assert self.outside == [], self.outside
        self.context.close()


@pytest.fixture
def tab(browser: Any, site: Site) -> Iterator[Tab]:
    opened = Tab(browser, site)
    yield opened
    opened.close()


def test_every_page_needs_a_session_and_the_right_key(tab: Tab, site: Site) -> None:
    for path in ("/", f"/models/{site.model}", f"/models/{site.model}/features/age", "/alerts",
                 "/deliveries"):  # fmt: skip
        tab.page.goto(site.url + path)
        assert tab.page.url.startswith(site.url + "/login?next="), path
    for key, message in (("dw_not-a-key", "not valid"), (site.ingest_key, "scope 'ingest'")):
        tab.sign_in(key)
        assert message in tab.page.inner_text(".error")
    tab.errors.clear()  # the browser logs the 401 of each refused sign-in: expected here
    tab.page.goto(site.url + f"/models/{site.model}")  # signing in comes back here
    tab.page.fill("#key", site.read_key)
    tab.page.click("button[type=submit]")
    tab.page.wait_for_url(f"**/models/{site.model}")
    assert "viewer · read" in tab.page.inner_text("header")
    tab.page.click("text=Sign out")
    tab.page.wait_for_url("**/login")
    tab.page.goto(site.url + "/")
    assert "/login" in tab.page.url


def test_the_models_page_shows_status_and_trend(tab: Tab, site: Site) -> None:
    tab.sign_in(ADMIN_KEY)
    page = tab.open("/")
    row = page.locator(f"tr[data-model='{site.model}']")
    assert row.locator(".badge").inner_text() == "alerting"
    assert "1 firing" in row.inner_text()
    runs = site.runs()
    trend = tab.chart(f"spark:{site.model}")["series"][0]["data"]
    assert [v for _, v in trend] == [r["dataset"]["drifted_share"] for r in runs]
    tab.shot("models")


def test_the_model_page_draws_heatmap_drift_accuracy_and_predictions(tab: Tab, site: Site) -> None:
    tab.sign_in(ADMIN_KEY)
    tab.open(f"/models/{site.model}")
    runs = site.runs()
    heat = tab.chart("heatmap")
    cells, drifted = heat["series"][0]["data"], heat["series"][1]["data"]
    assert len(heat["xAxis"][0]["data"]) == WINDOWS
    assert heat["yAxis"][0]["data"] == ["age", "income", "state"]
    assert len(cells) == WINDOWS * 3
    expected = {(x, y) for x, run in enumerate(runs) for y, f in enumerate(run["features"])
                if f["drifted"]}  # fmt: skip
    assert {(c[0], c[1]) for c in drifted} == expected
    assert all(
        x >= WINDOWS - DRIFTING
        for x, _ in expected - {(x, y) for x, y in expected if x < WINDOWS - DRIFTING}
    )
    share = tab.chart("drift")["series"][0]["data"]
    assert [v for _, v in share] == pytest.approx([r["dataset"]["drifted_share"] for r in runs])
    accuracy = {s["name"]: s["data"] for s in tab.chart("accuracy")["series"]}
    assert [v for _, v in accuracy["f1"]] == pytest.approx([r["accuracy"]["f1"] for r in runs])
    assert [v for _, v in accuracy["labeled"]] == pytest.approx([0.75] * WINDOWS)
    prediction = tab.chart("prediction")["series"]
    assert sum(prediction[1]["data"]) == pytest.approx(1.0)  # shares of the last window
    tab.shot("model")


def test_the_model_page_draws_the_estimate_its_band_the_realized_metric_and_coverage(
    tab: Tab, site: Site
) -> None:
    tab.sign_in(ADMIN_KEY)
    page = tab.open(f"/models/{site.model}")
    runs = site.runs()
    chart = {s["name"]: s["data"] for s in tab.chart("performance")["series"]}
    auc = [r["estimated"]["roc_auc"] for r in runs]
    assert [v for _, v in chart["estimated"]] == pytest.approx([e["value"] for e in auc])
    assert [v for _, v in chart["band-low"]] == pytest.approx([e["lower"] for e in auc])
    assert [v for _, v in chart["95% band"]] == pytest.approx(
        [e["upper"] - e["lower"] for e in auc])  # fmt: skip
    assert [v for _, v in chart["realized"]] == pytest.approx(
        [r["accuracy"]["roc_auc"] for r in runs])  # fmt: skip
    assert [v for _, v in chart["labeled"]] == pytest.approx([0.75] * WINDOWS)
    assert page.locator("#estimated-metric option").all_inner_texts() == [
        "roc_auc", "accuracy", "f1", "precision", "recall"]  # fmt: skip
    page.select_option("#estimated-metric", "f1")
    switched = {s["name"]: s["data"] for s in tab.chart("performance")["series"]}
    assert [v for _, v in switched["estimated"]] == pytest.approx(
        [r["estimated"]["f1"]["value"] for r in runs])  # fmt: skip
    shot = page.locator("#chart-performance").screenshot()
    assert len(shot) > 5000  # drawn, not blank
    if SHOTS is not None:
        (SHOTS / "model-performance.png").write_bytes(shot)


def test_the_time_range_picker_narrows_every_chart(tab: Tab, site: Site) -> None:
    tab.sign_in(ADMIN_KEY)
    page = tab.open(f"/models/{site.model}")
    page.click("a[data-range='24h']")
    page.wait_for_url("**range=24h")
    page.wait_for_selector("body[data-charts-ready=true]")
    assert page.locator("a[data-range='24h']").get_attribute("class") == "on"
    in_range = [r for r in site.runs()
                if datetime.fromisoformat(r["window"]["start"]) >= datetime.now(UTC)
                - timedelta(days=1)]  # fmt: skip
    assert len(tab.chart("heatmap")["xAxis"][0]["data"]) == len(in_range)
    assert len(tab.chart("drift")["series"][0]["data"]) == len(in_range)
    # a custom range: the four drifted windows before the last six
    runs = site.runs()
    start, end = runs[-10]["window"]["start"][:16], runs[-7]["window"]["end"][:16]
    page.fill("input[name=start]", start)
    page.fill("input[name=end]", end)
    page.click("text=Apply")
    page.wait_for_selector("body[data-charts-ready=true]")
    assert len(tab.chart("heatmap")["xAxis"][0]["data"]) == 4


def test_the_feature_page_compares_distributions(tab: Tab, site: Site) -> None:
    tab.sign_in(ADMIN_KEY)
    tab.open(f"/models/{site.model}/features/age")
    runs = site.runs()
    bars = tab.chart("distribution")
    assert len(bars["xAxis"][0]["data"]) == 22  # 20 bins and the two sides out of range
    assert sum(bars["series"][0]["data"]) == pytest.approx(1.0)
    assert sum(bars["series"][1]["data"]) == pytest.approx(1.0)
    ages = [next(f for f in r["features"] if f["name"] == "age") for r in runs]
    assert {a["stattest"] for a in ages} == {"wasserstein"}
    score, threshold = tab.chart("score")["series"]
    assert score["name"] == "wasserstein distance"
    assert [p["value"][1] for p in score["data"]] == pytest.approx([a["score"] for a in ages])
    assert [v for _, v in threshold["data"]] == [a["threshold"] for a in ages]
    tab.shot("feature-age")
    tab.open(f"/models/{site.model}/features/state")
    categories = tab.chart("distribution")["xAxis"][0]["data"]
    assert set(categories) == {"CA", "NY", "TX", "WA"}  # WA: new in the drifted windows
    assert "WA" in tab.page.inner_text(".tiles")


def test_an_alert_is_silenced_from_the_page(tab: Tab, site: Site) -> None:
    tab.sign_in(ADMIN_KEY)
    page = tab.open("/alerts")
    firing = site.api.get("/api/v1/alerts", params={"model": site.model, "state": "firing"}).json()
    row = page.locator(f"tr[data-alert='{firing[0]['id']}']")
    row.locator("input[name=reason]").fill("known shift: new state launched")
    row.locator("button", has_text="Silence").click()
    page.wait_for_selector("body[data-charts-ready=true]")
    assert "silenced until" in page.locator(f"tr[data-alert='{firing[0]['id']}']").inner_text()
    silences = site.api.get("/api/v1/silences").json()
    assert any(s["model"] == site.model and s["rule"] == "drift"
               and s["reason"] == "known shift: new state launched" for s in silences)  # fmt: skip
    tab.shot("alerts")


def test_a_delivery_is_redelivered_from_the_page(tab: Tab, site: Site) -> None:
    tab.sign_in(ADMIN_KEY)
    page = tab.open("/deliveries")
    delivery = site.api.get("/api/v1/deliveries", params={"status": "delivered"}).json()[0]
    before = len(site.receiver.received())
    page.locator(f"tr[data-delivery='{delivery['id']}'] button", has_text="Redeliver").click()
    page.wait_for_selector("body[data-charts-ready=true]")
    assert wait_until(lambda: len(site.receiver.received()) == before + 1)
    assert site.receiver.received()[-1].headers["webhook-id"] == delivery["webhook_id"]
    assert wait_until(
        lambda: len(site.api.get(f"/api/v1/deliveries/{delivery['id']}").json()["attempt_log"]) == 2
    )
    page.reload()
    page.locator(f"tr[data-delivery='{delivery['id']}'] + tr.attempts summary").click()
    assert "#2" in page.locator(f"tr[data-delivery='{delivery['id']}'] + tr.attempts").inner_text()
    tab.shot("deliveries")


def test_a_read_key_sees_everything_and_changes_nothing(tab: Tab, site: Site) -> None:
    tab.sign_in(site.read_key)
    page = tab.open("/deliveries")
    assert page.locator("button", has_text="Redeliver").count() == 0
    page = tab.open("/alerts?state=all")
    assert page.locator("button", has_text="Silence").count() == 0
    alert_id = site.api.get("/api/v1/alerts").json()[0]["id"]
    response = page.request.post(site.url + f"/alerts/{alert_id}/silence",
                                 form={"csrf": "forged", "duration": "1h"})  # fmt: skip
    assert response.status == 403


def test_evidently_report_opens_for_a_window(tab: Tab, site: Site) -> None:
    tab.sign_in(ADMIN_KEY)
    page = tab.open(f"/models/{site.model}")
    with tab.context.expect_page() as opened:
        page.locator("a[data-evidently]").first.click()
    report = opened.value
    tab._watch(report)
    report.wait_for_load_state("load")
    report.wait_for_function("document.body.innerText.includes('Drift')", timeout=60000)
    text = report.inner_text("body")
    assert "age" in text
    assert "state" in text


# -- what the pages show: each run by its own test, ranges that fit the model, what is missing --


def _new_model(site: Site, *, window: str = "1h", baseline_rows: int | None = 600,
               prefix: str = "view") -> str:  # fmt: skip
    """A model (not matched by the site's alert rule) with a baseline of ``baseline_rows``
    records: at most 1,000 rows make Evidently's rule choose p-value tests (ks, chisquare)."""
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    created = site.api.post(
        "/api/v1/models",
        json={
            "name": name,
            "task": "binary_classification",
            "window": window,
            "features": FEATURES,
        },
    )
    assert created.status_code == 201, created.text  # fmt: skip
    if baseline_rows:
        rng = np.random.default_rng(11)
        base = _records(rng, baseline_rows, shift=0, start=datetime(2026, 1, 1, tzinfo=UTC),
                        prefix="b")  # fmt: skip
        answer = site.api.post(f"/api/v1/models/{name}/baselines", json={
            "name": "training",
            "records": [{"features": r["features"], "prediction": r["prediction"]} for r in base],
        })  # fmt: skip
        assert answer.status_code == 201, answer.text
    return name


def _window(site: Site, name: str, start: datetime, length: timedelta, *, shift: float = 0,
            rows: int = 200, seed: int = 0) -> dict[str, Any]:  # fmt: skip
    """Predictions spread over one window, and its run computed."""
    rng = np.random.default_rng(seed)
    batch = _records(rng, rows, shift=shift, start=start, prefix=f"{start.timestamp():.0f}")
    for record, moment in zip(batch, np.linspace(0, length.total_seconds(), rows,
                                                 endpoint=False), strict=True):  # fmt: skip
        record["timestamp"] = (start + timedelta(seconds=float(moment))).isoformat()
    sent = site.api.post(f"/api/v1/models/{name}/predictions", json={"records": batch})
    assert sent.status_code == 200, sent.text
    assert sent.json()["accepted"] == rows, sent.text
    run = site.api.post(
        f"/api/v1/models/{name}/runs",
        json={"start": start.isoformat(), "end": (start + length).isoformat()},
    )
    assert run.status_code == 200, run.text  # fmt: skip
    result: dict[str, Any] = run.json()
    return result


def _tooltip(tab: Tab, chart: str, argument: Any) -> str:
    """What the chart's own tooltip formatter writes for ``argument`` (as ECharts passes it)."""
    text: str = tab.page.evaluate(
        "([name, arg]) => window.driftwatch.charts[name].getOption().tooltip[0].formatter(arg)",
        [chart, argument],
    )
    return text


def test_each_cell_and_score_is_read_with_its_own_runs_test_and_threshold(
    tab: Tab, site: Site
) -> None:
    """Windows computed with ks (p-values), then num_stattest switched to psi (a distance):
    every heatmap cell and score point uses its own run's test, threshold and verdict."""
    name = _new_model(site, baseline_rows=1000)
    hour = timedelta(hours=1)
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    runs = []
    for hours_ago, shift in zip(range(6, 0, -1), (0, 0, 1.5, 0, 1.5, 0), strict=True):
        if hours_ago == 3:
            patched = site.api.patch(
                f"/api/v1/models/{name}", json={"drift": {"num_stattest": "psi"}}
            )
            assert patched.status_code == 200, patched.text  # fmt: skip
        runs.append(_window(site, name, now - hours_ago * hour, hour, shift=shift, rows=800,
                            seed=hours_ago))  # fmt: skip
    tests = [{f["name"]: f["stattest"] for f in run["features"]} for run in runs]
    assert [t["age"] for t in tests] == ["ks"] * 3 + ["psi"] * 3
    verdicts = [run["features"][0]["drifted"] for run in runs]
    assert verdicts == [False, False, True, False, True, False]

    tab.sign_in(ADMIN_KEY)
    tab.open(f"/models/{name}")
    heat = tab.chart("heatmap")
    assert len(heat["xAxis"][0]["data"]) == 6
    intensity = {(c[0], c[1]): c[2] for c in heat["series"][0]["data"]}
    dots = {(c[0], c[1]) for c in heat["series"][1]["data"]}
    for x, run in enumerate(runs):
        for y, feature in enumerate(run["features"]):
            assert (intensity[x, y] >= 1) == feature["drifted"], (x, feature)
            assert ((x, y) in dots) == feature["drifted"], (x, feature)
            text = _tooltip(tab, "heatmap", {"value": [x, y]})
            assert f"{feature['stattest']}: " in text, text
            assert f"threshold {feature['threshold']:g})" in text, text
            assert ("drifted" in text) == feature["drifted"], text
    tab.shot("heatmap-tests-switched")

    tab.open(f"/models/{name}/features/age")
    series = {s["name"]: s for s in tab.chart("score")["series"]}
    assert set(series) == {"ks p-value", "ks threshold", "psi distance", "psi threshold"}
    for test, chosen in (("ks p-value", runs[:3]), ("psi distance", runs[3:])):
        ages = [r["features"][0] for r in chosen]
        points = series[test]["data"]
        assert [p["value"][1] for p in points] == pytest.approx([a["score"] for a in ages])
        assert [p["drifted"] for p in points] == [int(a["drifted"]) for a in ages]
        line = series[test.split()[0] + " threshold"]["data"]
        # a p-value under the calibrated verdict against the level that judged it
        judged = [a["detectable"] if test.startswith("ks") and a.get("detectable")
                  else a["threshold"] for a in ages]  # fmt: skip
        assert [v for _, v in line] == pytest.approx(judged)
    axes = tab.chart("score")["yAxis"]
    assert [a["type"] for a in axes] == ["log", "value"]  # p-values on a log axis
    text = _tooltip(tab, "score", [{"value": series["psi distance"]["data"][1]["value"],
                                    "seriesName": "psi distance", "marker": "",
                                    "data": series["psi distance"]["data"][1]}])  # fmt: skip
    assert "psi distance: " in text
    assert "drifted" in text
    tab.shot("feature-tests-switched")


def test_columns_of_several_windows_show_the_share_of_windows_drifted(tab: Tab, site: Site) -> None:
    """30 days of hourly windows draw two windows a column: each column is the share of its
    windows that drifted (each by its own run's verdict), all runs counted."""
    tab.sign_in(ADMIN_KEY)
    tab.open(f"/models/{site.model}?range=30d")
    runs = site.runs()
    columns: dict[int, list[dict[str, Any]]] = {}
    for run in runs:
        index = int(datetime.fromisoformat(run["window"]["start"]).timestamp()) // 7200
        columns.setdefault(index, []).append(run)
    heat = tab.chart("heatmap")
    times = heat["xAxis"][0]["data"]
    assert len(times) == len(columns)
    cells = {(c[0], c[1]): c[2] for c in heat["series"][0]["data"]}
    for x, index in enumerate(sorted(columns)):
        for y in range(3):
            verdicts = [r["features"][y]["drifted"] for r in columns[index]]
            assert cells[x, y] == pytest.approx(sum(verdicts) / len(verdicts))
    text = _tooltip(tab, "heatmap", {"value": [0, 0]})
    assert "of 2 windows" in text or "of 1 window" in text, text
    assert "per 2h" in tab.page.inner_text("section.card h2")

    tab.open(f"/models/{site.model}/features/age?range=30d")
    shares = tab.chart("score")["series"][0]["data"]
    expected = [sum(r["features"][0]["drifted"] for r in columns[i]) / len(columns[i])
                for i in sorted(columns)]  # fmt: skip
    assert [v for _, v, _ in shares] == pytest.approx(expected)


@pytest.mark.parametrize(
    ("window", "offered", "default"),
    [
        (10, ["5m", "30m", "1h", "6h"], "30m"),
        (60, ["30m", "1h", "6h", "24h"], "6h"),
        (900, ["6h", "24h", "7d", "30d", "365d"], "24h"),
        (3600, ["24h", "7d", "30d", "90d", "365d"], "7d"),
        (86400, ["30d", "90d", "365d"], "365d"),
    ],
)
def test_presets_fit_the_window(window: int, offered: list[str], default: str) -> None:
    assert service.presets(window) == offered
    assert service.default_preset(window) == default
    windows = service.PRESETS[default].total_seconds() / window
    assert service.bucket_seconds(window, service.PRESETS[default]) == window or windows > 366


def test_the_default_range_holds_the_newest_windows_with_data(tab: Tab, site: Site) -> None:
    """A model backfilled with data of three weeks ago: its page shows those windows (7 days
    ending at the newest one), and says there is nothing since."""
    name = _new_model(site)
    hour = timedelta(hours=1)
    newest = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=21)
    for hours_ago in range(5, 0, -1):
        _window(site, name, newest - hours_ago * hour, hour, seed=hours_ago)
    tab.sign_in(ADMIN_KEY)
    page = tab.open(f"/models/{name}")
    assert len(tab.chart("heatmap")["xAxis"][0]["data"]) == 5
    assert len(tab.chart("heatmap")["series"][0]["data"]) == 5 * 3
    assert len(tab.chart("drift")["series"][0]["data"]) == 5
    assert page.input_value("input[name=end]") == newest.strftime("%Y-%m-%dT%H:%M")
    start = datetime.fromisoformat(page.input_value("input[name=start]")).replace(tzinfo=UTC)
    assert newest - start == timedelta(days=7)
    note = page.inner_text("[data-range-note]")
    assert f"No data since {newest:%Y-%m-%d %H:%M} UTC" in note
    assert "the 7d up to then" in note
    assert [a.inner_text() for a in page.locator("a[data-range]").all()] == service.presets(3600)
    assert page.locator("a[data-range].on").count() == 0  # a preset's link ends now
    assert "windows of 1h" in page.inner_text(".head")
    tab.shot("backfilled")
    page = tab.open(f"/models/{name}/features/age")
    score = tab.chart("score")["series"][0]["data"]
    assert len(score) == 5


def test_windows_of_seconds_read_as_set(tab: Tab, site: Site) -> None:
    """10-second windows (the demo's): ranges of minutes, window times with seconds."""
    name = _new_model(site, window="10s")
    second = timedelta(seconds=10)
    first = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=20)
    for n in range(3):
        _window(site, name, first + n * second, second, rows=60, seed=n)
    tab.sign_in(ADMIN_KEY)
    page = tab.open(f"/models/{name}")
    head = page.inner_text(".head")
    assert "windows of 10s" in head
    assert "0 min" not in head
    assert [a.inner_text() for a in page.locator("a[data-range]").all()] == [
        "5m", "30m", "1h", "6h"]  # fmt: skip
    assert len(tab.chart("heatmap")["xAxis"][0]["data"]) == 3
    labels = tab.page.evaluate("""() => {
        const axis = window.driftwatch.charts.heatmap.getOption().xAxis[0];
        return axis.data.map((v) => axis.axisLabel.formatter(v)); }""")
    assert labels == [f"{first + n * second:%m-%d %H:%M:%S}" for n in range(3)]
    newest = first + 3 * second
    rows = page.locator("table.runs tbody tr").all_inner_texts()
    assert rows[0].startswith(f"{newest - second:%Y-%m-%d %H:%M:%S} UTC → {newest:%H:%M:%S}")
    assert f"No data since {newest:%Y-%m-%d %H:%M:%S} UTC" in page.inner_text("[data-range-note]")
    assert page.input_value("input[name=end]") == f"{newest:%Y-%m-%dT%H:%M:%S}"
    page.click("a[data-range='5m']")
    page.wait_for_selector("body[data-charts-ready=true]")
    assert page.locator("a[data-range='5m']").get_attribute("class") == "on"
    page = tab.open("/")
    row = page.locator(f"tr[data-model='{name}']")
    assert f"{newest:%Y-%m-%d %H:%M:%S} UTC" in row.inner_text()
    tab.shot("ten-second-windows")


def test_a_window_without_a_score_says_why(tab: Tab, site: Site) -> None:
    """An empty window's run has no test: the feature page says so (never 'None'), and a
    drifted window's tiny p-values are labelled readably on the log axis."""
    name = _new_model(site)
    hour = timedelta(hours=1)
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    _window(site, name, now - 3 * hour, hour, shift=3, seed=1)
    empty = site.api.post(f"/api/v1/models/{name}/runs", json={
        "start": (now - 2 * hour).isoformat(), "end": (now - hour).isoformat()})  # fmt: skip
    assert empty.status_code == 200, empty.text
    assert empty.json()["rows"] == 0
    tab.sign_in(ADMIN_KEY)
    page = tab.open(f"/models/{name}/features/age?run={empty.json()['id']}")
    text = page.inner_text("main")
    assert "None" not in text
    assert "not tested (the window held no predictions)" in page.inner_text("[data-entry]")
    assert page.locator(".tile .value").first.inner_text() == "\N{EN DASH}"
    axis = tab.chart("score")["yAxis"][0]
    assert axis["type"] == "log"
    assert tab.chart("score")["grid"][0]["containLabel"] is True
    labels = page.evaluate("""() => {
        const axis = window.driftwatch.charts.score.getOption().yAxis[0];
        return [1e-10, 1e-3, 0.01, 1].map((v) => axis.axisLabel.formatter(v)); }""")
    assert labels == ["1e-10", "0.001", "0.01", "1"]
    tab.shot("feature-empty-window")


def test_pages_fit_a_narrow_screen(tab: Tab, site: Site) -> None:
    """At 400 px wide no page is wider than the screen: wide tables scroll inside it."""
    tab.page.set_viewport_size({"width": 400, "height": 900})
    tab.sign_in(ADMIN_KEY)
    for path in ("/", f"/models/{site.model}", f"/models/{site.model}/features/age",
                 "/alerts?state=all", "/deliveries"):  # fmt: skip
        page = tab.open(path)
        width = page.evaluate("() => document.documentElement.scrollWidth")
        assert width <= 400, (path, width)
        tab.shot("narrow" + path.replace("/", "-").split("?")[0])
    page = tab.open("/")
    scrolls = page.evaluate("""() => { const box = document.querySelector('.table-scroll');
        return box.scrollWidth > box.clientWidth && getComputedStyle(box).overflowX; }""")
    assert scrolls == "auto"


def test_error_pages_keep_the_navigation(tab: Tab, site: Site) -> None:
    tab.sign_in(site.read_key)
    for path, message in ((f"/models/{site.model}-gone", "does not exist"),
                          (f"/models/{site.model}/features/nope", "has no feature 'nope'"),
                          ("/no-such-page", "there is no such page")):  # fmt: skip
        answer = tab.page.goto(site.url + path)
        assert answer.status == 404, path
        assert message in tab.page.inner_text("main"), path
        assert tab.page.locator("header nav a", has_text="Alerts").count() == 1, path
        assert "viewer · read" in tab.page.inner_text("header")
    tab.errors.clear()  # the browser logs each 404: expected here
    api = site.api.get("/api/v1/no-such-thing")
    assert api.status_code == 404
    assert api.json() == {"detail": "Not Found"}
    tab.page.click("text=Sign out")
    tab.page.goto(site.url + "/no-such-page")
    assert tab.page.locator("header nav").count() == 0
    assert tab.page.locator("main a", has_text="Sign in").count() == 1
    tab.errors.clear()


def test_the_pages_say_what_a_new_model_is_missing(tab: Tab, site: Site) -> None:
    """No baseline, then no predictions, then a first window still open: each page says what is
    missing, with the exact call; the from-traffic baseline call it shows works."""
    name = _new_model(site, baseline_rows=None)
    tab.sign_in(ADMIN_KEY)
    page = tab.open(f"/models/{name}")
    setup = page.locator("[data-setup=baseline]")
    assert "Upload a baseline" in setup.inner_text()
    commands = setup.locator("pre").all_inner_texts()
    assert len(commands) == 1
    assert f"/api/v1/models/{name}/baselines" in commands[0]
    assert "-F name=training -F file=@training.csv" in commands[0]
    page = tab.open("/")
    assert "no baseline yet" in page.inner_text(f"tr[data-model='{name}']")

    now = datetime.now(UTC)
    rng = np.random.default_rng(3)
    batch = _records(rng, 50, shift=0, start=now - timedelta(minutes=1), prefix="p")
    for record in batch:
        record["timestamp"] = now.isoformat()
    assert site.api.post(f"/api/v1/models/{name}/predictions",
                         json={"records": batch}).status_code == 200  # fmt: skip
    page = tab.open(f"/models/{name}")
    commands = page.locator("[data-setup=baseline] pre").all_inner_texts()
    assert len(commands) == 2  # and the traffic so far as a baseline
    body = json.loads(commands[1].split("-d '", 1)[1].rstrip("'"))
    made = site.api.post(f"/api/v1/models/{name}/baselines", json=body)
    assert made.status_code == 201, made.text
    assert made.json()["rows"] == 50

    closes = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    page = tab.open(f"/models/{name}")
    waiting = page.inner_text("[data-setup='first window']")
    assert f"closes at {closes:%Y-%m-%d %H:%M} UTC" in waiting
    page = tab.open("/")
    assert f"first window closes at {closes:%Y-%m-%d %H:%M} UTC" in page.inner_text(
        f"tr[data-model='{name}']")  # fmt: skip

    other = _new_model(site)
    page = tab.open(f"/models/{other}")
    sdk = page.inner_text("[data-setup=predictions]")
    assert "No predictions yet" in sdk
    assert f'client.log_prediction("{other}", features={{"age": ..., "income": ..., ' in sdk
    assert "no predictions yet" in tab.open("/").inner_text(f"tr[data-model='{other}']")
    tab.shot("missing-predictions")


# -- hostile strings from traffic, rules and receivers: every page shows them as text ----------

SCRIPT = "</script><script>window.__pwned=1</script>"
IMG = "<img src=x onerror=window.__pwned=1>"
HOSTILE_FEATURES = [{"name": SCRIPT, "kind": "categorical"}, {"name": IMG, "kind": "numerical"},
                    {"name": "income/month", "kind": "numerical"},
                    {"name": "..", "kind": "numerical"}]  # fmt: skip
# every violation of the page's policy, and anything a hostile string might open
WATCH = """() => {
  window.__violations = [];
  document.addEventListener("securitypolicyviolation",
    (e) => window.__violations.push(`${e.violatedDirective} ${e.blockedURI}`));
}"""


class HostileReceiver(Receiver):
    """A webhook receiver whose error answers are markup (shown in the delivery attempts)."""

    def answer(self, path: str, body: bytes, status: int, number: int) -> bytes:
        return f'{{"error": "{IMG}{SCRIPT}"}}'.encode() if status >= 300 else b"{}"


@pytest.fixture(scope="module")
def hostile_site(
    settings: Settings, engine: Engine, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    """A model whose feature names, categorical values and baseline name are markup, alerted by
    a rule and a channel named with markup, delivered to a receiver that first answers 500 with
    markup; signed in with a key named with markup."""
    receiver = HostileReceiver(lambda number: (500, {}) if number == 0 else (200, {}))
    rules = tmp_path_factory.mktemp("hostile-rules")
    os.environ["DW_DASHBOARD_SECRET"] = SECRET
    (rules / "rules.yaml").write_text(json.dumps({
        "channels": {IMG: {"type": "webhook", "url": receiver.url,
                           "secret_env": "DW_DASHBOARD_SECRET"}},
        "rules": [{"name": SCRIPT + IMG, "model": "hostile-*", "when": "dataset.drifted_share > 0",
                   "for": 1, "severity": "critical", "notify": [IMG]}],
    }))  # fmt: skip
    custom = settings.model_copy(update={"rules_dir": str(rules),
                                         "dispatcher_interval_seconds": 0.1})  # fmt: skip
    api = TestClient(create_app(custom, engine), headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    api.__enter__()
    model = f"hostile-{uuid.uuid4().hex[:6]}"
    body = {"name": model, "task": "binary_classification", "window": "1h",
            "features": HOSTILE_FEATURES}  # fmt: skip
    made = api.post("/api/v1/models", json=body)
    assert made.status_code == 201, made.text
    rng = np.random.default_rng(9)

    def records(n: int, start: datetime, shift: float) -> list[dict[str, Any]]:
        values = [SCRIPT, IMG, "CA"] if shift else ["CA", "NY"]
        return [{"prediction_id": f"{start:%H}-{i}", "features": {
                    SCRIPT: values[i % len(values)], IMG: float(rng.normal(40 + 9 * shift, 5)),
                    "income/month": float(rng.normal(10 + shift, 2)), "..": float(i % 7)},
                 "timestamp": (start + timedelta(seconds=i * 3600 / n)).isoformat(),
                 "prediction": round(float(rng.random()), 3)} for i in range(n)]  # fmt: skip

    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    base = records(300, now - timedelta(days=3), 0)
    answer = api.post(f"/api/v1/models/{model}/baselines", json={"name": IMG, "records": [
        {"features": r["features"], "prediction": r["prediction"]} for r in base]})  # fmt: skip
    assert answer.status_code == 201, answer.text
    for hours_ago in range(4, 0, -1):
        start = now - timedelta(hours=hours_ago)
        batch = records(150, start, 1.0 if hours_ago <= 2 else 0)
        sent = api.post(f"/api/v1/models/{model}/predictions", json={"records": batch})
        assert sent.status_code == 200, sent.text
        span = {"start": start.isoformat(), "end": (start + timedelta(hours=1)).isoformat()}
        run = api.post(f"/api/v1/models/{model}/runs", json=span)
        assert run.status_code == 200, run.text
    with session_scope(engine) as session:
        key = keys.create(session, name=IMG, scope="admin")[1]
    dispatcher = Dispatcher(engine, custom, owner="hostile-test")
    dispatcher.start()
    server = start_server(custom, engine)
    try:
        assert wait_until(lambda: len(receiver.accepted()) >= 1)  # after a refused attempt
        yield Site(server, api, model, key, key, receiver)
    finally:
        server.stop()
        dispatcher.shutdown()
        api.__exit__(None, None, None)
        receiver.close()


def _hover_every_chart(page: Any, charts: str = "[data-chart]", most: int | None = None) -> int:
    """Moves the mouse over a grid of points of every chart (the first ``most``); how many
    times a tooltip showed."""
    seen = 0
    for box in [el.bounding_box() for el in page.locator(charts).all()[:most]]:
        if not box:
            continue
        # a 6 x 3 grid: every axis tooltip shows anywhere along its x axis, and a heatmap's
        # rows are crossed at three heights (each move costs a frame and a look at the page)
        for i in range(1, 7):
            for j in range(1, 4):
                page.mouse.move(box["x"] + box["width"] * i / 7, box["y"] + box["height"] * j / 4)
                page.wait_for_timeout(15)
                seen += page.evaluate("""() => [...document.querySelectorAll(
                    'div[style*="z-index: 9999999"]')].filter(
                    (d) => d.style.position === 'absolute' && d.style.display !== 'none').length""")
    return seen


@pytest.mark.timeout(600)
def test_hostile_strings_from_traffic_rules_and_receivers_run_no_script(
    browser: Any, hostile_site: Site
) -> None:
    site = hostile_site
    tab = Tab(browser, site)
    dialogs: list[str] = []
    tab.context.add_init_script(f"({WATCH})()")
    tab.context.on("page", lambda p: p.on("dialog", lambda d: (dialogs.append(d.message),
                                                                 d.dismiss())))  # fmt: skip
    tab.page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    tab.sign_in(site.read_key)
    features = [f["name"] for f in HOSTILE_FEATURES]
    model = f"/models/{site.model}"
    # each feature page as the model page links it (a browser resolves the links)
    links = tab.open(model).locator("a[href*='/feature']")
    assert sorted(links.all_inner_texts()) == sorted(features)
    pages = ["/", model, "/alerts?state=all", "/deliveries", "/no-such-page",
             *[link.get_attribute("href") for link in links.all()]]  # fmt: skip
    tooltips = 0
    for path in pages:
        page = tab.open(path) if path != "/no-such-page" else tab.page
        if path == "/no-such-page":
            page.goto(site.url + path)
        if "/feature" in path:  # the feature's own page, whatever its name
            heading = page.evaluate("() => document.querySelector('h1').firstChild.textContent")
            assert heading.strip() in features, path
        if path == "/deliveries":
            for summary in page.locator("tr.attempts summary").all():
                summary.click()
            assert IMG + SCRIPT in page.inner_text("main")  # the receiver's body, as text
        if path == "/alerts?state=all":
            assert SCRIPT + IMG in page.inner_text("main")  # the rule's name, as text
            page.locator("input[name=reason]").first.fill(IMG + SCRIPT)  # a silence's reason
            page.locator("button", has_text="Silence").first.click()
            page.wait_for_selector("body[data-charts-ready=true]")
            assert IMG + SCRIPT in page.inner_text("main")
        tooltips += _hover_every_chart(page)
        tab.shot("hostile" + path.replace("/", "-").split("?")[0][:40])
        assert page.evaluate("() => window.__pwned") is None, path
        assert page.evaluate("() => window.__violations") == [], path
        assert page.locator("img").count() == 0, path
    assert tooltips > 0  # the charts' tooltips did show
    # the feature named "..": its window picker (a script of the page's, no inline handler) and
    # its range links keep the feature
    dots = next(path for path in pages if path.endswith("feature=.."))
    page = tab.open(dots)
    other = page.locator("select[name=run] option").nth(1).get_attribute("value")
    page.select_option("select[name=run]", other)
    page.wait_for_url(f"**run={other}")
    page.wait_for_selector("body[data-charts-ready=true]")
    assert "feature=.." in page.url
    assert page.evaluate("() => document.querySelector('h1').firstChild.textContent") == ".. "
    page.click("a[data-range='24h']")
    page.wait_for_url("**range=24h")
    assert "feature=.." in page.url
    # the heatmap's tooltip shows a feature named with markup as its name
    page = tab.open(model)
    heat = page.locator("[data-chart=heatmap]").bounding_box()
    shown = ""
    for row in range(len(features)):
        y = heat["y"] + 10 + (heat["height"] - 80) * (row + 0.5) / len(features)
        page.mouse.move(heat["x"] + heat["width"] * 0.6, y)
        page.wait_for_timeout(100)
        shown += page.evaluate("""() => [...document.querySelectorAll('div')].filter((d) =>
            d.style.zIndex === '9999999').map((d) => d.innerText).join(' ')""")
    assert IMG in shown, shown
    assert SCRIPT in shown, shown
    # Evidently's report: in its sandbox, drawn, and nothing of the data ran
    run = site.api.get(f"/api/v1/models/{site.model}/runs").json()[0]
    report = tab.context.new_page()
    tab._watch(report)
    report.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    report.goto(site.url + f"{model}/evidently?run={run['id']}")
    report.wait_for_function("document.body.innerText.includes('Drift')", timeout=60000)
    assert "income/month" in report.inner_text("body")
    _hover_every_chart(report, ".js-plotly-plot", most=6)
    if SHOTS is not None:
        report.screenshot(path=str(SHOTS / "hostile-evidently.png"))
    assert report.evaluate("() => window.__pwned") is None
    assert report.evaluate("() => window.__violations") == []
    assert dialogs == []
    tab.errors = [e for e in tab.errors if "404" not in e]  # the page that does not exist
    tab.close()
