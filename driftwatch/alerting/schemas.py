"""Bodies of the alerts, silences, deliveries and endpoints API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from driftwatch.text import Text


class Window(BaseModel):
    start: datetime
    end: datetime


class SilenceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: Text = Field(min_length=1, max_length=200, description="a glob: '*' for every model")
    rule: Text = Field(min_length=1, max_length=200, description="a glob: '*' for every rule")
    until: AwareDatetime
    reason: Text | None = Field(default=None, max_length=2000)


class SilenceOut(BaseModel):
    id: int
    model: str
    rule: str
    until: datetime
    reason: str | None
    created_by: str | None
    created_at: datetime
    active: bool


class AttemptOut(BaseModel):
    number: int
    started_at: datetime
    duration_seconds: float
    outcome: str  # delivered, retry, failed
    status_code: int | None
    error: str | None
    retry_at: datetime | None
    owner: str


class DeliveryOut(BaseModel):
    id: int
    alert_id: int
    channel: str
    channel_type: str
    target: str
    type: str  # alert.firing, alert.resolved, model.retrain_requested
    webhook_id: str
    status: str  # pending, delivering, delivered, failed
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    last_status_code: int | None
    created_at: datetime
    delivered_at: datetime | None
    endpoint_state: str  # the endpoint's circuit breaker: closed, open, half_open
    attempt_log: list[AttemptOut] | None = None


class EventOut(BaseModel):
    id: int
    event: str  # pending, firing, repeat, resolved, cleared
    run_id: int
    window: Window
    value: float
    metrics: dict[str, Any]
    silenced_by: int | None
    at: datetime


class SegmentRef(BaseModel):
    feature: str
    value: str


class AlertOut(BaseModel):
    id: int
    model: str
    rule: str
    state: str  # pending, firing, resolved, cleared
    severity: str
    condition: str
    metric: str
    value: float | None
    run_id: int | None
    window: Window
    started_at: datetime
    fired_at: datetime | None
    resolved_at: datetime | None
    silenced_by: int | None  # an active silence matching it now
    segment: SegmentRef | None = Field(
        default=None,
        description="the segment the alert is about (a per_segment rule, or a rule on a "
        "segment[...] metric); null: the whole window",
    )


class AlertDetail(AlertOut):
    events: list[EventOut]
    deliveries: list[DeliveryOut]


class EndpointOut(BaseModel):
    endpoint: str
    state: str  # closed, open, half_open
    consecutive_failures: int
    opened_at: datetime | None
    next_probe_at: datetime | None
    last_error: str | None
    last_success_at: datetime | None
    last_failure_at: datetime | None
    waiting_deliveries: int
