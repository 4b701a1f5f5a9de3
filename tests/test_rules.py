"""Alert rule files: parsed as the contract shows them, every mistake named with file and line."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

from driftwatch.alerting import rules

SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
CHANNELS = """\
channels:
  ml-alerts:
    type: slack
    channel: "#ml-alerts"
  retrain-credit:
    type: webhook
    url: https://ml.example.com/hooks/retrain
    secret_env: DW_TEST_RETRAIN_SECRET
    events: [retrain]
"""


@pytest.fixture(autouse=True)
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DW_TEST_RETRAIN_SECRET", SECRET)


def check(text: str) -> list[str]:
    _, problems = rules.parse_files([("rules/a.yaml", textwrap.dedent(text))])
    return [str(p) for p in problems]


def test_the_contract_example_is_read_as_written() -> None:
    ruleset, problems = rules.parse_files([("rules/a.yaml", CHANNELS + textwrap.dedent("""\
        rules:
          - name: credit-drift
            model: credit-risk
            when: dataset.drifted_share > 0.3
            for: 2
            severity: critical
            notify: [ml-alerts]
            retrain: [retrain-credit]
            repeat: 6h
          - name: credit-f1
            model: credit-risk
            when: accuracy.f1 < 0.8
            notify: [ml-alerts]
        """))])  # fmt: skip
    assert problems == []
    drift, f1 = ruleset.rules
    assert drift.when == rules.Condition("dataset.drifted_share", ">", 0.3)
    assert (drift.for_windows, drift.severity, drift.repeat) == (2, "critical", timedelta(hours=6))
    assert (drift.notify, drift.retrain) == (("ml-alerts",), ("retrain-credit",))
    assert drift.line == 11  # the line of its first key
    assert (f1.for_windows, f1.severity, f1.repeat) == (1, "warning", None)
    assert ruleset.channels["retrain-credit"].events == ("retrain",)
    assert ruleset.channels["ml-alerts"].channel == "#ml-alerts"
    assert drift.applies_to("credit-risk")
    assert not drift.applies_to("fraud")


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        (
            "    when: dataset.drift > 0.3\n",
            "rules/a.yaml:12: rule 'r': unknown metric 'dataset.drift'",
        ),
        (
            "    when: accuracy.f2 < 0.8\n",
            "rules/a.yaml:12: rule 'r': unknown accuracy metric 'f2'",
        ),
        (
            "    when: dataset.drifted_share above 0.3\n",
            "rules/a.yaml:12: rule 'r': 'when' must read '<metric> <op> <number>'",
        ),
        ("    when: rows > many\n", "rules/a.yaml:12: rule 'r': 'many' is not a number"),
        (
            "    when: rows > 0\n    notify: [pager]\n",
            "rules/a.yaml:13: rule 'r': unknown channel 'pager' in notify",
        ),
        (
            "    when: rows > 0\n    retrain: [ml-alerts]\n",
            "rules/a.yaml:13: rule 'r': retrain requests go to webhook channels",
        ),
        (
            "    when: rows > 0\n    notify: [ml-alerts]\n    repeat: often\n",
            "rules/a.yaml:14: rule 'r': repeat: 'often' is not a duration",
        ),
        (
            "    when: rows > 0\n    notify: [ml-alerts]\n    for: two\n",
            "rules/a.yaml:14: rule 'r': 'for' must be a whole number",
        ),
        (
            "    when: rows > 0\n    notify: [ml-alerts]\n    severity: urgent\n",
            "rules/a.yaml:14: rule 'r': severity must be one of info, warning, critical",
        ),
        (
            "    when: rows > 0\n    notify: [ml-alerts]\n    colour: red\n",
            "rules/a.yaml:14: rule 'r': unknown key 'colour'",
        ),
        ("    when: rows > 0\n", "rules/a.yaml:11: rule 'r': give 'notify' or 'retrain'"),
        ("    notify: [ml-alerts]\n", "rules/a.yaml:11: rule 'r': 'when' is required"),
    ],
)
def test_a_mistake_in_a_rule_names_file_line_and_problem(rule: str, expected: str) -> None:
    text = CHANNELS + "rules:\n  - name: r\n" + rule
    assert any(p.startswith(expected) for p in check(text)), check(text)


@pytest.mark.parametrize(
    ("channels", "expected"),
    [
        ("channels:\n  x:\n    type: email\n", "rules/a.yaml:3: channel 'x': unknown type 'email'"),
        (
            "channels:\n  x:\n    type: slack\n",
            "rules/a.yaml:3: channel 'x': a slack channel needs 'channel'",
        ),
        (
            "channels:\n  x:\n    type: webhook\n    url: ftp://x\n    secret_env: "
            "DW_TEST_RETRAIN_SECRET\n",
            "rules/a.yaml:4: channel 'x': url must start with http",
        ),
        (
            "channels:\n  x:\n    type: webhook\n    url: https://x\n    secret_env: DW_NOT_SET\n",
            "rules/a.yaml:5: channel 'x': the variable DW_NOT_SET is not set",
        ),
        (
            "channels:\n  x:\n    type: webhook\n    url: https://x\n",
            "rules/a.yaml:3: channel 'x': a webhook needs 'secret_env'",
        ),
        (
            "channels:\n  x:\n    type: webhook\n    url: https://x\n    secret_env: "
            "DW_TEST_RETRAIN_SECRET\n    events: [pages]\n",
            "rules/a.yaml:6: channel 'x': unknown event 'pages'",
        ),
        ("chanels:\n  x: 1\n", "rules/a.yaml:1: the file: unknown key 'chanels'"),
        ("channels: [1\n", "rules/a.yaml:2: not valid YAML"),
    ],
)
def test_a_mistake_in_a_channel_names_file_line_and_problem(channels: str, expected: str) -> None:
    assert any(p.startswith(expected) for p in check(channels)), check(channels)


def test_a_secret_that_is_not_a_standard_webhooks_secret_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DW_TEST_RETRAIN_SECRET", "hunter2")
    assert any("does not hold a usable Standard Webhooks secret: a Standard Webhooks secret "
               "starts with 'whsec_'" in p for p in check(CHANNELS))  # fmt: skip
    monkeypatch.setenv("DW_TEST_RETRAIN_SECRET", "whsec_not*base64")
    assert any("the part after 'whsec_' is not base64" in p for p in check(CHANNELS))


def test_rules_may_use_channels_of_another_file(tmp_path: Path) -> None:
    (tmp_path / "a-channels.yaml").write_text(CHANNELS)
    (tmp_path / "b-rules.yaml").write_text(
        "rules:\n  - name: r\n    when: rows < 1\n    notify: [ml-alerts]\n"
    )
    ruleset = rules.load(tmp_path)
    assert [r.name for r in ruleset.rules] == ["r"]
    assert ruleset.rules[0].path.endswith("b-rules.yaml")


def test_every_problem_is_reported_not_only_the_first(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(
        CHANNELS + "rules:\n  - name: r\n    when: nope > 1\n    notify: [x]\n"
        "  - name: r\n    when: rows < 1\n    notify: [ml-alerts]\n"
    )
    with pytest.raises(rules.RulesInvalid) as raised:
        rules.load(tmp_path)
    messages = [p.message for p in raised.value.problems]
    assert len(messages) == 3
    assert any("unknown metric 'nope'" in m for m in messages)
    assert any("unknown channel 'x'" in m for m in messages)
    assert any("another rule has this name" in m for m in messages)


def run_check(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "driftwatch.cli", "rules", "check", *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_check_command_exits_1_naming_each_problem(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("rules:\n  - name: r\n    when: rows <> 1\n")
    done = run_check(str(tmp_path))
    assert done.returncode == 1
    assert f"{tmp_path / 'bad.yaml'}:3: rule 'r': 'when' must read" in done.stderr
    assert "2 problems" in done.stderr


def test_the_check_command_counts_in_words(tmp_path: Path) -> None:
    text = (
        "channels:\n  ops:\n    type: slack\n    channel: '#ml'\n"
        "rules:\n  - name: r\n    when: rows < 1\n    notify: [ops]\n"
    )
    (tmp_path / "one.yaml").write_text(text)
    done = run_check(str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "1 rule, 1 channel, all valid" in done.stdout
    (tmp_path / "one.yaml").write_text(text.replace("rows < 1", "rows <> 1"))
    assert "\n1 problem in" in run_check(str(tmp_path)).stderr


def test_the_check_command_reads_a_missing_rules_folder_as_serve_does(tmp_path: Path) -> None:
    """No rules folder yet (a fresh directory): no rules, as serve starts with none; a path
    named on the command line that does not exist is still a problem."""
    missing = tmp_path / "rules"
    configured = run_check(env={"DRIFTWATCH_RULES_DIR": str(missing)})
    assert configured.returncode == 0, configured.stderr
    assert "no such folder, so no rules: serve runs without alerts" in configured.stdout
    named = run_check(str(missing))
    assert named.returncode == 1
    assert "no such file or folder" in named.stderr


def test_the_shipped_example_is_valid(tmp_path: Path) -> None:
    example = Path(__file__).parent.parent / "rules" / "examples" / "credit-risk.yaml"
    done = run_check(str(example), env={"RETRAIN_CREDIT_SECRET": SECRET})
    assert done.returncode == 0, done.stderr
    assert "5 rules, 2 channels, all valid" in done.stdout
    without_secret = run_check(str(example), env={"RETRAIN_CREDIT_SECRET": ""})
    assert without_secret.returncode == 1
    assert "the variable RETRAIN_CREDIT_SECRET is not set" in without_secret.stderr


def test_a_per_segment_rule_is_read_and_checked_against_the_models_segments() -> None:
    text = CHANNELS + textwrap.dedent("""\
        rules:
          - name: region-drift
            model: "credit-*"
            when: dataset.drifted_share > 0.3
            per_segment: region
            notify: [ml-alerts]
          - name: eu-f1
            model: "*"
            when: segment[plan=gold].accuracy.f1 < 0.8
            notify: [ml-alerts]
        """)
    ruleset, problems = rules.parse_files([("rules/a.yaml", text)])
    assert problems == []
    assert ruleset.rules[0].per_segment == "region"
    assert ruleset.rules[1].segment_feature() == "plan"
    found = rules.segment_problems(
        ruleset, {"credit-risk": ["region", "plan"], "credit-eu": [], "fraud": ["region"]}
    )
    assert [str(p) for p in found] == [
        "rules/a.yaml:11: rule 'region-drift': per_segment: 'region' is not a segment of model "
        "'credit-eu' (it has no segments; set them with PATCH /api/v1/models/credit-eu "
        '{"segments": [...]})',
        "rules/a.yaml:16: rule 'eu-f1': when: 'plan' is not a segment of model 'credit-eu' "
        "(it has no segments; set them with PATCH /api/v1/models/credit-eu "
        '{"segments": [...]})',
        "rules/a.yaml:16: rule 'eu-f1': when: 'plan' is not a segment of model 'fraud' (its "
        'segments: region; set them with PATCH /api/v1/models/fraud {"segments": [...]})',
    ]


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ("    when: segment[plan=gold].rows > 0\n    per_segment: plan\n",
         "rules/a.yaml:14: rule 'r': per_segment: 'when' names a metric of the window"),
        ("    when: segment[plan].rows > 0\n",
         "rules/a.yaml:13: rule 'r': 'segment[plan].rows': a segment's metric reads"),
        ("    when: segment[plan=gold].version[v2].rows > 0\n",
         "rules/a.yaml:13: rule 'r': 'segment[plan=gold].version[v2].rows': a segment has the "
         "window's metrics"),
        ("    when: segment[plan=gold].feature.age.colour > 0\n",
         "rules/a.yaml:13: rule 'r': unknown metric 'feature.age.colour'"),
    ],
)  # fmt: skip
def test_a_mistake_in_a_segment_rule_names_file_line_and_problem(rule: str, expected: str) -> None:
    text = CHANNELS + "rules:\n  - name: r\n    notify: [ml-alerts]\n" + rule
    assert any(p.startswith(expected) for p in check(text)), check(text)
