"""Alerts end to end: runs move alerts, the outbox delivers to a real webhook receiver and a
real (local) Slack API, through failures, rate limits, breakers, silences and redeliveries."""

from __future__ import annotations

import base64
import json
import logging
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Engine, delete, select
from sqlalchemy.orm import Session
from standardwebhooks.webhooks import Webhook

from driftwatch import db
from driftwatch.alerting.dispatcher import Dispatcher
from driftwatch.app import create_app
from driftwatch.config import Settings
from driftwatch.core.time import window_start
from driftwatch.models import (
    GroundTruth,
    MonitoredModel,
    Prediction,
    PredictionChunk,
    PredictionKey,
)
from driftwatch.monitoring.scheduler import Scheduler
from driftwatch.testing import start_serve
from tests.conftest import ADMIN_KEY, admin_http, create_model, free_port, sign_in, wait_until
from tests.servers import FakeSlack, Plan, Receiver, always

SECRET = "whsec_" + base64.b64encode(b"driftwatch-test-secret-32-bytes!").decode()
SECRET_ENV = "DW_TEST_WEBHOOK_SECRET"
FEATURES = [{"name": "x", "kind": "numerical"}, {"name": "y", "kind": "numerical"}]
T0 = datetime(2026, 11, 2, tzinfo=UTC)
BASELINE = np.random.default_rng(1).normal(0, 1, (200, 2)).round(4)

RULES = """
channels:
  team-slack:
    type: slack
    channel: "#ml-alerts"
  hook:
    type: webhook
    url: {url}
    secret_env: DW_TEST_WEBHOOK_SECRET
rules:
  - name: drift
    model: "*"
    when: dataset.drifted_share > 0.3
    for: {for_windows}
    severity: critical
    notify: [{notify}]
    retrain: [{retrain}]
{extra}"""


@dataclass
class Setup:
    api: TestClient
    receiver: Receiver
    slack: FakeSlack
    settings: Settings
    dispatcher: Dispatcher
    created: list[str] = field(default_factory=list)

    def model(self) -> str:
        model = create_model(self.api, features=FEATURES, window="1h")
        records = [{"features": {"x": float(x), "y": float(y)}, "prediction": 0.5}
                   for x, y in BASELINE]  # fmt: skip
        response = self.api.post(f"/api/v1/models/{model['name']}/baselines",
                                 json={"name": "training", "records": records})  # fmt: skip
        assert response.status_code == 201, response.text
        self.created.append(model["name"])
        return str(model["name"])

    def window(self, model: str, hour: int, *, drifted: bool | None) -> dict[str, Any]:
        """Log a window (drifted: shifted far; not: the baseline itself; None: no data) and
        compute it."""
        start = T0 + timedelta(hours=hour)
        if drifted is not None:
            shift = 5.0 if drifted else 0.0
            records = [
                {"prediction_id": f"{hour}-{i}",
                 "timestamp": (start + timedelta(seconds=i)).isoformat(),
                 "features": {"x": float(x) + shift, "y": float(y) + shift},
                 "prediction": 0.5, "model_version": "v7"}
                for i, (x, y) in enumerate(BASELINE)
            ]  # fmt: skip
            logged = self.api.post(f"/api/v1/models/{model}/predictions",
                                   json={"records": records})  # fmt: skip
            assert logged.status_code == 200, logged.text
        return self.run(model, hour)

    def run(self, model: str, hour: int) -> dict[str, Any]:
        start = T0 + timedelta(hours=hour)
        response = self.api.post(
            f"/api/v1/models/{model}/runs",
            json={"start": start.isoformat(), "end": (start + timedelta(hours=1)).isoformat()},
        )
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    def alerts(self, model: str, **filters: str) -> list[dict[str, Any]]:
        response = self.api.get("/api/v1/alerts", params={"model": model, **filters})
        assert response.status_code == 200, response.text
        result: list[dict[str, Any]] = response.json()
        return result

    def alert(self, alert_id: int) -> dict[str, Any]:
        response = self.api.get(f"/api/v1/alerts/{alert_id}")
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result


@pytest.fixture
def alerting(
    settings: Settings, engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., Setup]]:
    made: list[tuple[Setup, TestClient]] = []

    def make(*, for_windows: int = 1, notify: str = "team-slack, hook", retrain: str = "hook",
             extra: str = "",
             plan: Plan | None = None, slack_plan: Plan | None = None,
             start: bool = True, database: str | None = None,
             url_of: Callable[[Receiver], str] | None = None,
             receiver_options: dict[str, Any] | None = None,
             **overrides: Any) -> Setup:  # fmt: skip
        """``database``: the URL of a database of the test's own instead of the shared one;
        ``url_of``: the webhook's URL in the rules, for the receiver (its ``url`` otherwise);
        ``receiver_options``: more fields of the receiver (its hostile answers)."""
        monkeypatch.setenv(SECRET_ENV, SECRET)
        store = engine if database is None else db.get_engine(database)
        receiver = Receiver(plan or always(), **(receiver_options or {}))
        slack = FakeSlack(slack_plan or always())
        rules_dir = tmp_path / f"rules-{uuid.uuid4().hex[:6]}"
        rules_dir.mkdir()
        (rules_dir / "alerts.yaml").write_text(
            RULES.format(url=url_of(receiver) if url_of else receiver.url,
                         for_windows=for_windows, notify=notify, retrain=retrain, extra=extra)
        )  # fmt: skip
        custom = settings.model_copy(update={
            "rules_dir": str(rules_dir), "slack_token": SecretStr("xoxb-test-token"),
            "slack_api_url": slack.api_url, "dispatcher_interval_seconds": 0.1,
            "retry_schedule": [timedelta(seconds=0.1)] * 9, "breaker_failures": 100,
            "public_url": "http://dash.example:8000", **overrides,
        } | ({} if database is None else {"database_url": database}))  # fmt: skip
        client = TestClient(create_app(custom, store),
                            headers={"Authorization": f"Bearer {ADMIN_KEY}"})  # fmt: skip
        client.__enter__()
        dispatcher = Dispatcher(store, custom, owner=f"test-{uuid.uuid4().hex[:6]}")
        if start:
            dispatcher.start()
        setup = Setup(client, receiver, slack, custom, dispatcher)
        made.append((setup, client))
        return setup

    yield make
    for setup, client in made:
        if setup.settings.database_url == settings.database_url:  # (own databases are dropped)
            forget_models(engine, setup.created)
        if setup.dispatcher._thread.is_alive():
            setup.dispatcher.shutdown()
        client.__exit__(None, None, None)
        setup.receiver.close()
        setup.slack.close()


