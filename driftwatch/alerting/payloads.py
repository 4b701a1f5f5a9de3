"""What a notification says: the webhook body (CONTRACT section 6) and the Slack message. Pure.

Both are built when the alert transition is committed and stored with the delivery, so every
retry sends the same bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import quote

import orjson

from driftwatch.alerting.rules import Rule
from driftwatch.core.result import FeatureDrift, RunResult, SegmentSlice, segment_prefix
from driftwatch.core.time import iso
from driftwatch.stats import registry as stattests

# Numbers a notification shows besides the rule's own metric, when the run has them.
HEADLINE_METRICS = (
    "dataset.drifted_share",
    "dataset.drifted_features",
    "prediction.score",
    "quality.missing_share",
    "rows",
    "labeled_rows",
)
MOST_DRIFTED_SHOWN = 5
SEVERITY_MARK = {"critical": ":red_circle:", "warning": ":large_orange_circle:"}
TITLES = {
    "alert.firing": "Firing",
    "alert.resolved": "Resolved",
    "model.retrain_requested": "Retraining requested",
}


def headline_metrics(
    metrics: dict[str, float | None], rule_metric: str, segment: SegmentSlice | None = None
) -> dict[str, float]:
    """The rule's metric first, then the run's headline numbers and accuracy (none missing);
    for an alert on a ``segment``, that segment's (``segment[region=EU].rows``, ...)."""
    prefix = "" if segment is None else segment_prefix(segment.feature, segment.value) + "."
    names = [rule_metric, *(prefix + name for name in HEADLINE_METRICS),
             *sorted(m for m in metrics if m.startswith(prefix + "accuracy."))]  # fmt: skip
    return {name: value for name in dict.fromkeys(names)
            if (value := metrics.get(name)) is not None}  # fmt: skip


def most_drifted(features: list[FeatureDrift], limit: int = MOST_DRIFTED_SHOWN) -> list[Any]:
    """The drifted features, the furthest past their threshold first (for a p-value, how many
    times smaller than its threshold; for a distance, how many times larger)."""

    def severity(feature: FeatureDrift) -> float:
        assert feature.score is not None
        assert feature.threshold is not None
        test = stattests.STATTESTS.get(feature.stattest or "")
        if test is not None and test.pvalue:
            return feature.threshold / max(feature.score, 1e-300)
        return feature.score / max(feature.threshold, 1e-300)

    drifted = [f for f in features
               if f.drifted and f.score is not None and f.threshold is not None]  # fmt: skip
    drifted.sort(key=severity, reverse=True)
    return [
        {"name": f.name, "stattest": f.stattest, "score": f.score, "threshold": f.threshold,
         "p_value": f.p_value}
        for f in drifted[:limit]
    ]  # fmt: skip


def insufficient(features: list[FeatureDrift], limit: int = MOST_DRIFTED_SHOWN) -> list[Any]:
    """The features the window had too few rows to tell (the calibrated verdict's
    "insufficient": not drifted, and not known not to have), in the run's order: apart from
    the drifted ones, and never counted as "no drift"."""
    return [
        {"name": f.name, "stattest": f.stattest, "score": f.score, "threshold": f.threshold,
         "detectable": f.detectable, "p_value": f.p_value}
        for f in features if f.verdict == "insufficient"
    ][:limit]  # fmt: skip


