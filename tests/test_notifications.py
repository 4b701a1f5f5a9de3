"""The parts of notifications short of the dispatcher: signatures, Retry-After, message contents,
rule reloads, and each sender against hostile receivers (real servers on 127.0.0.1)."""

from __future__ import annotations

import base64
import email.utils
import json
import logging
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from driftwatch.alerting import payloads, signing
from driftwatch.alerting.senders import Outcome, SlackSender, WebhookSender, parse_retry_after
from driftwatch.alerting.service import RulesSource
from driftwatch.config import Settings
from driftwatch.core.result import FeatureDrift
from driftwatch.text import RedactUrls, redact_url, redact_urls_in
from tests.servers import FakeSlack, Receiver, always

SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()


@pytest.mark.parametrize(
    ("webhook_id", "body"),
    [
        ("msg_1", b'{"type": "alert.firing"}'),
        ("msg_2f1c", '{"model": "caf\u00e9", "emoji": "\u2705"}'.encode()),
        ("msg_" + "x" * 60, b"{}"),
        ("msg_big", b'{"v": "' + b"a" * 100_000 + b'"}'),
    ],
)
def test_signatures_verify_with_the_standardwebhooks_package(webhook_id: str, body: bytes) -> None:
    key = signing.secret_key(SECRET)
    now = int(time.time())
    headers = signing.headers(key, webhook_id=webhook_id, timestamp=now, body=body)
    assert headers["webhook-id"] == webhook_id
    assert headers["webhook-timestamp"] == str(now)
    Webhook(SECRET).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(body + b" ", headers)
    other = "whsec_" + base64.b64encode(bytes(range(1, 33))).decode()
    with pytest.raises(WebhookVerificationError):
        Webhook(other).verify(body, headers)


@pytest.mark.parametrize(
    ("secret", "problem"),
    [
        ("hunter2", "starts with 'whsec_'"),
        ("whsec_***", "not base64"),
        ("whsec_" + base64.b64encode(b"short").decode(), "shorter than 16 bytes"),
    ],
)
def test_bad_secrets_are_refused(secret: str, problem: str) -> None:
    with pytest.raises(signing.BadSecret, match=problem):
        signing.secret_key(secret)


NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, None),
        ("", None),
        ("5", 5.0),
        ("0", 0.0),
        ("-3", 0.0),
        ("1.5", 1.5),
        ("soon", None),
        (email.utils.formatdate(NOW + 120, usegmt=True), 120.0),
        (email.utils.formatdate(NOW - 60, usegmt=True), 0.0),
        ("999999999", 86400.0),  # capped at a day
    ],
)
def test_retry_after_reads_seconds_and_dates(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header, now=NOW) == seconds


@pytest.mark.parametrize(
    ("outcome", "counts"),
    [
        (Outcome(True, reached=True, status_code=200), False),
        (Outcome(False, error="connect refused"), True),  # no answer
        (Outcome(False, reached=True, status_code=500), True),
        (Outcome(False, reached=True, status_code=503), True),
        (Outcome(False, reached=True, status_code=429), False),  # "slow down" is an answer
        (Outcome(False, reached=True, status_code=400), False),
    ],
)
def test_what_counts_toward_an_endpoints_breaker(outcome: Outcome, counts: bool) -> None:
    assert outcome.endpoint_failure is counts


def test_the_most_drifted_features_come_first_whatever_their_test() -> None:
    features = [
        FeatureDrift(name=name, kind="numerical", stattest=test, score=score,
                     threshold=threshold, drifted=drifted, missing_share=0.0)
        for name, test, score, threshold, drifted in [
            ("a", "ks", 0.01, 0.05, True), ("b", "wasserstein", 0.9, 0.1, True),
            ("c", "ks", 1e-9, 0.05, True), ("d", "psi", 0.05, 0.1, False),
            ("e", "ks", None, 0.05, None),
        ]
    ]  # fmt: skip
    # c: 5e7 times below; b: 9 times above; a: 5 times below
    assert [f["name"] for f in payloads.most_drifted(features)] == ["c", "b", "a"]
    assert len(payloads.most_drifted(features, limit=1)) == 1