def forget_models(engine: Engine, names: list[str]) -> None:
    """Delete a test's models (their runs, alerts and deliveries go with them), so that the
    scheduler tests that follow don't spend their ticks on this test's old windows."""
    with Session(engine) as session, session.begin():
        ids = select(MonitoredModel.id).where(MonitoredModel.name.in_(names))
        # the hot tables have no foreign key (see models/ingest.py): they go by hand, or a
        # later model given a reused id (SQLite) would find these rows
        for table in (Prediction, PredictionChunk, PredictionKey, GroundTruth):
            session.execute(delete(table).where(table.model_id.in_(ids)))
        session.execute(delete(MonitoredModel).where(MonitoredModel.name.in_(names)))


def verified(request: Any) -> dict[str, Any]:
    """The body of a webhook request, after checking its signature with the
    ``standardwebhooks`` package."""
    keys = ("webhook-id", "webhook-timestamp", "webhook-signature")
    payload: dict[str, Any] = Webhook(SECRET).verify(
        request.body, {k: request.headers[k] for k in keys}
    )
    return payload


def test_an_alert_goes_pending_fires_and_resolves_with_every_notification(
    alerting: Callable[..., Setup],
) -> None:
    setup = alerting(for_windows=2)
    model = setup.model()
    first = setup.window(model, 0, drifted=True)
    [pending] = setup.alerts(model)
    assert pending["state"] == "pending"
    assert pending["run_id"] == first["id"]
    time.sleep(0.3)
    assert setup.receiver.received() == []  # pending notifies no one
    assert setup.slack.received() == []

    second = setup.window(model, 1, drifted=True)
    [firing] = setup.alerts(model)
    assert (firing["id"], firing["state"], firing["value"]) == (pending["id"], "firing", 1.0)
    assert wait_until(lambda: len(setup.receiver.accepted()) == 2 and setup.slack.posted())
    bodies = {b["type"]: b for b in (verified(r) for r in setup.receiver.accepted())}
    assert set(bodies) == {"alert.firing", "model.retrain_requested"}
    data = bodies["model.retrain_requested"]["data"]
    assert data["model"] == model
    assert data["model_version"] == "v7"
    assert (data["rule"], data["severity"]) == ("drift", "critical")
    assert (data["alert_id"], data["run_id"]) == (firing["id"], second["id"])
    assert data["window"] == second["window"]
    assert data["metrics"]["dataset.drifted_share"] == 1.0
    assert data["dashboard_url"] == f"http://dash.example:8000/models/{model}"
    assert {f["name"] for f in data["drifted_features"]} == {"x", "y"}
    assert data["baseline"]["name"] == "training"

    [message] = setup.slack.posted()
    assert message["channel"] == "#ml-alerts"
    assert message["authorization"] == "Bearer xoxb-test-token"
    assert "drift" in message["text"]
    assert model in message["text"]
    assert "dataset.drifted_share = 1" in message["text"]
    rendered = str(message["blocks"])
    for expected in ("critical", model, "dataset.drifted_share &gt; 0.3", "threshold 0.3",
                     "`x`", "Open in driftwatch", data["dashboard_url"]):  # fmt: skip
        assert expected in rendered, expected

    setup.window(model, 2, drifted=True)  # still firing: no repeat configured
    third_clean = setup.window(model, 3, drifted=False)
    [resolved] = setup.alerts(model)
    assert resolved["state"] == "resolved"
    assert wait_until(lambda: len(setup.receiver.accepted()) == 3
                      and len(setup.slack.posted()) == 2)  # fmt: skip
    last = verified(setup.receiver.accepted()[-1])
    assert last["type"] == "alert.resolved"
    assert last["data"]["run_id"] == third_clean["id"]
    resolution = setup.slack.posted()[1]
    assert resolution["thread_ts"] == message["ts"]  # threaded under the firing message
    assert not resolution.get("reply_broadcast")

    detail = setup.alert(resolved["id"])
    assert [e["event"] for e in detail["events"]] == ["pending", "firing", "resolved"]
    assert [e["run_id"] for e in detail["events"]] == [first["id"], second["id"],
                                                       third_clean["id"]]  # fmt: skip
    assert detail["events"][1]["metrics"]["dataset.drifted_share"] == 1.0
    assert detail["events"][2]["value"] == 0.0
    assert wait_until(lambda: all(d["status"] == "delivered"
                                  for d in setup.alert(resolved["id"])["deliveries"]))  # fmt: skip
    deliveries = setup.alert(resolved["id"])["deliveries"]
    assert sorted((d["channel"], d["type"]) for d in deliveries) == [
        ("hook", "alert.firing"), ("hook", "alert.resolved"), ("hook", "model.retrain_requested"),
        ("team-slack", "alert.firing"), ("team-slack", "alert.resolved"),
    ]  # fmt: skip
    assert all(len(d["attempt_log"]) == 1 for d in deliveries)
    ids = {r.headers["webhook-id"] for r in setup.receiver.accepted()}
    assert ids == {d["webhook_id"] for d in deliveries if d["channel"] == "hook"}