def alert_data(
    *, model: str, model_version: str | None, rule: Rule, alert_id: int, run_id: int,
    window_start: datetime, window_end: datetime, value: float,
    metrics: dict[str, float | None], result: RunResult, baseline: dict[str, Any] | None,
    public_url: str, segment: SegmentSlice | None = None, metric: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    """The ``data`` of every message about one alert transition; an alert on a ``segment``
    (``metric``: the rule's metric in it) tells that segment's numbers, and names it."""
    base = public_url.rstrip("/")
    shown: RunResult | SegmentSlice = result if segment is None else segment
    data = {
        "model": model,
        "model_version": model_version,
        "rule": rule.name,
        "severity": rule.severity,
        "alert_id": alert_id,
        "run_id": run_id,
        "window": {"start": iso(window_start), "end": iso(window_end)},
        "condition": str(rule.when),
        "value": value,
        "threshold": rule.when.value,
        "metrics": headline_metrics(metrics, metric or rule.when.metric, segment),
        "drifted_features": most_drifted(shown.features),
        "insufficient_features": insufficient(shown.features),
        "baseline": baseline,
        "rows": shown.rows,
        "labeled_rows": shown.labeled_rows,
        "dashboard_url": f"{base}/models/{model}",
        "alert_url": f"{base}/alerts?alert={alert_id}",
        "run_url": f"{base}/api/v1/models/{model}/runs/{run_id}",
    }
    if segment is not None:
        data["segment"] = {"feature": segment.feature, "value": segment.value}
        data["metric"] = metric
        data["dashboard_url"] = (
            f"{base}/models/{model}?segment={quote(segment.feature)}={quote(segment.value)}"
        )
    return data


def webhook_body(message_type: str, data: dict[str, Any], *, timestamp: datetime) -> str:
    return orjson.dumps({"type": message_type, "timestamp": iso(timestamp), "data": data}).decode()


def _escape(text: str) -> str:
    """Slack mrkdwn: only these three characters are markup in plain text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _window(data: dict[str, Any]) -> str:
    start = datetime.fromisoformat(data["window"]["start"])
    end = datetime.fromisoformat(data["window"]["end"])
    same_day = start.date() == end.date()
    return (f"{start:%Y-%m-%d %H:%M} - {end:%H:%M} UTC" if same_day
            else f"{start:%Y-%m-%d %H:%M} - {end:%Y-%m-%d %H:%M} UTC")  # fmt: skip


def _p_value(feature: dict[str, Any]) -> str:
    value = feature.get("p_value")
    return "" if value is None else f", p = {_number(value)}"


def _detectable(feature: dict[str, Any]) -> str:
    """What the window could have told: for a distance, the smallest score it calls drift
    against the threshold; for a p-value test, the largest p-value."""
    test = stattests.STATTESTS.get(feature.get("stattest") or "")
    detectable = feature.get("detectable")
    if detectable is None:
        return f"threshold {_number(feature['threshold'])}"
    if test is not None and test.pvalue:
        return f"drift at p <= {_number(detectable)}"
    return f"detectable {_number(detectable)}, threshold {_number(feature['threshold'])}"


def _segment_text(data: dict[str, Any]) -> str:
    """' in segment region=EU' for an alert on a segment, else nothing."""
    segment = data.get("segment")
    return "" if not segment else f" in segment {segment['feature']}={segment['value']}"


def slack_text(message_type: str, data: dict[str, Any], *, repeat: bool = False) -> str:
    """The plain fallback (notifications, screen readers)."""
    state = "still firing" if repeat else TITLES[message_type].lower()
    return (
        f"[{data['severity'].upper()}] {data['rule']} {state} on {data['model']}"
        f"{_segment_text(data)}: "
        f"{data['condition'].split(' ')[0]} = {_number(data['value'])} "
        f"(rule: {data['condition']}), window {_window(data)}"
    )


def slack_message(
    message_type: str, data: dict[str, Any], *, repeat: bool = False
) -> dict[str, Any]:
    """Block Kit: what fired, on which model, the value against the threshold, the window,
    the most drifted features and a link to the dashboard, with a text fallback."""
    resolved = message_type == "alert.resolved"
    mark = (
        ":white_check_mark:"
        if resolved
        else SEVERITY_MARK.get(data["severity"], ":large_blue_circle:")
    )
    title = "Still firing" if repeat else TITLES[message_type]
    version = f" ({_escape(data['model_version'])})" if data.get("model_version") else ""
    rows = data.get("rows")
    fields = [
        f"*Severity*\n{data['severity']}",
        f"*Model*\n`{_escape(data['model'])}`{version}",
        f"*Condition*\n`{_escape(data['condition'])}`",
        f"*Value*\n{_number(data['value'])} (threshold {_number(data['threshold'])})",
        f"*Window*\n{_window(data)}",
        f"*Rows*\n{rows:,} ({data.get('labeled_rows') or 0:,} labeled)"
        if isinstance(rows, int) else "*Rows*\n-",
    ]  # fmt: skip
    if data.get("segment"):
        segment = data["segment"]
        shown = f"{_escape(segment['feature'])}={_escape(segment['value'])}"
        fields.insert(2, f"*Segment*\n`{shown}`")
    header = f"{title}: {data['rule']} on {data['model']}{_segment_text(data)}"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "emoji": True, "text": header[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": f"{mark} *{_escape(data['rule'])}*"},
         "fields": [{"type": "mrkdwn", "text": text} for text in fields]},
    ]  # fmt: skip
    if not resolved:
        blocks += _feature_section(
            "*Most drifted features*",
            data.get("drifted_features"),
            lambda f: f"threshold {_number(f['threshold'])}{_p_value(f)}",
        )
        blocks += _feature_section(
            "*Not enough rows to tell* (not counted as drifted, nor as no drift)",
            data.get("insufficient_features"),
            lambda f: f"{_detectable(f)}{_p_value(f)}",
        )
    blocks.append({"type": "actions", "elements": [
        {"type": "button", "text": {"type": "plain_text", "text": "Open in driftwatch"},
         "url": data["dashboard_url"], "action_id": "open_dashboard"},
    ]})  # fmt: skip
    blocks.append({"type": "context", "elements": [
        {"type": "mrkdwn",
         "text": f"alert #{data['alert_id']} - run #{data['run_id']} - driftwatch"},
    ]})  # fmt: skip
    return {"text": slack_text(message_type, data, repeat=repeat), "blocks": blocks}


def _feature_section(
    title: str, features: list[dict[str, Any]] | None, note: Callable[[dict[str, Any]], str]
) -> list[dict[str, Any]]:
    """A section listing features (test, score and ``note``), or nothing without features."""
    if not features:
        return []
    lines = [f"- `{_escape(f['name'])}` {f['stattest']} {_number(f['score'])} ({note(f)})"
             for f in features]  # fmt: skip
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": title + "\n" + "\n".join(lines)}}
    ]