def test_insufficient_features_are_named_apart_from_drifted_ones_with_their_p_values() -> None:
    """The calibrated verdict: a feature the window had too few rows to tell is listed on its
    own (webhook data and Slack), never among the drifted; p-values are shown where present."""
    features = [
        FeatureDrift(name=name, kind="numerical", stattest=test, score=score, threshold=0.1,
                     drifted=verdict == "drift", missing_share=0.0, p_value=p_value,
                     verdict=verdict, detectable=detectable)
        for name, test, score, verdict, p_value, detectable in [
            ("income", "wasserstein", 0.31, "drift", 0.0004, 0.12),
            ("age<b>", "wasserstein", 0.15, "insufficient", 0.2, 0.23),
            ("tenure", "wasserstein", 0.02, "no_drift", 0.7, 0.08),
        ]
    ]  # fmt: skip
    drifted = payloads.most_drifted(features)
    unsure = payloads.insufficient(features)
    assert [(f["name"], f["p_value"]) for f in drifted] == [("income", 0.0004)]
    assert unsure == [{"name": "age<b>", "stattest": "wasserstein", "score": 0.15,
                       "threshold": 0.1, "detectable": 0.23, "p_value": 0.2}]  # fmt: skip
    data = {
        "model": "m", "model_version": None, "rule": "drift", "severity": "warning",
        "alert_id": 3, "run_id": 9,
        "window": {"start": "2026-11-20T10:00:00Z", "end": "2026-11-20T11:00:00Z"},
        "condition": "dataset.drifted_share > 0.3", "value": 0.5, "threshold": 0.3,
        "drifted_features": drifted, "insufficient_features": unsure, "rows": 40,
        "labeled_rows": 0, "dashboard_url": "http://127.0.0.1:8000/models/m",
    }  # fmt: skip
    sections = [b["text"]["text"] for b in payloads.slack_message("alert.firing", data)["blocks"]
                if b["type"] == "section" and "fields" not in b]  # fmt: skip
    assert sections == [
        "*Most drifted features*\n- `income` wasserstein 0.31 (threshold 0.1, p = 0.0004)",
        "*Not enough rows to tell* (not counted as drifted, nor as no drift)\n"
        "- `age&lt;b&gt;` wasserstein 0.15 (detectable 0.23, threshold 0.1, p = 0.2)",
    ]
    # Evidently's rule: no p-value, no insufficient feature, the message as before
    evidently = [f.model_copy(update={"p_value": None, "verdict": None, "detectable": None})
                 for f in features]  # fmt: skip
    assert payloads.insufficient(evidently) == []
    assert payloads.most_drifted(evidently)[0]["p_value"] is None
    plain = {**data, "drifted_features": payloads.most_drifted(evidently),
             "insufficient_features": []}  # fmt: skip
    text = str(payloads.slack_message("alert.firing", plain)["blocks"])
    assert "p = " not in text
    assert "Not enough rows" not in text


def test_slack_text_escapes_markup_and_falls_back_to_plain_text() -> None:
    data = {
        "model": "m<1>", "model_version": None, "rule": "r&d", "severity": "warning",
        "alert_id": 3, "run_id": 9,
        "window": {"start": "2026-11-20T10:00:00Z", "end": "2026-11-20T11:00:00Z"},
        "condition": "accuracy.f1 < 0.8", "value": 0.71234567, "threshold": 0.8,
        "drifted_features": [], "rows": 1200, "labeled_rows": 900,
        "dashboard_url": "http://127.0.0.1:8000/models/m",
    }  # fmt: skip
    message = payloads.slack_message("alert.firing", data)
    assert message["text"] == (
        "[WARNING] r&d firing on m<1>: accuracy.f1 = 0.7123 (rule: accuracy.f1 < 0.8), "
        "window 2026-11-20 10:00 - 11:00 UTC"
    )
    rendered = str(message["blocks"])
    assert "`m&lt;1&gt;`" in rendered
    assert "*r&amp;d*" in rendered
    assert "1,200 (900 labeled)" in rendered
    resolved = payloads.slack_message("alert.resolved", data)
    assert resolved["blocks"][0]["text"]["text"].startswith("Resolved: ")


RULE = """channels:
  s:
    type: slack
    channel: "#x"
rules:
  - name: {name}
    model: "*"
    when: rows < 10
    notify: [s]
"""