def test_history_and_missing_data_change_no_alert(alerting: Callable[..., Setup]) -> None:
    setup = alerting(notify="hook", retrain="")
    model = setup.model()
    setup.window(model, 0, drifted=False)
    setup.window(model, 5, drifted=True)
    [alert] = setup.alerts(model)
    assert alert["state"] == "firing"
    setup.run(model, 0)  # an older window, computed again, does not resolve it
    setup.window(model, 6, drifted=None)  # a newer window with no data neither
    detail = setup.alert(alert["id"])
    assert detail["state"] == "firing"
    assert [e["event"] for e in detail["events"]] == ["firing"]
    setup.window(model, 7, drifted=False)
    assert setup.alert(alert["id"])["state"] == "resolved"
    assert wait_until(lambda: len(setup.receiver.accepted()) == 2)
    assert [verified(r)["type"] for r in setup.receiver.accepted()] == [
        "alert.firing",
        "alert.resolved",
    ]


def test_a_failing_receiver_gets_every_message_with_the_same_id_once_it_recovers(
    alerting: Callable[..., Setup],
) -> None:
    failing = 7
    setup = alerting(notify="hook", plan=lambda n: (500, {}) if n < failing else (200, {}))
    models = [setup.model() for _ in range(2)]
    for model in models:
        setup.window(model, 0, drifted=True)
    # two models x (alert.firing + model.retrain_requested)
    assert wait_until(lambda: len(setup.receiver.accepted()) == 4, timeout=30)
    received = setup.receiver.received()
    assert len(received) == failing + 4
    by_id: dict[str, list[Any]] = {}
    for request in received:
        verified(request)  # every attempt is signed, with a fresh timestamp
        by_id.setdefault(request.headers["webhook-id"], []).append(request)
    assert len(by_id) == 4
    for requests in by_id.values():
        assert [r.status for r in requests][-1] == 200
        assert len({r.body for r in requests}) == 1  # the same message every time
    deliveries = [d for m in models for a in setup.alerts(m)
                  for d in setup.alert(a["id"])["deliveries"]]  # fmt: skip
    assert wait_until(lambda: all(
        setup.api.get(f"/api/v1/deliveries/{d['id']}").json()["status"] == "delivered"
        for d in deliveries))  # fmt: skip
    for delivery in deliveries:
        full = setup.api.get(f"/api/v1/deliveries/{delivery['id']}").json()
        log = full["attempt_log"]
        assert len(log) == len(by_id[full["webhook_id"]])  # every attempt recorded
        assert [a["outcome"] for a in log][-1] == "delivered"
        assert all(a["outcome"] == "retry" and a["status_code"] == 500 for a in log[:-1])


def test_the_breaker_pauses_a_failing_endpoint_probes_it_and_resumes(
    alerting: Callable[..., Setup],
) -> None:
    # the outage starts at the first request, not when the test starts: a slow setup (a loaded
    # machine computing the window) must not eat the outage before anything is sent
    began: list[float] = []
    down_for = 2.0

    def plan(n: int) -> tuple[int, dict[str, str]]:
        if not began:
            began.append(time.monotonic())
        return (503, {}) if time.monotonic() - began[0] < down_for else (200, {})

    setup = alerting(
        notify="hook",
        plan=plan,
        breaker_failures=2, breaker_probe_seconds=0.5,
        retry_schedule=[timedelta(seconds=0.02)] * 9,
    )  # fmt: skip
    model = setup.model()
    setup.window(model, 0, drifted=True)

    def breaker() -> dict[str, Any]:
        [found] = [e for e in setup.api.get("/api/v1/endpoints").json()
                   if e["endpoint"] == setup.receiver.url]  # fmt: skip
        return found

    assert wait_until(
        lambda: any(
            e["endpoint"] == setup.receiver.url and e["state"] != "closed"
            for e in setup.api.get("/api/v1/endpoints").json()
        ),
        timeout=5,
    )
    assert breaker()["waiting_deliveries"] == 2
    assert wait_until(lambda: len(setup.receiver.accepted()) == 2, timeout=20)
    failed = [r for r in setup.receiver.received() if r.status != 200]
    # without the breaker, 2 messages x 10 attempts 20 ms apart would all have failed for
    # good within the outage; with it, a probe every 0.5 s
    assert len(failed) <= 2 + down_for / 0.5 + 2
    assert breaker()["state"] == "closed"
    assert breaker()["waiting_deliveries"] == 0
    statuses = [
        d["status"]
        for d in setup.api.get(
            "/api/v1/deliveries", params={"alert_id": setup.alerts(model)[0]["id"]}
        ).json()
    ]
    assert statuses == ["delivered", "delivered"]


@pytest.mark.slow
def test_a_receiver_down_for_a_long_stretch_gets_everything_when_it_is_back(
    alerting: Callable[..., Setup],
) -> None:
    """Nothing listens at the receiver's address (connection refused) while alerts fire; the
    breaker holds the deliveries and probes; when a receiver listens again, all arrive."""
    setup = alerting(notify="hook", breaker_failures=2, breaker_probe_seconds=1.0,
                     retry_schedule=[timedelta(seconds=0.05)] * 9)  # fmt: skip
    port = setup.receiver.port
    setup.receiver.close()  # down
    models = [setup.model() for _ in range(3)]
    for model in models:
        setup.window(model, 0, drifted=True)
    time.sleep(6)  # a long stretch, next to a 0.05 s retry schedule
    waiting = [d for d in setup.api.get("/api/v1/deliveries").json()
               if d["alert_id"] in {setup.alerts(m)[0]["id"] for m in models}]  # fmt: skip
    assert len(waiting) == 6
    assert all(d["status"] in ("pending", "delivering") for d in waiting)  # none gave up
    assert sum(d["attempts"] for d in waiting) <= 6 + 2 + 8  # one probe a second, no storm
    back = Receiver(always(), bind_port=port)
    try:
        assert wait_until(lambda: len(back.accepted()) == 6, timeout=20)
        assert {verified(r)["data"]["alert_id"] for r in back.accepted()} == {
            setup.alerts(m)[0]["id"] for m in models
        }
    finally:
        back.close()


