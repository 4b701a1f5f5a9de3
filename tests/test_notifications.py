"""The pure parts of notifications: signatures, Retry-After, message contents, rule reloads."""

from __future__ import annotations

import base64
import email.utils
import subprocess
import sys
import time
from pathlib import Path

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from driftwatch.alerting import payloads, signing
from driftwatch.alerting.senders import Outcome, parse_retry_after
from driftwatch.alerting.service import RulesSource
from driftwatch.core.result import FeatureDrift

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
