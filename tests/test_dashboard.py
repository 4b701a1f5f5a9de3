"""The dashboard in a real headless Chromium (Debian's ``chromium``, driven by Playwright; never a
downloaded browser): sign-in, every page, charts drawn with the data the API has, the time-range
picker, silencing, redelivery, Evidently's report; no console errors, no request leaving the
machine."""

from __future__ import annotations

import base64
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
from driftwatch.db import session_scope
from tests.conftest import ADMIN_KEY, LiveServer, start_server, wait_until
from tests.servers import Receiver, always

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
                    {"features": r["features"], "prediction": r["prediction"]} for r in base
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
    score = tab.chart("score")["series"][0]
    assert [v for _, v in score["data"]] == pytest.approx(
        [max(next(f for f in r["features"] if f["name"] == "age")["score"], 1e-300)
         for r in runs])  # fmt: skip
    age = next(f for f in runs[-1]["features"] if f["name"] == "age")
    assert score["markLine"]["data"][0]["yAxis"] == age["threshold"]
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