def test_an_open_breaker_probes_without_waiting_for_the_retry_schedule(
    alerting: Callable[..., Setup],
) -> None:
    """Two failures open the breaker; the next try is a probe half a second later, not the
    schedule's 5 minutes; failed probes do not use up retries."""
    setup = alerting(notify="hook", retrain="", breaker_failures=2, breaker_probe_seconds=0.5,
                     retry_schedule=[timedelta(seconds=0.1)] + [timedelta(minutes=5)] * 8,
                     plan=lambda n: (500, {}) if n < 4 else (200, {}))  # fmt: skip
    model = setup.model()
    setup.window(model, 0, drifted=True)
    assert wait_until(lambda: len(setup.receiver.accepted()) == 1, timeout=20)
    # from the first attempt (not from the window's computation, slow on a loaded machine) to
    # the delivery: seconds of probes, where the schedule would wait 5 minutes
    received = setup.receiver.received()
    assert received[-1].at - received[0].at < 10
    [delivery] = setup.alert(setup.alerts(model)[0]["id"])["deliveries"]
    assert wait_until(
        lambda: (
            setup.api.get(f"/api/v1/deliveries/{delivery['id']}").json()["status"] == "delivered"
        )
    )
    log = setup.api.get(f"/api/v1/deliveries/{delivery['id']}").json()["attempt_log"]
    assert [a["outcome"] for a in log] == ["retry", "retry", "probe_failed", "probe_failed",
                                           "delivered"]  # fmt: skip
    assert len({r.headers["webhook-id"] for r in setup.receiver.received()}) == 1


def test_retry_after_is_honoured(alerting: Callable[..., Setup]) -> None:
    setup = alerting(
        notify="hook",
        retrain="",
        plan=lambda n: (503, {"Retry-After": "1"}) if n == 0 else (200, {}),
    )
    setup.window(setup.model(), 0, drifted=True)
    assert wait_until(lambda: len(setup.receiver.accepted()) == 1)
    first, second = setup.receiver.received()
    assert second.at - first.at >= 0.95  # not the 0.1 s of the schedule
    assert first.headers["webhook-id"] == second.headers["webhook-id"]


def test_slack_rate_limits_are_respected(alerting: Callable[..., Setup]) -> None:
    setup = alerting(
        notify="team-slack",
        retrain="",
        slack_plan=lambda n: (429, {"Retry-After": "1"}) if n == 0 else (200, {}),
    )
    setup.window(setup.model(), 0, drifted=True)
    assert wait_until(lambda: len(setup.slack.posted()) == 1)
    first, second = setup.slack.received()
    assert second.at - first.at >= 0.95
    slack = [e for e in setup.api.get("/api/v1/endpoints").json() if e["endpoint"] == "slack"]
    assert all(e["state"] == "closed" for e in slack)  # slowing down is not failing


def test_a_silence_records_transitions_but_sends_nothing(alerting: Callable[..., Setup]) -> None:
    setup = alerting()
    model = setup.model()
    until = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    response = setup.api.post(
        "/api/v1/silences",
        json={"model": model, "rule": "dr*", "until": until, "reason": "retraining already"},
    )
    assert response.status_code == 201, response.text
    silence = response.json()
    assert silence["active"]
    setup.window(model, 0, drifted=True)
    [alert] = setup.alerts(model)
    assert alert["state"] == "firing"
    assert alert["silenced_by"] == silence["id"]
    detail = setup.alert(alert["id"])
    assert detail["events"][0]["silenced_by"] == silence["id"]
    assert detail["deliveries"] == []
    time.sleep(0.3)
    assert setup.receiver.received() == []
    assert setup.slack.received() == []
    assert [s["id"] for s in setup.api.get("/api/v1/silences").json()].count(silence["id"]) == 1
    ended = setup.api.delete(f"/api/v1/silences/{silence['id']}")
    assert ended.status_code == 200
    assert not ended.json()["active"]
    setup.window(model, 1, drifted=False)  # resolution after the silence: notified
    assert wait_until(lambda: len(setup.receiver.accepted()) == 1)
    assert verified(setup.receiver.accepted()[0])["type"] == "alert.resolved"


def test_a_redelivery_sends_the_same_message_with_the_same_id(
    alerting: Callable[..., Setup],
) -> None:
    setup = alerting(notify="hook", retrain="")
    model = setup.model()
    setup.window(model, 0, drifted=True)
    assert wait_until(lambda: len(setup.receiver.accepted()) == 1)
    [delivery] = setup.alert(setup.alerts(model)[0]["id"])["deliveries"]
    assert wait_until(
        lambda: (
            setup.api.get(f"/api/v1/deliveries/{delivery['id']}").json()["status"] == "delivered"
        )
    )
    again = setup.api.post(f"/api/v1/deliveries/{delivery['id']}/redeliver")
    assert again.status_code == 200, again.text
    assert wait_until(lambda: len(setup.receiver.accepted()) == 2)
    first, second = setup.receiver.accepted()
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == delivery["webhook_id"]
    assert first.body == second.body
    assert wait_until(
        lambda: (
            len(setup.api.get(f"/api/v1/deliveries/{delivery['id']}").json()["attempt_log"]) == 2
        )
    )
    assert setup.api.post("/api/v1/deliveries/99999999/redeliver").status_code == 404


def test_repeat_renotifies_while_firing_in_the_thread_and_the_channel(
    alerting: Callable[..., Setup],
) -> None:
    setup = alerting(retrain="", extra="    repeat: 1s\n")
    model = setup.model()
    setup.window(model, 0, drifted=True)
    assert wait_until(lambda: len(setup.slack.posted()) == 1)
    time.sleep(1.1)
    setup.window(model, 1, drifted=True)
    assert wait_until(
        lambda: len(setup.slack.posted()) == 2 and len(setup.receiver.accepted()) == 2
    )
    fired, repeated = setup.slack.posted()
    assert repeated["thread_ts"] == fired["ts"]
    assert repeated["reply_broadcast"] is True  # shows in the channel too
    assert "still firing" in repeated["text"]
    bodies = [verified(r) for r in setup.receiver.accepted()]
    assert [(b["type"], b["data"]["repeat"]) for b in bodies] == [
        ("alert.firing", False),
        ("alert.firing", True),
    ]
    events = setup.alert(setup.alerts(model)[0]["id"])["events"]
    assert [e["event"] for e in events] == ["firing", "repeat"]
    setup.window(model, 2, drifted=True)  # within a second of the repeat: quiet
    time.sleep(0.3)
    assert len(setup.slack.posted()) == 2


