"""Alerts from runs: rules applied to a computed run, transitions recorded, notifications put in
the outbox, all in the run's own transaction; silences and redelivery.

A run commits its result, the alert transition and one delivery row per channel together, or
none of them: an alert can't be lost between "decided" and "queued", and a run computed twice
(a replica died after committing) can't queue it twice, because the rule state it advances
is part of the same transaction.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import event, text
from sqlalchemy.orm import Session

from driftwatch.alerting import payloads, repository
from driftwatch.alerting.evaluate import AlertState, Transition, evaluate
from driftwatch.alerting.rules import Channel, Rule, RuleSet, RulesInvalid, load
from driftwatch.alerting.signing import new_webhook_id
from driftwatch.core.result import RunResult, SegmentSlice, segment_prefix
from driftwatch.core.time import utcnow
from driftwatch.core.vocabulary import split_segment
from driftwatch.errors import Conflict, NotFound
from driftwatch.metrics import ALERT_TRANSITIONS
from driftwatch.models import (
    Alert,
    AlertEvent,
    AlertRuleState,
    Baseline,
    Delivery,
    MonitoredModel,
    Run,
    Silence,
)
from driftwatch.text import plural

log = logging.getLogger("driftwatch.alerting")
SLACK_ENDPOINT = "slack"

# Set when a transaction that wrote deliveries commits: the dispatcher of this process wakes
# at once instead of at its next poll. On Postgres the commit also sends a NOTIFY on this
# channel, which wakes the dispatchers of the other replicas.
OUTBOX_WRITTEN = threading.Event()
OUTBOX_CHANNEL = "driftwatch_outbox"


def mark_outbox_written(session: Session) -> None:
    """Wake dispatchers when this transaction commits (NOTIFY is sent on commit only)."""
    session.info["outbox_written"] = True
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": OUTBOX_CHANNEL})


@event.listens_for(Session, "after_commit")
def _wake_dispatcher(session: Session) -> None:
    if session.info.pop("outbox_written", False):
        OUTBOX_WRITTEN.set()


# -- rules ---------------------------------------------------------------------------------------


class RulesSource:
    """The rules of a folder, read again when a file changes. A change that breaks them keeps
    the last good rules running, and says why in the log."""

    def __init__(self, location: str | Path) -> None:
        self.location = Path(location)
        self._lock = threading.Lock()
        self._signature: tuple[Any, ...] | None = None
        self._rules = RuleSet()

    def _files(self) -> tuple[Any, ...]:
        if self.location.is_dir():
            files = sorted([*self.location.glob("*.yaml"), *self.location.glob("*.yml")])
        else:
            files = [self.location] if self.location.exists() else []
        signature = []
        for path in files:
            try:
                stat = path.stat()
            except OSError:
                continue
            signature.append((str(path), stat.st_mtime_ns, stat.st_size))
        return tuple(signature)

    def check(self) -> RuleSet:
        """Load now; raise RulesInvalid listing every problem (``serve`` refuses to start)."""
        with self._lock:
            signature = self._files()
            rules = load(self.location) if signature else RuleSet()
            self._signature, self._rules = signature, rules
            return rules

    def current(self) -> RuleSet:
        with self._lock:
            signature = self._files()
            if signature != self._signature:
                self._signature = signature
                try:
                    self._rules = load(self.location) if signature else RuleSet()
                    log.info("rules loaded from %s: %s, %s", self.location,
                             plural(len(self._rules.rules), "rule"),
                             plural(len(self._rules.channels), "channel"))  # fmt: skip
                except RulesInvalid as error:
                    log.error("rules in %s have problems; the previous rules stay in force:\n%s",
                              self.location, error)  # fmt: skip
            return self._rules


@dataclass(frozen=True, slots=True)
class AlertingContext:
    """What evaluating a run needs besides the database."""

    rules: RuleSet = field(default_factory=RuleSet)
    public_url: str = "http://127.0.0.1:8000"


# -- evaluation ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Evaluated:
    """What the rules are applied to: a computed run, or one window of a stretch without
    traffic (the stretch's row, that window's span, and the stretch's empty result)."""

    run_id: int
    baseline_id: int
    window_start: datetime
    window_end: datetime
    result: RunResult

    @classmethod
    def of(cls, run: Run, result: RunResult) -> Evaluated:
        return cls(run.id, run.baseline_id, run.window_start, run.window_end, result)


def evaluate_run(
    session: Session, *, model: MonitoredModel, run: Run, context: AlertingContext,
    now: datetime | None = None,
) -> list[AlertEvent]:  # fmt: skip
    """Apply every rule matching the model to a computed run; record what changed."""
    if run.result is None:
        return []
    return evaluate_window(session, model=model, window=Evaluated.of(run, run.result),
                           context=context, now=now)  # fmt: skip


def evaluate_window(
    session: Session, *, model: MonitoredModel, window: Evaluated, context: AlertingContext,
    now: datetime | None = None,
) -> list[AlertEvent]:  # fmt: skip
    """Apply every rule matching the model to one window's result; record what changed (the
    transitions and notifications name the window's run)."""
    now = now or utcnow()
    metrics = window.result.metrics()
    recorded = []
    for rule in context.rules.rules:
        if not rule.applies_to(model.name):
            continue
        for target in _targets(rule, model, window.result):
            rule_state = repository.lock_rule_state(session, model_id=model.id, rule=rule.name,
                                                    segment=target.key)  # fmt: skip
            current = AlertState(
                state=rule_state.state,  # type: ignore[arg-type]
                breaches=rule_state.breaches,
                last_window_end=rule_state.last_window_end,
                last_notified_at=rule_state.last_notified_at,
            )
            following, transition = evaluate(
                rule, current, value=metrics.get(target.metric), window_end=window.window_end,
                now=now, label_coverage=metrics.get(target.coverage),
            )  # fmt: skip
            rule_state.state = following.state
            rule_state.breaches = following.breaches
            rule_state.last_window_end = following.last_window_end
            rule_state.last_notified_at = following.last_notified_at
            if transition is not None:
                recorded_event = _record(session, model=model, window=window, rule=rule,
                                         rule_state=rule_state, transition=transition,
                                         metrics=metrics, context=context, now=now,
                                         target=target)  # fmt: skip
                if recorded_event is not None:
                    recorded.append(recorded_event)
    session.flush()
    return recorded


@dataclass(frozen=True, slots=True)
class Target:
    """What one rule state watches: the whole window (``key`` ""), or one segment."""

    key: str  # "" or "feature=value"
    metric: str  # the metric's name in the run's metrics
    coverage: str  # the label coverage that goes with it
    segment: SegmentSlice | None = None
    segment_ref: tuple[str, str] | None = None  # (feature, value) the alert is about


def _targets(rule: Rule, model: MonitoredModel, result: RunResult) -> list[Target]:
    """The states a rule advances on a run of ``model``: one for a rule on the window; one
    per segment of the run for a ``per_segment`` rule; none (and an error naming the rule's
    file line) when it names a segment feature the model does not have."""
    problem = rule.segment_problem(model.name, list(model.segments or []))
    if problem is not None:
        log.error("%s; the rule is not evaluated on this model", problem,
                  extra={"model": model.name, "rule": rule.name})  # fmt: skip
        return []
    if rule.per_segment is None:
        parts = split_segment(rule.when.metric)
        if parts is None:
            return [Target("", rule.when.metric, "labels.coverage")]
        feature, value, _ = parts
        prefix = segment_prefix(feature, value)
        found = next((s for s in result.segments if (s.feature, s.value) == (feature, value)),
                     None)  # fmt: skip
        return [Target("", rule.when.metric, f"{prefix}.labels.coverage", found,
                       (feature, value))]  # fmt: skip
    out = []
    for segment in result.segments:
        if segment.feature == rule.per_segment:
            prefix = segment_prefix(segment.feature, segment.value)
            out.append(Target(f"{segment.feature}={segment.value}",
                              f"{prefix}.{rule.when.metric}", f"{prefix}.labels.coverage",
                              segment, (segment.feature, segment.value)))  # fmt: skip
    return out


def _record(
    session: Session, *, model: MonitoredModel, window: Evaluated, rule: Rule,
    rule_state: AlertRuleState, transition: Transition, metrics: dict[str, float | None],
    context: AlertingContext, now: datetime, target: Target,
) -> AlertEvent | None:  # fmt: skip
    alert = session.get(Alert, rule_state.alert_id) if rule_state.alert_id else None
    if transition.event in ("pending", "firing") and (alert is None or alert.state != "pending"):
        feature, value = target.segment_ref or (None, None)
        alert = Alert(model_id=model.id, rule=rule.name, severity=rule.severity,
                      condition=str(rule.when), metric=target.metric, state="pending",
                      window_start=window.window_start, window_end=window.window_end,
                      started_at=now, segment_feature=feature,
                      segment_value=value)  # fmt: skip
        session.add(alert)
    if alert is None:
        log.warning("rule %s on model %s: %s without an open alert; not recorded",
                    rule.name, model.name, transition.event)  # fmt: skip
        return None
    if transition.event in ("pending", "firing", "resolved", "cleared"):
        alert.state = transition.event
    if transition.event == "firing":
        alert.fired_at = now
    elif transition.event in ("resolved", "cleared"):
        alert.resolved_at = now
    alert.severity = rule.severity
    alert.condition = str(rule.when)
    alert.value = transition.value
    alert.run_id = window.run_id
    alert.window_start, alert.window_end = window.window_start, window.window_end
    session.flush()
    rule_state.alert_id = alert.id if alert.state in ("pending", "firing") else None
    silence = (
        repository.silence_for(session, model=model.name, rule=rule.name, now=now)
        if transition.notifies
        else None
    )
    recorded = AlertEvent(
        alert_id=alert.id, event=transition.event, run_id=window.run_id,
        window_start=window.window_start, window_end=window.window_end, value=transition.value,
        metrics=payloads.headline_metrics(metrics, target.metric, target.segment),
        silenced_by=silence.id if silence else None, created_at=now,
    )  # fmt: skip
    session.add(recorded)
    session.flush()
    ALERT_TRANSITIONS.labels(model.name, rule.name, transition.event).inc()
    log.info("alert %d (%s on %s): %s, %s = %g%s", alert.id, rule.name, model.name,
             transition.event, target.metric, transition.value,
             f" (silenced by silence {silence.id})" if silence else "",
             extra={"model": model.name, "alert_id": alert.id, "run_id": window.run_id,
                    "rule": rule.name, "event": transition.event})  # fmt: skip
    if transition.notifies and silence is None:
        _queue_notifications(session, model=model, window=window, rule=rule, alert=alert,
                             recorded=recorded, metrics=metrics, context=context,
                             now=now, target=target)  # fmt: skip
    return recorded


def _queue_notifications(
    session: Session, *, model: MonitoredModel, window: Evaluated, rule: Rule, alert: Alert,
    recorded: AlertEvent, metrics: dict[str, float | None], context: AlertingContext,
    now: datetime, target: Target,
) -> None:  # fmt: skip
    baseline = session.get(Baseline, window.baseline_id)
    data = payloads.alert_data(
        model=model.name,
        model_version=repository.model_version_in(
            session, model_id=model.id, start=window.window_start, end=window.window_end
        ),
        rule=rule, alert_id=alert.id, run_id=window.run_id, window_start=window.window_start,
        window_end=window.window_end, value=recorded.value, metrics=metrics,
        result=window.result,
        baseline={"id": baseline.id, "name": baseline.name} if baseline else None,
        public_url=context.public_url, segment=target.segment,
        metric=target.metric if target.segment_ref else None,
    )  # fmt: skip
    message_type = "alert.resolved" if recorded.event == "resolved" else "alert.firing"
    repeat = recorded.event == "repeat"
    outgoing: list[tuple[Channel, str]] = []
    for name in rule.notify:
        channel = context.rules.channels[name]
        if channel.type == "slack" or "alerts" in channel.events:
            outgoing.append((channel, message_type))
    if recorded.event == "firing":
        outgoing += [(context.rules.channels[name], "model.retrain_requested")
                     for name in rule.retrain]  # fmt: skip
    for channel, kind in outgoing:
        session.add(_delivery(channel, kind, data, alert=alert, recorded=recorded,
                              repeat=repeat, now=now))  # fmt: skip
    if outgoing:
        mark_outbox_written(session)


def _delivery(
    channel: Channel, message_type: str, data: dict[str, Any], *, alert: Alert,
    recorded: AlertEvent, repeat: bool, now: datetime,
) -> Delivery:  # fmt: skip
    if channel.type == "slack":
        message = payloads.slack_message(message_type, data, repeat=repeat)
        body = orjson.dumps({"channel": channel.channel, "repeat": repeat, **message}).decode()
        target, endpoint, secret_env = channel.channel or "", SLACK_ENDPOINT, None
    else:
        sent = {**data, "repeat": repeat} if message_type == "alert.firing" else data
        body = payloads.webhook_body(message_type, sent, timestamp=now)
        target, endpoint, secret_env = channel.url or "", channel.url or "", channel.secret_env
    return Delivery(
        alert_id=alert.id, event_id=recorded.id, channel=channel.name,
        channel_type=channel.type, target=target, endpoint=endpoint, secret_env=secret_env,
        message_type=message_type, webhook_id=new_webhook_id(), body=body, status="pending",
        attempts=0, retry_step=0, next_attempt_at=now, created_at=now,
    )  # fmt: skip


# -- silences and redelivery ---------------------------------------------------------------------


def create_silence(
    session: Session, *, model: str, rule: str, until: datetime, reason: str | None,
    created_by: str | None,
) -> Silence:  # fmt: skip
    silence = Silence(model=model, rule=rule, until=until, reason=reason, created_by=created_by,
                      created_at=utcnow())  # fmt: skip
    session.add(silence)
    session.flush()
    return silence


def expire_silence(session: Session, *, silence_id: int) -> Silence:
    silence = session.get(Silence, silence_id)
    if silence is None:
        raise NotFound(f"there is no silence {silence_id}")
    now = utcnow()
    if silence.until > now:
        silence.until = now
    session.flush()
    return silence


def redeliver(session: Session, *, delivery_id: int) -> Delivery:
    """Send a delivery again, as soon as possible, with the same ``webhook-id``."""
    delivery = repository.lock_delivery(session, delivery_id=delivery_id)
    if delivery is None:
        raise NotFound(f"there is no delivery {delivery_id}")
    now = utcnow()
    if delivery.status == "delivering" and delivery.lease_until and delivery.lease_until > now:
        raise Conflict(f"delivery {delivery_id} is being sent right now")
    delivery.status = "pending"
    delivery.next_attempt_at = now
    delivery.retry_step = 0
    delivery.lease_until = None
    delivery.owner = None
    mark_outbox_written(session)
    session.flush()
    return delivery
