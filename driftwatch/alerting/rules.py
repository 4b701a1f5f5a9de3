"""Alert rule files (``rules/*.yaml``, CONTRACT section 5): parsed and checked, every mistake
reported with its file, line and what is wrong. Pure: no database, no network.

The YAML is read as a node tree (``yaml.compose``) rather than plain data, so that every value
keeps the line it came from.
"""

from __future__ import annotations

import fnmatch
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Literal

import yaml

from driftwatch.alerting.signing import BadSecret, secret_key
from driftwatch.core.time import parse_duration
from driftwatch.core.vocabulary import metric_problem, split_segment

OPERATORS = (">=", "<=", "==", "!=", ">", "<")
SEVERITIES = ("info", "warning", "critical")
EVENTS = ("alerts", "retrain")
_WHEN = re.compile(r"^\s*(?P<metric>\S+)\s*(?P<op>>=|<=|==|!=|>|<)\s*(?P<value>\S+)\s*$")


@dataclass(frozen=True, slots=True)
class RuleProblem:
    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


class RulesInvalid(ValueError):
    def __init__(self, problems: list[RuleProblem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class Channel:
    name: str
    type: Literal["slack", "webhook"]
    channel: str | None = None  # slack
    url: str | None = None  # webhook
    secret_env: str | None = None  # webhook
    events: tuple[str, ...] = EVENTS


@dataclass(frozen=True, slots=True)
class Condition:
    metric: str
    op: str
    value: float

    def holds(self, observed: float) -> bool:
        return {
            ">": observed > self.value,
            ">=": observed >= self.value,
            "<": observed < self.value,
            "<=": observed <= self.value,
            "==": observed == self.value,
            "!=": observed != self.value,
        }[self.op]

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.value:g}"


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    model: str  # a glob
    when: Condition
    path: str
    line: int
    for_windows: int = 1
    severity: str = "warning"
    notify: tuple[str, ...] = ()
    retrain: tuple[str, ...] = ()
    repeat: timedelta | None = None
    # accuracy.* rules: evaluated only on windows whose label coverage reached it
    min_label_coverage: float | None = None
    # CONTRACT section 10: evaluated for each value of this segment feature separately
    per_segment: str | None = None

    def applies_to(self, model: str) -> bool:
        return fnmatch.fnmatchcase(model, self.model)

    def segment_feature(self) -> str | None:
        """The segment feature the rule needs the model to have: its ``per_segment``, or
        the feature its metric's ``segment[feature=value]`` names."""
        if self.per_segment is not None:
            return self.per_segment
        parts = split_segment(self.when.metric)
        return None if parts is None else parts[0]

    def segment_problem(self, model: str, segments: list[str]) -> RuleProblem | None:
        """Why the rule cannot apply to ``model`` (whose segment features are ``segments``):
        it names a segment feature the model does not have; None when it can."""
        feature = self.segment_feature()
        if feature is None or feature in segments:
            return None
        key = "per_segment" if self.per_segment is not None else "when"
        has = f"its segments: {', '.join(segments)}" if segments else "it has no segments"
        return RuleProblem(
            self.path, self.line,
            f"rule {self.name!r}: {key}: {feature!r} is not a segment of model {model!r} "
            f"({has}; set them with PATCH /api/v1/models/{model} {{\"segments\": [...]}})",
        )  # fmt: skip


@dataclass(slots=True)
class RuleSet:
    channels: dict[str, Channel] = field(default_factory=dict)
    rules: list[Rule] = field(default_factory=list)


class _Reader:
    """Walks one file's node tree, collecting problems instead of stopping at the first."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.problems: list[RuleProblem] = []

    def problem(self, node: yaml.Node | None, message: str) -> None:
        line = node.start_mark.line + 1 if node is not None else 1
        self.problems.append(RuleProblem(self.path, line, message))

    def mapping(self, node: yaml.Node, what: str) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        if not isinstance(node, yaml.MappingNode):
            self.problem(node, f"{what}: expected a mapping of keys to values")
            return {}
        out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key, value in node.value:
            name = str(key.value)
            if name in out:
                self.problem(key, f"{what}: key {name!r} given twice")
            out[name] = (key, value)
        return out

    def unknown_keys(
        self, keys: Mapping[str, tuple[yaml.Node, yaml.Node]], allowed: tuple[str, ...], what: str
    ) -> None:
        for name, (key, _) in keys.items():
            if name not in allowed:
                self.problem(key, f"{what}: unknown key {name!r} (allowed: {', '.join(allowed)})")

    def text(self, node: yaml.Node, what: str) -> str | None:
        if not isinstance(node, yaml.ScalarNode) or node.value == "":
            self.problem(node, f"{what}: expected a text value")
            return None
        return str(node.value)

    def names(self, node: yaml.Node, what: str) -> list[tuple[str, yaml.Node]]:
        if isinstance(node, yaml.ScalarNode):
            return [(str(node.value), node)]
        if not isinstance(node, yaml.SequenceNode):
            self.problem(node, f"{what}: expected a list of channel names")
            return []
        return [(str(item.value), item) for item in node.value if isinstance(item, yaml.ScalarNode)]


def _channel(reader: _Reader, name: str, node: yaml.Node) -> Channel | None:
    what = f"channel {name!r}"
    keys = reader.mapping(node, what)
    if not keys:
        return None
    kind_node = keys.get("type", (None, None))[1]
    kind = reader.text(kind_node, f"{what}: type") if kind_node is not None else None
    if kind_node is None:
        reader.problem(node, f"{what}: 'type' is required (slack or webhook)")
        return None
    if kind == "slack":
        reader.unknown_keys(keys, ("type", "channel"), what)
        if "channel" not in keys:
            reader.problem(node, f"{what}: a slack channel needs 'channel', such as '#ml-alerts'")
            return None
        channel = reader.text(keys["channel"][1], f"{what}: channel")
        return Channel(name, "slack", channel=channel) if channel else None
    if kind == "webhook":
        reader.unknown_keys(keys, ("type", "url", "secret_env", "events"), what)
        url = reader.text(keys["url"][1], f"{what}: url") if "url" in keys else None
        if "url" not in keys:
            reader.problem(node, f"{what}: a webhook needs 'url'")
        elif url and not re.match(r"^https?://", url):
            reader.problem(keys["url"][1], f"{what}: url must start with http:// or https://")
        secret = None
        if "secret_env" not in keys:
            reader.problem(
                node,
                f"{what}: a webhook needs 'secret_env', the variable holding "
                "its 'whsec_...' secret",
            )
        else:
            secret_node = keys["secret_env"][1]
            secret = reader.text(secret_node, f"{what}: secret_env")
            if secret and not os.environ.get(secret):
                reader.problem(secret_node, f"{what}: the variable {secret} is not set")
            elif secret:
                try:
                    secret_key(os.environ[secret])
                except BadSecret as error:
                    reader.problem(
                        secret_node,
                        f"{what}: the variable {secret} does not hold a usable "
                        f"Standard Webhooks secret: {error}",
                    )
        events: tuple[str, ...] = EVENTS
        if "events" in keys:
            listed = reader.names(keys["events"][1], f"{what}: events")
            for event, event_node in listed:
                if event not in EVENTS:
                    reader.problem(
                        event_node,
                        f"{what}: unknown event {event!r} (allowed: {', '.join(EVENTS)})",
                    )
            events = tuple(e for e, _ in listed if e in EVENTS)
        return Channel(name, "webhook", url=url, secret_env=secret, events=events) if url else None
    reader.problem(kind_node, f"{what}: unknown type {kind!r} (slack or webhook)")
    return None


def _condition(reader: _Reader, node: yaml.Node, what: str) -> Condition | None:
    text = reader.text(node, f"{what}: when")
    if text is None:
        return None
    match = _WHEN.match(text)
    if match is None:
        reader.problem(
            node,
            f"{what}: 'when' must read '<metric> <op> <number>' with op one of "
            f"{' '.join(OPERATORS)}, such as 'dataset.drifted_share > 0.3'",
        )
        return None
    problem = metric_problem(match["metric"])
    if problem:
        reader.problem(node, f"{what}: {problem}")
        return None
    try:
        value = float(match["value"])
    except ValueError:
        reader.problem(node, f"{what}: {match['value']!r} is not a number")
        return None
    return Condition(match["metric"], match["op"], value)


_RULE_KEYS = (
    "name", "model", "when", "for", "severity", "notify", "retrain", "repeat",
    "min_label_coverage", "per_segment",
)  # fmt: skip


def _per_segment(reader: _Reader, node: yaml.Node, when: Condition | None, what: str) -> str | None:
    """``per_segment``: a segment feature's name, on a rule whose ``when`` tests a metric of
    the window (evaluated on each segment's)."""
    name = reader.text(node, f"{what}: per_segment")
    if name is None:
        return None
    if when is not None and when.metric.startswith(("segment[", "version[")):
        reader.problem(node, f"{what}: per_segment: 'when' names a metric of the window, such "
                             "as 'dataset.drifted_share' (tested on each segment of "
                             f"{name!r}), not {when.metric!r}")  # fmt: skip
        return None
    return name


def _min_label_coverage(
    reader: _Reader, node: yaml.Node, when: Condition | None, what: str
) -> float | None:
    """``min_label_coverage``: a number from 0 to 1, on a rule whose ``when`` tests an
    ``accuracy.*`` metric (the only ones labels make)."""
    key = f"{what}: min_label_coverage"
    try:
        value = float(node.value) if isinstance(node, yaml.ScalarNode) else math.nan
    except ValueError:
        value = math.nan
    if not (0 <= value <= 1):  # NaN too
        shown = node.value if isinstance(node, yaml.ScalarNode) else "a list or mapping"
        reader.problem(node, f"{key}: must be a number from 0 to 1 (a share of the window's "
                             f"predictions that have labels), got {shown!r}")  # fmt: skip
        return None
    if when is not None and not when.metric.startswith("accuracy."):
        reader.problem(node, f"{key}: applies to rules on accuracy.* metrics only; this rule's "
                             f"'when' tests {when.metric!r}")  # fmt: skip
        return None
    return value


def _rule(
    reader: _Reader, node: yaml.Node, index: int, channels: dict[str, Channel], seen: set[str]
) -> Rule | None:
    keys = reader.mapping(node, f"rule {index + 1}")
    if not keys:
        return None
    name = reader.text(keys["name"][1], f"rule {index + 1}: name") if "name" in keys else None
    if "name" not in keys:
        reader.problem(node, f"rule {index + 1}: 'name' is required")
    what = f"rule {name!r}" if name else f"rule {index + 1}"
    if name and name in seen:
        reader.problem(keys["name"][1], f"{what}: another rule has this name")
    if name:
        seen.add(name)
    reader.unknown_keys(keys, _RULE_KEYS, what)
    if "when" not in keys:
        reader.problem(node, f"{what}: 'when' is required, such as 'dataset.drifted_share > 0.3'")
    when = _condition(reader, keys["when"][1], what) if "when" in keys else None
    model = reader.text(keys["model"][1], f"{what}: model") if "model" in keys else "*"
    windows = 1
    if "for" in keys:
        raw = keys["for"][1]
        if not (
            isinstance(raw, yaml.ScalarNode) and str(raw.value).isdigit() and int(raw.value) > 0
        ):
            reader.problem(raw, f"{what}: 'for' must be a whole number of windows, 1 or more")
        else:
            windows = int(raw.value)
    severity = "warning"
    if "severity" in keys:
        severity = reader.text(keys["severity"][1], f"{what}: severity") or "warning"
        if severity not in SEVERITIES:
            reader.problem(
                keys["severity"][1], f"{what}: severity must be one of {', '.join(SEVERITIES)}"
            )
    repeat = None
    if "repeat" in keys:
        text = reader.text(keys["repeat"][1], f"{what}: repeat")
        try:
            repeat = parse_duration(text or "")
        except ValueError as error:
            reader.problem(keys["repeat"][1], f"{what}: repeat: {error}")
    min_coverage = None
    if "min_label_coverage" in keys:
        min_coverage = _min_label_coverage(reader, keys["min_label_coverage"][1], when, what)
    per_segment = None
    if "per_segment" in keys:
        per_segment = _per_segment(reader, keys["per_segment"][1], when, what)
    notify = _channel_list(reader, keys, "notify", what, channels, webhook_only=False)
    retrain = _channel_list(reader, keys, "retrain", what, channels, webhook_only=True)
    if not notify and not retrain and "notify" not in keys and "retrain" not in keys:
        reader.problem(node, f"{what}: give 'notify' or 'retrain' channels, or it alerts nobody")
    if name is None or when is None or model is None:
        return None
    return Rule(
        name=name,
        model=model,
        when=when,
        path=reader.path,
        line=node.start_mark.line + 1,
        for_windows=windows,
        severity=severity,
        notify=notify,
        retrain=retrain,
        repeat=repeat,
        min_label_coverage=min_coverage,
        per_segment=per_segment,
    )


def _channel_list(
    reader: _Reader,
    keys: dict[str, tuple[yaml.Node, yaml.Node]],
    key: str,
    what: str,
    channels: dict[str, Channel],
    *,
    webhook_only: bool,
) -> tuple[str, ...]:
    if key not in keys:
        return ()
    listed = reader.names(keys[key][1], f"{what}: {key}")
    for name, node in listed:
        channel = channels.get(name)
        if channel is None:
            known = ", ".join(sorted(channels)) or "none defined"
            reader.problem(node, f"{what}: unknown channel {name!r} in {key} (channels: {known})")
        elif webhook_only and channel.type != "webhook":
            reader.problem(
                node, f"{what}: retrain requests go to webhook channels; {name!r} is {channel.type}"
            )
        elif webhook_only and "retrain" not in channel.events:
            reader.problem(
                node,
                f"{what}: channel {name!r} does not take retrain events "
                "(its 'events' leave them out)",
            )
    return tuple(name for name, _ in listed if name in channels)


def _compose(text: str, path: str) -> tuple[yaml.Node | None, list[RuleProblem]]:
    try:
        return yaml.compose(text), []
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problem = getattr(error, "problem", None) or str(error)
        return None, [RuleProblem(path, line, f"not valid YAML: {problem}")]


def parse_files(files: list[tuple[str, str]]) -> tuple[RuleSet, list[RuleProblem]]:
    """(path, text) pairs read together: the channels of every file first, so that a rule may
    name a channel defined in another file."""
    ruleset = RuleSet()
    problems: list[RuleProblem] = []
    tops: list[tuple[_Reader, dict[str, tuple[yaml.Node, yaml.Node]]]] = []
    for path, text in files:
        root, found = _compose(text, path)
        problems += found
        if root is None:
            continue
        reader = _Reader(path)
        top = reader.mapping(root, "the file")
        reader.unknown_keys(top, ("channels", "rules"), "the file")
        if "channels" in top:
            for name, (_, node) in reader.mapping(top["channels"][1], "channels").items():
                if name in ruleset.channels:
                    reader.problem(node, f"channel {name!r} is defined twice")
                channel = _channel(reader, name, node)
                if channel is not None:
                    ruleset.channels[name] = channel
        tops.append((reader, top))
    seen: set[str] = set()
    for reader, top in tops:
        if "rules" in top:
            node = top["rules"][1]
            if not isinstance(node, yaml.SequenceNode):
                reader.problem(node, "rules: expected a list of rules")
            else:
                for index, item in enumerate(node.value):
                    rule = _rule(reader, item, index, ruleset.channels, seen)
                    if rule is not None:
                        ruleset.rules.append(rule)
        problems += reader.problems
    return ruleset, sorted(problems, key=lambda p: (p.path, p.line, p.message))


def segment_problems(ruleset: RuleSet, models: Mapping[str, list[str]]) -> list[RuleProblem]:
    """Rules naming a segment feature (``per_segment``, or ``segment[feature=...]`` in
    ``when``) that a model they apply to does not have; ``models``: each model's segment
    features, by name."""
    problems = []
    for rule in ruleset.rules:
        if rule.segment_feature() is None:
            continue
        for model, segments in sorted(models.items()):
            if rule.applies_to(model):
                problem = rule.segment_problem(model, segments)
                if problem is not None:
                    problems.append(problem)
    return problems


def load(location: str | Path) -> RuleSet:
    """Every ``*.yaml`` file of a folder (or one file), checked together; raises RulesInvalid
    listing every problem found."""
    path = Path(location)
    if path.is_dir():
        files = sorted([*path.glob("*.yaml"), *path.glob("*.yml")])
    elif path.exists():
        files = [path]
    else:
        raise RulesInvalid([RuleProblem(str(path), 1, "no such file or folder")])
    ruleset, problems = parse_files([(str(f), f.read_text()) for f in files])
    if problems:
        raise RulesInvalid(problems)
    return ruleset