def test_scheduled_runs_move_alerts_too(own_database: str, alerting: Callable[..., Setup]) -> None:
    # a tick computes every model's windows, oldest first: this test's model is alone in its
    # database, so what earlier tests left cannot use up the tick's time
    setup = alerting(notify="hook", retrain="", database=own_database)
    model = create_model(setup.api, features=FEATURES, window="1m")["name"]
    setup.created.append(model)
    records = [{"features": {"x": float(x), "y": float(y)}, "prediction": 0.5}
               for x, y in BASELINE]  # fmt: skip
    assert setup.api.post(f"/api/v1/models/{model}/baselines",
                          json={"name": "b", "records": records}).status_code == 201  # fmt: skip
    closed = window_start(datetime.now(UTC), timedelta(minutes=1)) - timedelta(minutes=1)
    drifted = [{"prediction_id": f"s-{i}", "prediction": 0.5,
                "timestamp": (closed + timedelta(seconds=i * 0.25)).isoformat(),
                "features": {"x": float(x) + 5, "y": float(y) + 5}}
               for i, (x, y) in enumerate(BASELINE)]  # fmt: skip
    assert setup.api.post(f"/api/v1/models/{model}/predictions",
                          json={"records": drifted}).status_code == 200  # fmt: skip
    Scheduler(setup.dispatcher.engine,
              setup.settings.model_copy(update={"window_grace_seconds": 0.0}),
              owner="test-scheduler").tick()  # fmt: skip
    [alert] = setup.alerts(model)
    assert alert["state"] == "firing"
    assert alert["window"]["start"].startswith(closed.isoformat()[:16])
    assert wait_until(lambda: len(setup.receiver.accepted()) == 1)
    assert verified(setup.receiver.accepted()[0])["data"]["run_id"] == alert["run_id"]


def test_two_dispatchers_send_each_message_once(alerting: Callable[..., Setup]) -> None:
    setup = alerting(notify="hook")
    other = Dispatcher(setup.dispatcher.engine, setup.settings, owner="test-other")
    other.start()
    try:
        models = [setup.model() for _ in range(5)]
        for model in models:
            setup.window(model, 0, drifted=True)
        assert wait_until(lambda: len(setup.receiver.accepted()) == 10)
        time.sleep(0.5)
        ids = [r.headers["webhook-id"] for r in setup.receiver.received()]
        assert len(ids) == len(set(ids)) == 10
    finally:
        other.shutdown()


def test_alert_api_answers_bad_requests_clearly(alerting: Callable[..., Setup]) -> None:
    setup = alerting(start=False)
    bad_state = setup.api.get("/api/v1/alerts", params={"state": "burning"})
    assert bad_state.status_code == 422
    assert "burning" in bad_state.json()["detail"]
    assert setup.api.get("/api/v1/alerts/99999999").status_code == 404
    assert setup.api.get("/api/v1/alerts", params={"model": "no-such"}).status_code == 404
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    response = setup.api.post("/api/v1/silences", json={"model": "*", "rule": "*", "until": past})
    assert response.status_code == 422
    assert "past" in response.json()["detail"]
    naive = setup.api.post(
        "/api/v1/silences", json={"model": "*", "rule": "*", "until": "2030-01-01T00:00:00"}
    )
    assert naive.status_code == 422
    assert setup.api.delete("/api/v1/silences/99999999").status_code == 404


def _serve_env(tmp_path: Path, receiver: Receiver, **extra: str) -> dict[str, str]:
    rules_dir = tmp_path / "serve-rules"
    rules_dir.mkdir(exist_ok=True)
    (rules_dir / "alerts.yaml").write_text(
        RULES.format(url=receiver.url, for_windows=1, notify="hook", retrain="hook", extra="")
        .replace("  team-slack:\n    type: slack\n    channel: \"#ml-alerts\"\n", "")
    )  # fmt: skip
    return {
        "DRIFTWATCH_ADMIN_KEY": ADMIN_KEY,
        "DRIFTWATCH_RULES_DIR": str(rules_dir),
        "DRIFTWATCH_DISPATCHER_INTERVAL_SECONDS": "0.2",
        SECRET_ENV: SECRET,
        **extra,
    }


def _stop(process: subprocess.Popen[bytes], *, kill: bool) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
    process.wait(timeout=30)


