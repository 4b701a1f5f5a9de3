"""Alerts, their transitions, silences, and the notification outbox with its attempts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from driftwatch.models.base import Base, BigIntPK, Name, UTCDateTime, utcnow


class AlertRuleState(Base):
    """Where one rule stands for one model: the state machine's memory between windows.

    Its row is locked while a run's transitions are written, so two replicas computing two
    windows of one model apply them one after the other."""

    __tablename__ = "alert_rule_states"

    model_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("models.id", ondelete="CASCADE"), primary_key=True
    )
    rule: Mapped[str] = mapped_column(Name, primary_key=True)
    # a per_segment rule's segment, "feature=value" (CONTRACT section 10); "" for the window
    segment: Mapped[str] = mapped_column(Text, primary_key=True, default="", server_default="")
    state: Mapped[str] = mapped_column(String(20), default="ok")  # ok, pending, firing
    breaches: Mapped[int] = mapped_column(Integer, default=0)
    last_window_end: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    alert_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # the open alert


class Alert(Base):
    """One incident of a rule on a model: pending -> firing -> resolved (or pending -> cleared)."""

    __tablename__ = "alerts"
    __table_args__ = (
        Index("ix_alerts_model_id_state", "model_id", "state"),
        Index("ix_alerts_state", "state"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    model_id: Mapped[int] = mapped_column(Integer, ForeignKey("models.id", ondelete="CASCADE"))
    rule: Mapped[str] = mapped_column(Name)
    severity: Mapped[str] = mapped_column(String(20))
    condition: Mapped[str] = mapped_column(Text)  # "dataset.drifted_share > 0.3"
    metric: Mapped[str] = mapped_column(String(300))
    state: Mapped[str] = mapped_column(String(20))  # pending, firing, resolved, cleared
    value: Mapped[float | None] = mapped_column(Float(53), nullable=True)  # the latest value
    run_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # the latest run
    window_start: Mapped[datetime] = mapped_column(UTCDateTime)  # the latest window
    window_end: Mapped[datetime] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    fired_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # a per_segment rule's alert: the segment it is about (null: the whole window)
    segment_feature: Mapped[str | None] = mapped_column(Name, nullable=True)
    segment_value: Mapped[str | None] = mapped_column(Text, nullable=True)


class AlertEvent(Base):
    """One transition of an alert, with the run and the values that caused it."""

    __tablename__ = "alert_events"
    __table_args__ = (Index("ix_alert_events_alert_id", "alert_id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    alert_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("alerts.id", ondelete="CASCADE"))
    event: Mapped[str] = mapped_column(String(20))  # pending, firing, repeat, resolved, cleared
    run_id: Mapped[int] = mapped_column(BigInteger)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime)
    window_end: Mapped[datetime] = mapped_column(UTCDateTime)
    value: Mapped[float] = mapped_column(Float(53))
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)  # the run's headline numbers
    silenced_by: Mapped[int | None] = mapped_column(Integer, nullable=True)  # a silence's id
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Silence(Base):
    """Notifications of matching alerts are not sent until ``until`` (transitions still are
    recorded)."""

    __tablename__ = "silences"
    __table_args__ = (Index("ix_silences_until", "until"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model: Mapped[str] = mapped_column(Name)  # a glob
    rule: Mapped[str] = mapped_column(Name)  # a glob
    until: Mapped[datetime] = mapped_column(UTCDateTime)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_by: Mapped[str | None] = mapped_column(Name, nullable=True)  # the key's name
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Delivery(Base):
    """One message to one channel (the outbox): written in the transaction of the alert
    transition that caused it, then claimed and sent by a dispatcher, at least once."""

    __tablename__ = "deliveries"
    __table_args__ = (
        Index("ix_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_deliveries_alert_id_channel", "alert_id", "channel"),
        Index("ix_deliveries_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    alert_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("alerts.id", ondelete="CASCADE"))
    event_id: Mapped[int] = mapped_column(BigInteger)
    channel: Mapped[str] = mapped_column(Name)  # its name in the rules files
    channel_type: Mapped[str] = mapped_column(String(20))  # slack or webhook
    target: Mapped[str] = mapped_column(Text)  # the webhook URL or the Slack channel
    endpoint: Mapped[str] = mapped_column(String(500))  # what the circuit breaker watches
    secret_env: Mapped[str | None] = mapped_column(Name, nullable=True)  # never the secret
    message_type: Mapped[str] = mapped_column(String(50))  # alert.firing, model.retrain_requested
    webhook_id: Mapped[str] = mapped_column(String(64), unique=True)  # the same on every retry
    body: Mapped[str] = mapped_column(Text)  # the exact JSON sent, so every retry is identical
    # pending -> delivering -> delivered | failed (retries exhausted, or an error that won't heal)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    retry_step: Mapped[int] = mapped_column(Integer, default=0)  # failures since (re)delivery
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    owner: Mapped[str | None] = mapped_column(String(200), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    response: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)  # Slack's ts
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class DeliveryAttempt(Base):
    __tablename__ = "delivery_attempts"
    __table_args__ = (Index("ix_delivery_attempts_delivery_id", "delivery_id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    delivery_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("deliveries.id", ondelete="CASCADE")
    )
    number: Mapped[int] = mapped_column(Integer)
    owner: Mapped[str] = mapped_column(String(200))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    duration_seconds: Mapped[float] = mapped_column(Float(53))
    outcome: Mapped[str] = mapped_column(String(20))  # delivered, retry, failed, probe_failed
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    retry_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Endpoint(Base):
    """A circuit breaker per endpoint (a webhook URL, or the Slack API), shared by replicas.

    closed: deliveries flow. open: after ``breaker_failures`` failures in a row, deliveries to it
    wait; at ``next_probe_at`` one delivery is sent as a probe (half_open). A probe that succeeds
    closes it and the waiting deliveries go at once; one that fails opens it again."""

    __tablename__ = "endpoints"

    key: Mapped[str] = mapped_column(String(500), primary_key=True)
    state: Mapped[str] = mapped_column(String(20), default="closed")
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    opened_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    next_probe_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_failure_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


__all__ = [
    "Alert",
    "AlertEvent",
    "AlertRuleState",
    "Delivery",
    "DeliveryAttempt",
    "Endpoint",
    "Silence",
]
