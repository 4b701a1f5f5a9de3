"""``driftwatch demo``: the whole product in one command, on an embedded SQLite file.

A real scikit-learn classifier is trained on scikit-learn's bundled breast cancer dataset and
served to simulated traffic that is logged through the SDK; labels follow a few seconds later.
Partway through, the traffic shifts (a scanner recalibrated: three size measurements read 35%
high, and a new clinic appears), so both drift and the accuracy drop are real. Windows of 10
seconds are computed by the scheduler, rules fire, and a local webhook sink verifies every
signed message and prints it. The dashboard stays up the whole time.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import secrets
import signal
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from pydantic import SecretStr

from driftwatch.text import plural

MODEL = "breast-cancer-screening"
WINDOW = "10s"
SHIFT_AFTER = 30.0  # seconds of normal traffic before the shift
LABEL_DELAY = 4.0  # seconds between a prediction and its label
RATE = 30  # predictions a second
SECRET_ENV = "DRIFTWATCH_DEMO_WEBHOOK_SECRET"
FEATURES = {  # scikit-learn's column -> the demo's feature
    "mean radius": "mean_radius", "mean texture": "mean_texture",
    "mean perimeter": "mean_perimeter", "mean area": "mean_area",
    "mean smoothness": "mean_smoothness", "mean concavity": "mean_concavity",
    "worst radius": "worst_radius", "worst texture": "worst_texture",
}  # fmt: skip
SHIFTED = ("mean_radius", "mean_perimeter", "worst_radius")
CLINICS = ["north", "south", "east"]

RULES = """# written by `driftwatch demo`
channels:
  demo-sink:
    type: webhook
    url: {sink}
    secret_env: {secret_env}
    events: [alerts, retrain]

rules:
  - name: input-drift
    model: {model}
    when: dataset.drifted_share > 0.3
    for: 2
    severity: critical
    notify: [demo-sink]
    retrain: [demo-sink]
  - name: accuracy-drop
    model: {model}
    when: accuracy.accuracy < 0.85
    severity: warning
    notify: [demo-sink]