@pytest.mark.slow
def test_an_alert_committed_before_a_crash_is_delivered_once_after_restart(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    receiver = Receiver(always())
    env = _serve_env(tmp_path, receiver)
    port = free_port()
    log = tmp_path / "serve.log"
    # a process that commits alerts but dies before it delivers anything
    first = start_serve(database_url, port, log, env=env,
                        args=("--no-scheduler",))  # fmt: skip
    try:
        with admin_http(f"http://127.0.0.1:{port}") as http:
            setup = Setup(http, receiver, FakeSlack(always()), Settings(), None)  # type: ignore[arg-type]
            model = setup.model()
            setup.window(model, 0, drifted=True)
            [alert] = setup.alerts(model)
    finally:
        _stop(first, kill=True)
    assert alert["state"] == "firing"
    time.sleep(0.5)
    assert receiver.received() == []
    second = start_serve(database_url, free_port(), log, env=env, args=("--no-monitoring",))
    try:
        assert wait_until(lambda: len(receiver.accepted()) == 2, timeout=30), log.read_text()
        time.sleep(1.5)  # and nothing more comes
        assert len(receiver.received()) == 2
        types = sorted(verified(r)["type"] for r in receiver.received())
        assert types == ["alert.firing", "model.retrain_requested"]
        assert {verified(r)["data"]["alert_id"] for r in receiver.received()} == {alert["id"]}
        # off a terminal, the log is JSON lines carrying the delivery's ids
        records = [json.loads(line) for line in log.read_text().splitlines()
                   if line.startswith("{")]  # fmt: skip
        sent = [r for r in records if r.get("outcome") == "delivered"]
        assert {r["webhook_id"] for r in sent} == {
            r.headers["webhook-id"] for r in receiver.received()
        }
        assert all(r["alert_id"] == alert["id"] and r["delivery_id"] for r in sent)
        assert all(SECRET not in line and ADMIN_KEY not in line
                   for line in log.read_text().splitlines())  # fmt: skip
    finally:
        _stop(second, kill=False)
        receiver.close()
        setup.slack.close()
        forget_models(engine, setup.created)


@pytest.mark.slow
def test_a_delivery_cut_off_mid_send_is_sent_again_with_the_same_id(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    """The dispatcher dies while the receiver holds its request: the lease runs out and a new
    process sends the message again, with the same ``webhook-id`` (at least once)."""
    receiver = Receiver(lambda n: (0, {}) if n == 0 else (200, {}), hang_seconds=4.0)
    env = _serve_env(tmp_path, receiver, DRIFTWATCH_DELIVERY_TIMEOUT_SECONDS="1",
                     DRIFTWATCH_DELIVERY_LEASE_SECONDS="6")  # fmt: skip
    (Path(env["DRIFTWATCH_RULES_DIR"]) / "alerts.yaml").write_text(
        RULES.format(url=receiver.url, for_windows=1, notify="hook", retrain="", extra="")
        .replace("  team-slack:\n    type: slack\n    channel: \"#ml-alerts\"\n", "")
    )  # fmt: skip
    log = tmp_path / "serve.log"
    port = free_port()
    first = start_serve(database_url, port, log, env=env, args=("--no-monitoring",))
    try:
        with admin_http(f"http://127.0.0.1:{port}") as http:
            setup = Setup(http, receiver, FakeSlack(always()), Settings(), None)  # type: ignore[arg-type]
            model = setup.model()
            setup.window(model, 0, drifted=True)
            alert_id = setup.alerts(model)[0]["id"]
        assert wait_until(lambda: len(receiver.received()) == 1, timeout=15)
    finally:
        _stop(first, kill=True)  # while the receiver still holds the request
    second = start_serve(database_url, port, log, env=env, args=("--no-monitoring",))
    try:
        assert wait_until(lambda: len(receiver.accepted()) == 1, timeout=30), log.read_text()
        cut, resent = receiver.received()
        assert cut.headers["webhook-id"] == resent.headers["webhook-id"]
        assert cut.body == resent.body
        with admin_http(f"http://127.0.0.1:{port}") as http:
            assert wait_until(lambda: http.get(f"/api/v1/alerts/{alert_id}").json()
                              ["deliveries"][0]["status"] == "delivered")  # fmt: skip
            [delivery] = http.get(f"/api/v1/alerts/{alert_id}").json()["deliveries"]
        assert delivery["attempts"] == 2
        assert [a["number"] for a in delivery["attempt_log"]] == [2]  # the first never returned
    finally:
        _stop(second, kill=False)
        receiver.close()
        setup.slack.close()
        forget_models(engine, setup.created)


def test_metrics_report_latest_windows_alert_states_and_deliveries(
    alerting: Callable[..., Setup],
) -> None:
    setup = alerting(notify="hook", retrain="", for_windows=2)
    model = setup.model()
    setup.window(model, 0, drifted=True)
    text = setup.api.get("/metrics").text
    assert f'driftwatch_alert_state{{model="{model}",rule="drift"}} 1.0' in text  # pending
    setup.window(model, 1, drifted=True)
    assert wait_until(lambda: len(setup.receiver.accepted()) == 1)
    time.sleep(0.2)
    text = setup.api.get("/metrics").text
    assert f'driftwatch_alert_state{{model="{model}",rule="drift"}} 2.0' in text  # firing
    assert f'driftwatch_drifted_share{{model="{model}"}} 1.0' in text
    assert f'driftwatch_feature_drifted{{feature="x",model="{model}"}} 1.0' in text
    assert f'driftwatch_feature_drift_score{{feature="x",model="{model}",stattest="ks"}}' in text
    assert f'driftwatch_window_rows{{model="{model}"}} 200.0' in text
    assert f'driftwatch_runs_total{{model="{model}",outcome="done"}} 2.0' in text
    assert f'driftwatch_run_duration_seconds_count{{model="{model}"}} 2.0' in text
    assert (f'driftwatch_alert_transitions_total{{event="firing",model="{model}",rule="drift"}}'
            " 1.0") in text  # fmt: skip
    assert 'driftwatch_delivery_attempts_total{channel_type="webhook",outcome="delivered"}' in text


def test_no_secret_shows_in_answers_pages_or_metrics(alerting: Callable[..., Setup]) -> None:
    setup = alerting()
    model = setup.model()
    setup.window(model, 0, drifted=True)
    assert wait_until(lambda: len(setup.receiver.accepted()) == 2 and setup.slack.posted())
    alert_id = setup.alerts(model)[0]["id"]
    signed_in = sign_in(setup.api)
    assert signed_in.status_code == 200
    answers = [setup.api.get(path).text for path in (
        f"/api/v1/alerts/{alert_id}", "/api/v1/deliveries", "/api/v1/endpoints",
        f"/api/v1/models/{model}", "/metrics", "/deliveries", "/alerts?state=all",
        f"/models/{model}")]  # fmt: skip
    secret_part = SECRET.removeprefix("whsec_")
    for text in answers:
        assert secret_part not in text
        assert "xoxb-test-token" not in text
        assert ADMIN_KEY not in text


@pytest.mark.slow
def test_a_receiver_dripping_its_answer_is_cut_at_the_deadline_and_sent_once(
    alerting: Callable[..., Setup],
) -> None:
    """The answer comes a byte every 0.4 s (each read well within the timeout): the attempt is
    cut at the deadline and recorded, so the lease never runs out on a message still being
    sent, and no one sends it a second time."""
    setup = alerting(notify="hook", retrain="", delivery_timeout_seconds=1.0,
                     delivery_lease_seconds=6.0, retry_schedule=[timedelta(hours=1)] * 9,
                     receiver_options={"drip_seconds": lambda _n: 0.4})  # fmt: skip
    setup.window(setup.model(), 0, drifted=True)
    assert wait_until(lambda: len(setup.receiver.received()) == 1)
    time.sleep(6.0 + 1.5)  # the lease, and then some
    assert len(setup.receiver.received()) == 1
    [delivery] = setup.api.get(
        "/api/v1/deliveries", params={"alert_id": setup.alerts(setup.created[0])[0]["id"]}
    ).json()
    full = setup.api.get(f"/api/v1/deliveries/{delivery['id']}").json()
    [attempt] = full["attempt_log"]
    assert attempt["outcome"] == "retry"  # in an hour, as the schedule says
    assert attempt["error"] == (
        "no complete answer within 1 s (DRIFTWATCH_DELIVERY_TIMEOUT_SECONDS)"
    )
    assert attempt["duration_seconds"] < 1.0 + 1.0
    assert full["status"] == "pending"


def test_a_webhook_urls_token_and_password_show_nowhere_but_in_its_requests(
    alerting: Callable[..., Setup], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    setup = alerting(
        notify="hook", retrain="", plan=lambda n: (500, {}) if n == 0 else (200, {}),
        url_of=lambda r: f"http://hookuser:pw-s3cr3t@127.0.0.1:{r.port}/hooks/retrain"
                         "?token=s3cr3t",
    )  # fmt: skip
    model = setup.model()
    setup.window(model, 0, drifted=True)
    assert wait_until(lambda: len(setup.receiver.accepted()) == 1)
    failed, sent = setup.receiver.received()
    for request in (failed, sent):  # the sender uses the URL whole
        assert request.path == "/hooks/retrain?token=s3cr3t"
        credentials = base64.b64encode(b"hookuser:pw-s3cr3t").decode()
        assert request.headers["authorization"] == f"Basic {credentials}"
    alert_id = setup.alerts(model)[0]["id"]
    assert wait_until(lambda: setup.alert(alert_id)["deliveries"][0]["status"] == "delivered")
    [delivery] = setup.alert(alert_id)["deliveries"]
    assert sign_in(setup.api).status_code == 200
    shown = f"http://127.0.0.1:{setup.receiver.port}/hooks/retrain?REDACTED"
    answers = {path: setup.api.get(path).text for path in (
        f"/api/v1/alerts/{alert_id}", "/api/v1/deliveries", f"/api/v1/deliveries/{delivery['id']}",
        "/api/v1/endpoints", "/metrics", "/deliveries")}  # fmt: skip
    for path, text in answers.items():
        assert "s3cr3t" not in text, path
        assert "hookuser" not in text, path
        assert shown in text, path
    messages = [record.getMessage() for record in caplog.records]
    assert any(shown in message for message in messages)  # the delivery's log line
    assert not [m for m in messages if "s3cr3t" in m or "hookuser" in m]
    assert "s3cr3t" not in caplog.text


# -- per_segment rules (CONTRACT section 10) ---------------------------------------------------

REGIONS = ("EU", "US", "APAC", "LATAM")
PER_SEGMENT_RULE = """\
  - name: region-drift
    model: "seg-*"
    when: dataset.drifted_share > 0.3
    per_segment: region
    severity: warning
    notify: [team-slack, hook]
"""


def _segmented_model(setup: Setup) -> str:
    features = [*FEATURES, {"name": "region", "kind": "categorical"}]
    name = f"seg-{uuid.uuid4().hex[:8]}"
    create_model(setup.api, name=name, features=features, window="1h", segments=["region"],
                 segment_min_rows=20)  # fmt: skip
    setup.created.append(name)
    records = [{"features": {"x": float(x), "y": float(y), "region": REGIONS[i % 4]},
                "prediction": 0.5} for i, (x, y) in enumerate(BASELINE)]  # fmt: skip
    response = setup.api.post(f"/api/v1/models/{name}/baselines",
                              json={"name": "training", "records": records})  # fmt: skip
    assert response.status_code == 201, response.text
    return name


def _segmented_window(setup: Setup, model: str, hour: int, shifted: set[str]) -> dict[str, Any]:
    """A window of the baseline's rows, those of the ``shifted`` regions moved far."""
    start = T0 + timedelta(hours=hour)
    records = []
    for i, (x, y) in enumerate(BASELINE):
        region = REGIONS[i % 4]
        shift = 5.0 if region in shifted else 0.0
        records.append({"prediction_id": f"{hour}-{i}", "prediction": 0.5,
                        "timestamp": (start + timedelta(seconds=i)).isoformat(),
                        "features": {"x": float(x) + shift, "y": float(y) + shift,
                                     "region": region}})  # fmt: skip
    logged = setup.api.post(f"/api/v1/models/{model}/predictions", json={"records": records})
    assert logged.status_code == 200, logged.text
    return setup.run(model, hour)


def _by_segment(alerts: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {a["segment"]["value"]: a for a in alerts if a["rule"] == "region-drift"}


def test_a_per_segment_rule_fires_and_resolves_each_segment_on_its_own(
    alerting: Callable[..., Setup],
) -> None:
    setup = alerting(notify="hook", retrain="", extra=PER_SEGMENT_RULE)
    model = _segmented_model(setup)

    first = _segmented_window(setup, model, 0, {"EU"})
    by_value = {s["value"]: s for s in first["segments"]}
    assert by_value["EU"]["dataset"]["drifted_share"] == 1.0
    assert by_value["US"]["dataset"]["drifted_share"] == 0.0
    alerts = _by_segment(setup.alerts(model))
    assert set(alerts) == {"EU"}
    eu = alerts["EU"]
    assert (eu["state"], eu["segment"]) == ("firing", {"feature": "region", "value": "EU"})
    assert eu["metric"] == "segment[region=EU].dataset.drifted_share"
    assert wait_until(lambda: any(verified(r)["data"]["rule"] == "region-drift"
                                  for r in setup.receiver.accepted()))  # fmt: skip

    _segmented_window(setup, model, 1, {"EU", "US"})
    alerts = _by_segment(setup.alerts(model))
    assert set(alerts) == {"EU", "US"}
    assert alerts["EU"]["id"] == eu["id"]  # the same alert, still firing
    assert alerts["US"]["state"] == "firing"

    _segmented_window(setup, model, 2, {"US"})  # EU recovers, US goes on
    alerts = _by_segment(setup.alerts(model))
    assert (alerts["EU"]["state"], alerts["US"]["state"]) == ("resolved", "firing")

    _segmented_window(setup, model, 3, set())
    alerts = _by_segment(setup.alerts(model))
    assert {a["state"] for a in alerts.values()} == {"resolved"}

    def segment_messages() -> list[dict[str, Any]]:
        bodies = [verified(r) for r in setup.receiver.accepted()]
        return [b for b in bodies if b["data"]["rule"] == "region-drift"]

    assert wait_until(lambda: len(segment_messages()) == 4)
    sent = [(b["type"], b["data"]["segment"]["value"]) for b in segment_messages()]
    assert sorted(sent) == [("alert.firing", "EU"), ("alert.firing", "US"),
                            ("alert.resolved", "EU"), ("alert.resolved", "US")]  # fmt: skip
    data = segment_messages()[0]["data"]
    assert data["segment"] == {"feature": "region", "value": "EU"}
    assert data["metrics"]["segment[region=EU].dataset.drifted_share"] == 1.0
    assert data["rows"] == 50  # the segment's rows
    assert {f["name"] for f in data["drifted_features"]} == {"x", "y"}
    assert data["dashboard_url"].endswith(f"/models/{model}?segment=region=EU")
    detail = setup.alert(eu["id"])
    assert [e["event"] for e in detail["events"]] == ["firing", "resolved"]


def test_slack_names_the_segment(alerting: Callable[..., Setup]) -> None:
    setup = alerting(notify="team-slack", retrain="", extra=PER_SEGMENT_RULE)
    model = _segmented_model(setup)
    _segmented_window(setup, model, 0, {"LATAM"})

    def about_segment() -> list[dict[str, Any]]:
        return [m for m in setup.slack.posted() if "region-drift" in m["text"]]

    assert wait_until(lambda: len(about_segment()) == 1)
    [message] = about_segment()
    assert f"region-drift firing on {model} in segment region=LATAM" in message["text"]
    assert "`region=LATAM`" in str(message["blocks"])


def test_a_rule_on_a_segment_the_model_lacks_names_its_file_line(
    alerting: Callable[..., Setup],
    caplog: pytest.LogCaptureFixture,
) -> None:
    setup = alerting(notify="hook", retrain="", extra=PER_SEGMENT_RULE.replace(
        "per_segment: region", "per_segment: plan"))  # fmt: skip
    model = _segmented_model(setup)
    with caplog.at_level("ERROR", logger="driftwatch.alerting"):
        _segmented_window(setup, model, 0, {"EU"})
    assert not _by_segment(setup.alerts(model))
    [logged] = [r for r in caplog.records if "not a segment" in r.getMessage()]
    assert (
        "alerts.yaml:18: rule 'region-drift': per_segment: 'plan' is not a segment of "
        f"model '{model}' (its segments: region" in logged.getMessage()
    )


def test_scheduled_runs_move_per_segment_alerts(
    own_database: str, alerting: Callable[..., Setup]
) -> None:
    setup = alerting(notify="hook", retrain="", extra=PER_SEGMENT_RULE, database=own_database)
    features = [*FEATURES, {"name": "region", "kind": "categorical"}]
    name = f"seg-{uuid.uuid4().hex[:8]}"
    create_model(setup.api, name=name, features=features, window="1m", segments=["region"],
                 segment_min_rows=20)  # fmt: skip
    setup.created.append(name)
    baseline = [{"features": {"x": float(x), "y": float(y), "region": REGIONS[i % 4]},
                 "prediction": 0.5} for i, (x, y) in enumerate(BASELINE)]  # fmt: skip
    assert setup.api.post(f"/api/v1/models/{name}/baselines",
                          json={"name": "b", "records": baseline}).status_code == 201  # fmt: skip
    closed = window_start(datetime.now(UTC), timedelta(minutes=1)) - timedelta(minutes=1)
    window = [{"prediction_id": f"s-{i}", "prediction": 0.5,
               "timestamp": (closed + timedelta(seconds=i * 0.25)).isoformat(),
               "features": {"x": float(x) + (5 if i % 4 == 2 else 0),
                            "y": float(y) + (5 if i % 4 == 2 else 0), "region": REGIONS[i % 4]}}
              for i, (x, y) in enumerate(BASELINE)]  # fmt: skip
    assert setup.api.post(f"/api/v1/models/{name}/predictions",
                          json={"records": window}).status_code == 200  # fmt: skip
    Scheduler(setup.dispatcher.engine,
              setup.settings.model_copy(update={"window_grace_seconds": 0.0}),
              owner="test-scheduler").tick()  # fmt: skip
    alerts = _by_segment(setup.alerts(name))
    assert set(alerts) == {"APAC"}  # REGIONS[2]: the one shifted
    assert alerts["APAC"]["state"] == "firing"

    def about_segments() -> list[dict[str, Any]]:
        bodies = [verified(r)["data"] for r in setup.receiver.accepted()]
        return [d for d in bodies if d["rule"] == "region-drift"]

    assert wait_until(lambda: len(about_segments()) == 1)
    [data] = about_segments()
    assert data["segment"] == {"feature": "region", "value": "APAC"}
    assert data["run_id"] == alerts["APAC"]["run_id"]