def test_rules_reload_when_a_file_changes_and_a_broken_edit_keeps_the_last_good_rules(
    tmp_path: Path,
) -> None:
    source = RulesSource(tmp_path)
    assert source.current().rules == []
    path = tmp_path / "a.yaml"
    path.write_text(RULE.format(name="first"))
    assert [r.name for r in source.current().rules] == ["first"]
    path.write_text(RULE.format(name="second") + "    for: soon\n")  # broken
    assert [r.name for r in source.current().rules] == ["first"]
    path.write_text(RULE.format(name="third"))
    assert [r.name for r in source.current().rules] == ["third"]


@pytest.mark.slow
def test_serve_refuses_to_start_with_broken_rules(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(RULE.format(name="r").replace("[s]", "[nowhere]"))
    finished = subprocess.run(
        [sys.executable, "-m", "driftwatch.cli", "serve", "--port", "1"],
        env={"DRIFTWATCH_RULES_DIR": str(tmp_path), "PATH": "/usr/bin:/bin",
             "DRIFTWATCH_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert finished.returncode == 1
    assert "bad.yaml:9: " in finished.stderr
    assert "unknown channel 'nowhere'" in finished.stderr


# -- hostile receivers: huge answers, answers a byte a second --------------------------------

HUGE = 50 * 1024 * 1024


@pytest.fixture
def webhook_secret(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("DW_TEST_NOTIFY_SECRET", SECRET)
    return "DW_TEST_NOTIFY_SECRET"


def _send(sender: WebhookSender, url: str, secret_env: str) -> tuple[Outcome, float, int]:
    """One webhook attempt: its outcome, how long it took, and the most memory it held."""
    tracemalloc.start()
    began = time.monotonic()
    try:
        outcome = sender.send(url=url, secret_env=secret_env, webhook_id="msg_x", body="{}")
        return outcome, time.monotonic() - began, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("status", [200, 500])
def test_a_huge_webhook_answer_is_not_read_whole(status: int, webhook_secret: str) -> None:
    """A receiver answering 50 MB (made as it is written): at most a small prefix is read."""
    receiver = Receiver(always(status), huge_body=lambda _n: HUGE)
    sender = WebhookSender(5.0)
    try:
        outcome, took, peak = _send(sender, receiver.url, webhook_secret)
    finally:
        sender.close()
        receiver.close()
    assert outcome.delivered is (status == 200)
    assert outcome.status_code == status
    assert peak < 4 * 1024 * 1024, f"{peak / 1e6:.0f} MB held for one answer"
    assert took < 3
    if status == 500:
        assert outcome.error is not None
        assert outcome.error.startswith("HTTP 500: xxx")
        assert len(outcome.error) < 400


def test_a_webhook_receiver_dripping_its_answer_is_cut_at_the_deadline(
    webhook_secret: str,
) -> None:
    """One byte a second: every read comes within the timeout, the whole never does."""
    receiver = Receiver(always(), drip_seconds=lambda _n: 0.3)
    sender = WebhookSender(1.0)
    try:
        outcome, took, _peak = _send(sender, receiver.url, webhook_secret)
    finally:
        sender.close()
        receiver.close()
    assert took < 1.0 + 1.0  # (a loaded machine)
    assert not outcome.delivered
    assert not outcome.reached  # counts toward the breaker
    assert outcome.error == "no complete answer within 1 s (DRIFTWATCH_DELIVERY_TIMEOUT_SECONDS)"


def _slack(slack: FakeSlack, timeout: float) -> tuple[SlackSender, Callable[[], Outcome]]:
    sender = SlackSender(token=SecretStr("xoxb-t"), api_url=slack.api_url, timeout=timeout)
    body = json.dumps({"channel": "#c", "text": "t", "blocks": []})
    return sender, lambda: sender.send(body=body, thread_ts=None)


def test_a_dripping_slack_api_is_cut_at_the_deadline() -> None:
    slack = FakeSlack(always(), drip_seconds=lambda _n: 0.3)
    sender, send = _slack(slack, 1.0)
    began = time.monotonic()
    try:
        outcome = send()
    finally:
        sender.close()
        slack.close()
    assert time.monotonic() - began < 1.0 + 1.0
    assert not outcome.delivered
    assert outcome.error == "no complete answer within 1 s (DRIFTWATCH_DELIVERY_TIMEOUT_SECONDS)"


def test_a_huge_slack_answer_is_not_read_whole() -> None:
    slack = FakeSlack(always(), huge_body=lambda _n: HUGE)
    sender, send = _slack(slack, 5.0)
    tracemalloc.start()
    try:
        outcome = send()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        sender.close()
        slack.close()
    assert peak < 8 * 1024 * 1024, f"{peak / 1e6:.0f} MB held for one answer"
    assert not outcome.delivered
    assert outcome.error is not None
    assert "larger than" in outcome.error


def test_slack_still_answers_normally_through_the_bounded_client() -> None:
    slack = FakeSlack(always())
    sender, send = _slack(slack, 5.0)
    try:
        outcome = send()
    finally:
        sender.close()
        slack.close()
    assert outcome.delivered, outcome
    assert outcome.response == {"channel": "C0TESTCHAN", "ts": "1700000000.000000",
                                "thread_ts": None}  # fmt: skip
    [posted] = slack.posted()
    assert posted["authorization"] == "Bearer xoxb-t"


@pytest.mark.parametrize(
    ("timeout", "lease"), [(10.0, 10.0), (10.0, 5.0), (10.0, 14.9), (1.0, 5.0)]
)
def test_a_delivery_lease_not_outlasting_the_deadline_is_refused(
    timeout: float, lease: float
) -> None:
    """A lease that ends while its attempt may still run lets another process send the same
    message a second time."""
    with pytest.raises(ValidationError) as refused:
        Settings(delivery_timeout_seconds=timeout, delivery_lease_seconds=lease)
    [problem] = refused.value.errors()
    assert problem["loc"] == ("delivery_lease_seconds",)
    assert "longer than DRIFTWATCH_DELIVERY_TIMEOUT_SECONDS" in problem["msg"]
    assert Settings(delivery_timeout_seconds=timeout, delivery_lease_seconds=timeout + 5)


@pytest.mark.slow
def test_serve_refuses_to_start_with_a_lease_shorter_than_the_deadline(tmp_path: Path) -> None:
    finished = subprocess.run(
        [sys.executable, "-m", "driftwatch.cli", "serve", "--port", "1"],
        env={"DRIFTWATCH_DELIVERY_LEASE_SECONDS": "8", "PATH": "/usr/bin:/bin",
             "DRIFTWATCH_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert finished.returncode == 2
    assert "Traceback" not in finished.stderr
    assert finished.stderr == (
        "driftwatch: DRIFTWATCH_DELIVERY_LEASE_SECONDS='8': must be at least 15 (5 s longer "
        "than DRIFTWATCH_DELIVERY_TIMEOUT_SECONDS, 10 s): a lease that ends while its attempt "
        "still runs lets another process send the same message again\n"
    )


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://hooks.example/x?token=SECRET", "https://hooks.example/x?REDACTED"),
        ("https://user:pass@hooks.example:8443/a/b?c=1#part", "https://hooks.example:8443/a/b?REDACTED"),
        ("http://127.0.0.1:9000/hooks", "http://127.0.0.1:9000/hooks"),
        ("https://hooks.example/x?", "https://hooks.example/x?REDACTED"),
        ("http://u:p@[::1]:80/p", "http://[::1]:80/p"),
        ("https://user:p@ss@hooks.example/p", "https://hooks.example/p"),
        ("https://user:p?ss@hooks.example/p", "https://REDACTED"),  # a stray ? in a password
        ("slack", "slack"),
        ("#ml-alerts", "#ml-alerts"),
    ],
)  # fmt: skip
def test_urls_are_shown_without_credentials_or_query(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_urls_inside_errors_and_log_records_are_redacted() -> None:
    error = "ConnectError: for url 'https://u:pw@hooks.example/x?token=s3cr3t': refused"
    assert (
        redact_urls_in(error) == "ConnectError: for url 'https://hooks.example/x?REDACTED': refused"
    )
    request = ("POST", "https://u:pw@h.example/x?token=s3cr3t", "200")
    record = logging.LogRecord(
        "httpx", logging.INFO, __file__, 1, 'HTTP Request: %s %s "%s"', request, None
    )
    assert RedactUrls().filter(record)
    assert record.getMessage() == 'HTTP Request: POST https://h.example/x?REDACTED "200"'