"""


def _say(text: str, started: float) -> None:
    elapsed = time.monotonic() - started
    print(f"[{int(elapsed) // 60:02d}:{int(elapsed) % 60:02d}] {text}", flush=True)


@dataclass
class Sink:
    """The team's ML pipeline, played by a local HTTP server: it checks each Standard Webhooks
    signature and prints what it got."""

    secret: str
    say: Callable[[str], None]
    received: list[dict[str, Any]] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)

    def start(self) -> str:
        from driftwatch.alerting import signing

        sink = self
        key = signing.secret_key(self.secret)

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                webhook_id = self.headers.get("webhook-id", "")
                timestamp = self.headers.get("webhook-timestamp", "0")
                expected = signing.signature(key, webhook_id=webhook_id,
                                             timestamp=int(timestamp), body=body)  # fmt: skip
                fresh = abs(time.time() - int(timestamp)) < 300
                valid = fresh and secrets.compare_digest(
                    expected, self.headers.get("webhook-signature", "")
                )
                self.send_response(204 if valid else 400)
                self.end_headers()
                if valid and webhook_id not in sink.seen:
                    sink.seen.add(webhook_id)
                    sink.show(json.loads(body))
                elif not valid:
                    sink.say("webhook sink: REJECTED a message with a bad signature")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/driftwatch"

    def show(self, message: dict[str, Any]) -> None:
        self.received.append(message)
        data = message["data"]
        titles = {"alert.firing": "ALERT FIRING", "alert.resolved": "alert resolved",
                  "model.retrain_requested": "RETRAIN REQUESTED"}  # fmt: skip
        what = titles.get(message["type"], message["type"])
        drifted = ", ".join(f["name"] for f in data.get("drifted_features") or [])
        self.say(
            f"webhook sink: {what} ({message['type']}, signature verified): rule "
            f"{data['rule']} on {data['model']}: {data['condition']} with value "
            f"{data['value']:.3g}, window {data['window']['start'][11:19]}-"
            f"{data['window']['end'][11:19]} UTC" + (f"; drifted: {drifted}" if drifted else "")
        )

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Traffic:
    """The team's service: predicts with the model and logs through the SDK; labels follow."""

    def __init__(self, url: str, key: str, spool: Path, model: Any, data: Any,
                 say: Callable[[str], None]) -> None:  # fmt: skip
        import driftwatch

        self.client = driftwatch.Client(url, api_key=key, spool_dir=spool, flush_interval=0.1)
        self.model, self.say = model, say
        self.features, self.labels = data
        self.rng = np.random.default_rng(7)
        self.shifted = False
        self.sent = self.labeled = 0
        self._labels: deque[tuple[float, str, int]] = deque()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-traffic", daemon=True)

    def start(self) -> None:
        self.began = time.monotonic()
        self._thread.start()

    def _request(self) -> tuple[dict[str, Any], int]:
        row = int(self.rng.integers(len(self.features)))
        values = self.features[row] * self.rng.normal(1.0, 0.02, self.features.shape[1])
        features = dict(zip(FEATURES.values(), values.tolist(), strict=True))
        clinics = CLINICS + (["west"] if self.shifted else [])
        weights = [0.2, 0.2, 0.2, 0.4] if self.shifted else [0.4, 0.3, 0.3]
        if self.shifted:  # a recalibrated scanner reads sizes 35% high
            for name in SHIFTED:
                features[name] *= 1.35
        return {**features, "clinic": str(self.rng.choice(clinics, p=weights))}, int(
            self.labels[row]
        )

    def _run(self) -> None:
        names = list(FEATURES.values())
        while not self._stop.is_set():
            began = time.monotonic()
            for _ in range(RATE // 5):
                features, label = self._request()
                score = float(self.model.predict_proba(
                    np.array([[features[n] for n in names]]))[0, 1])  # fmt: skip
                prediction_id = self.client.log_prediction(
                    MODEL, features=features, prediction=round(score, 4), model_version="gbm-1"
                )
                self.sent += 1
                self._labels.append((time.monotonic() + LABEL_DELAY, prediction_id, label))
            while self._labels and self._labels[0][0] <= time.monotonic():
                _, prediction_id, label = self._labels.popleft()
                self.client.log_ground_truth(MODEL, prediction_id=prediction_id, label=label)
                self.labeled += 1
            self._stop.wait(max(0.0, 0.2 - (time.monotonic() - began)))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.client.close(timeout=10)


def _train() -> tuple[Any, Any, Any, float]:
    """A gradient boosting classifier on 8 columns of the breast cancer dataset: the model, its
    training rows (for the baseline), the held-out rows (for the traffic) and its accuracy."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.model_selection import train_test_split

    dataset = load_breast_cancer()
    columns = [list(dataset.feature_names).index(name) for name in FEATURES]
    features, labels = dataset.data[:, columns], dataset.target
    train_x, test_x, train_y, test_y = train_test_split(
        features, labels, test_size=0.4, random_state=0, stratify=labels
    )
    model = GradientBoostingClassifier(random_state=0).fit(train_x, train_y)
    return model, (train_x, train_y), (test_x, test_y), float(model.score(test_x, test_y))


def _api(url: str, key: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60)


def _register(http: httpx.Client, model: Any, reference: Any) -> None:
    """The model, and its baseline: the held-out validation set, scored by the model (the
    traffic before the shift is drawn from the same rows)."""
    features = [{"name": name, "kind": "numerical"} for name in FEATURES.values()]
    features.append({"name": "clinic", "kind": "categorical"})
    http.post(
        "/api/v1/models",
        json={
            "name": MODEL,
            "task": "binary_classification",
            "window": WINDOW,
            "features": features,
            # drift decided at the window's real size, about one false alarm a month
            "drift": {"verdict": "calibrated", "false_alarms_per_month": 1},
        },
    ).raise_for_status()
    rng = np.random.default_rng(3)
    train_x, train_y = reference
    scores = model.predict_proba(train_x)[:, 1]
    records = [
        {"features": {**dict(zip(FEATURES.values(), row.tolist(), strict=True)),
                      "clinic": str(rng.choice(CLINICS, p=[0.4, 0.3, 0.3]))},
         "prediction": round(float(score), 4), "label": int(label)}
        for row, score, label in zip(train_x, scores, train_y, strict=True)
    ]  # fmt: skip
    http.post(f"/api/v1/models/{MODEL}/baselines",
              json={"name": "validation-set", "records": records}).raise_for_status()  # fmt: skip


def _status(http: httpx.Client, traffic: Traffic, say: Callable[[str], None]) -> None:
    runs = http.get(f"/api/v1/models/{MODEL}/runs", params={"limit": 3}).json()
    done = [r for r in runs if r.get("status") == "done" and r.get("rows")]
    line = f"traffic: {traffic.sent:,} predictions, {traffic.labeled:,} labels sent"
    if done:
        last = done[0]
        share = (last.get("dataset") or {}).get("drifted_share")
        accuracy = (last.get("accuracy") or {}).get("accuracy")
        line += (f"; window {last['window']['start'][11:19]}: {last['rows']} rows, drifted "
                 f"share {'-' if share is None else f'{share:.0%}'}"
                 + (f", accuracy {accuracy:.2f}" if accuracy is not None else ""))  # fmt: skip
    say(line)


def run(*, port: int, duration: float | None) -> int:
    import uvicorn

    from driftwatch import db
    from driftwatch.app import create_app
    from driftwatch.config import Settings
    from driftwatch.runtime import Workers

    started = time.monotonic()
    logging.getLogger().setLevel(logging.WARNING)  # the demo tells its own story

    def say(text: str) -> None:
        _say(text, started)

    folder = Path(tempfile.mkdtemp(prefix="driftwatch-demo-"))
    key = os.environ.get("DRIFTWATCH_ADMIN_KEY") or "dw_demo_" + secrets.token_urlsafe(18)
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    os.environ[SECRET_ENV] = secret
    sink = Sink(secret, say)
    (folder / "rules").mkdir()
    (folder / "rules" / "demo.yaml").write_text(
        RULES.format(sink=sink.start(), secret_env=SECRET_ENV, model=MODEL)
    )
    url = f"http://127.0.0.1:{port}"
    settings = Settings(
        database_url=f"sqlite:///{folder / 'demo.db'}", rules_dir=str(folder / "rules"),
        admin_key=SecretStr(key), public_url=url, scheduler_interval_seconds=2.0,
        window_grace_seconds=1.0, dispatcher_interval_seconds=0.2,
        retry_schedule=[timedelta(seconds=s) for s in (1, 2, 5, 10, 30)],
    )  # fmt: skip
    say(f"driftwatch demo: data, rules and spool in {folder}")
    model, train, test, accuracy = _train()
    say(f"trained a gradient boosting classifier on scikit-learn's breast cancer data "
        f"({len(train[1])} rows, 8 features): accuracy {accuracy:.3f} on the "
        f"{len(test[1])} held-out rows")  # fmt: skip
    db.upgrade(settings.database_url)
    engine = db.get_engine(settings.database_url)
    app = create_app(settings, engine, workers=Workers.every())  # as `driftwatch serve` does
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning"))  # fmt: skip
    serving = threading.Thread(target=server.run, name="demo-server", daemon=True)
    serving.start()
    while not server.started:
        if not serving.is_alive():
            say(f"could not serve on port {port} (in use?): try `driftwatch demo --port 8010`")
            return 1
        time.sleep(0.05)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    with _api(url, key) as http:
        _register(http, model, test)
        say(f"dashboard: {url}/  (sign in with the API key {key})")
        say(f"model {MODEL}: windows of {WINDOW}, baseline = the validation set; rules in "
            f"{folder / 'rules' / 'demo.yaml'}")  # fmt: skip
        traffic = Traffic(url, key, folder / "spool", model, test, say)
        traffic.start()
        say(f"traffic: {RATE} predictions a second through the SDK, labels {LABEL_DELAY:.0f} s "
            f"later; the shift comes in {SHIFT_AFTER:.0f} s")  # fmt: skip
        deadline = None if duration is None else started + duration
        next_status = time.monotonic() + 10
        try:
            while not stopping.is_set() and (deadline is None or time.monotonic() < deadline):
                if not traffic.shifted and time.monotonic() - traffic.began >= SHIFT_AFTER:
                    traffic.shifted = True
                    say(
                        "SHIFT: the scanner now reads mean_radius, mean_perimeter and "
                        "worst_radius 35% high, and a new clinic 'west' sends 40% of cases"
                    )
                if time.monotonic() >= next_status:
                    _status(http, traffic, say)
                    next_status += 10
                stopping.wait(0.25)
        except KeyboardInterrupt:
            pass
        say("stopping: flushing the SDK, finishing deliveries")
        traffic.stop()
        deadline_flush = time.monotonic() + 3
        while time.monotonic() < deadline_flush and _undelivered(http):
            time.sleep(0.2)
    server.should_exit = True  # its shutdown stops the workers
    serving.join(timeout=15)
    sink.stop()
    fired = sum(1 for m in sink.received if m["type"] == "alert.firing")
    retrain = sum(1 for m in sink.received if m["type"] == "model.retrain_requested")
    say(
        f"done: {traffic.sent:,} predictions, {traffic.labeled:,} labels; "
        f"{plural(fired, 'alert')} fired, {plural(retrain, 'retraining request')}, every "
        f"signature verified. The data stays in {folder}."
    )
    return 0


def _undelivered(http: httpx.Client) -> bool:
    try:
        waiting = http.get("/api/v1/deliveries", params={"status": "pending,delivering"}).json()
    except httpx.HTTPError:
        return False
    return bool(waiting)
