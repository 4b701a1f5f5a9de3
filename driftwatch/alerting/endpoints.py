"""Alerts, silences, deliveries and endpoint breakers (CONTRACT section 3, Alerts)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, Query, Request
from sqlalchemy.orm import Session

from driftwatch.alerting import repository, service
from driftwatch.alerting.schemas import (
    AlertDetail,
    AlertOut,
    AttemptOut,
    DeliveryOut,
    EndpointOut,
    EventOut,
    SegmentRef,
    SilenceCreate,
    SilenceOut,
    Window,
)
from driftwatch.core.time import utcnow
from driftwatch.deps import (
    MAX_ID,
    AdminKey,
    OptionalIdQuery,
    ReadKey,
    RowId,
    SessionDep,
    SmallRowId,
)
from driftwatch.errors import InvalidPayload, NotFound
from driftwatch.models import Alert, AlertEvent, Delivery, DeliveryAttempt, Silence
from driftwatch.registry import service as registry
from driftwatch.text import redact_url, redact_urls_in

router = APIRouter(prefix="/api/v1", tags=["alerts"])
ALERT_STATES = ("pending", "firing", "resolved", "cleared")
DELIVERY_STATUSES = ("pending", "delivering", "delivered", "failed")


def _states(text: str | None, allowed: Sequence[str], what: str) -> list[str]:
    if not text:
        return []
    states = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in states if s not in allowed]
    if unknown:
        raise InvalidPayload(f"{what}: unknown value {unknown[0]!r} (one of {', '.join(allowed)})")
    return states


def _alert_out(alert: Alert, model: str, silences: list[Silence]) -> AlertOut:
    silence = repository.matching_silence(silences, model=model, rule=alert.rule)
    return AlertOut(
        id=alert.id, model=model, rule=alert.rule, state=alert.state, severity=alert.severity,
        condition=alert.condition, metric=alert.metric, value=alert.value, run_id=alert.run_id,
        window=Window(start=alert.window_start, end=alert.window_end),
        started_at=alert.started_at, fired_at=alert.fired_at, resolved_at=alert.resolved_at,
        silenced_by=silence.id if silence else None,
        segment=(None if alert.segment_feature is None or alert.segment_value is None
                 else SegmentRef(feature=alert.segment_feature, value=alert.segment_value)),
    )  # fmt: skip


def _event_out(event: AlertEvent) -> EventOut:
    return EventOut(
        id=event.id, event=event.event, run_id=event.run_id,
        window=Window(start=event.window_start, end=event.window_end), value=event.value,
        metrics=event.metrics, silenced_by=event.silenced_by, at=event.created_at,
    )  # fmt: skip


def _redacted(error: str | None) -> str | None:
    """An error as stored, with any URL in it redacted (errors are redacted when they are
    made; this also covers what older versions stored)."""
    return redact_urls_in(error) if error else error


def _attempt_out(attempt: DeliveryAttempt) -> AttemptOut:
    return AttemptOut(
        number=attempt.number, started_at=attempt.started_at,
        duration_seconds=attempt.duration_seconds, outcome=attempt.outcome,
        status_code=attempt.status_code, error=_redacted(attempt.error), retry_at=attempt.retry_at,
        owner=attempt.owner,
    )  # fmt: skip


def _deliveries_out(
    session: Session, deliveries: list[Delivery], *, with_attempts: bool
) -> list[DeliveryOut]:
    breakers = {e.key: e.state for e in repository.list_endpoints(session)}
    attempts: dict[int, list[AttemptOut]] = {}
    if with_attempts:
        for attempt in repository.attempts_of(session, delivery_ids=[d.id for d in deliveries]):
            attempts.setdefault(attempt.delivery_id, []).append(_attempt_out(attempt))
    return [
        DeliveryOut(
            id=d.id,
            alert_id=d.alert_id,
            channel=d.channel,
            channel_type=d.channel_type,
            target=redact_url(d.target),  # the sender alone sees a webhook's URL whole
            type=d.message_type,
            webhook_id=d.webhook_id,
            status=d.status,
            attempts=d.attempts,
            next_attempt_at=d.next_attempt_at if d.status == "pending" else None,
            last_error=_redacted(d.last_error),
            last_status_code=d.last_status_code,
            created_at=d.created_at,
            delivered_at=d.delivered_at,
            endpoint_state=breakers.get(d.endpoint, "closed"),
            attempt_log=attempts.get(d.id, []) if with_attempts else None,
        )
        for d in deliveries
    ]


@router.get("/alerts", response_model=list[AlertOut])
def list_alerts(
    session: SessionDep, _key: ReadKey,
    model: Annotated[str | None, Query(description="a model's name")] = None,
    state: Annotated[str | None, Query(description="pending, firing, resolved or cleared; "
                                       "several with commas")] = None,
    rule: Annotated[str | None, Query(description="a rule's name")] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
    before: Annotated[int | None, Query(ge=1, le=MAX_ID,
                                        description="alerts older than this id")] = None,
) -> list[AlertOut]:  # fmt: skip
    """Alerts, the newest first."""
    model_id = registry.get_by_name(session, name=model).id if model else None
    found = repository.list_alerts(
        session, model_id=model_id, states=_states(state, ALERT_STATES, "state"), rule=rule,
        limit=limit, before_id=before,
    )  # fmt: skip
    silences = repository.active_silences(session, now=utcnow())
    return [_alert_out(alert, name, silences) for alert, name in found]


@router.get("/alerts/{alert_id}", response_model=AlertDetail)
def get_alert(alert_id: RowId, session: SessionDep, _key: ReadKey) -> AlertDetail:
    """One alert with its transitions and its notification deliveries (with every attempt)."""
    found = repository.get_alert(session, alert_id=alert_id)
    if found is None:
        raise NotFound(f"there is no alert {alert_id}")
    alert, model = found
    out = _alert_out(alert, model, repository.active_silences(session, now=utcnow()))
    return AlertDetail(
        **out.model_dump(),
        events=[_event_out(e) for e in repository.events_of(session, alert_id=alert.id)],
        deliveries=_deliveries_out(
            session, repository.deliveries_of(session, alert_id=alert.id), with_attempts=True
        ),
    )


def _silence_out(silence: Silence) -> SilenceOut:
    return SilenceOut(
        id=silence.id, model=silence.model, rule=silence.rule, until=silence.until,
        reason=silence.reason, created_by=silence.created_by, created_at=silence.created_at,
        active=silence.until > utcnow(),
    )  # fmt: skip


@router.post("/silences", response_model=SilenceOut, status_code=201)
def create_silence(
    body: SilenceCreate, request: Request, session: SessionDep, key: AdminKey
) -> SilenceOut:
    """Until ``until``, matching alerts still move and are recorded, but notify no one."""
    if body.until <= utcnow():
        raise InvalidPayload("until: the silence would end in the past")
    silence = service.create_silence(session, model=body.model, rule=body.rule,
                                     until=body.until, reason=body.reason,
                                     created_by=key.name)  # fmt: skip
    return _silence_out(silence)


@router.get("/silences", response_model=list[SilenceOut])
def list_silences(
    session: SessionDep, _key: ReadKey,
    include_expired: Annotated[bool, Query(description="also silences that ended")] = False,
) -> list[SilenceOut]:  # fmt: skip
    silences = repository.list_silences(session, include_expired=include_expired, now=utcnow())
    return [_silence_out(s) for s in silences]


@router.delete("/silences/{silence_id}", response_model=SilenceOut)
def end_silence(silence_id: SmallRowId, session: SessionDep, _key: AdminKey) -> SilenceOut:
    """End a silence now."""
    return _silence_out(service.expire_silence(session, silence_id=silence_id))


@router.get("/deliveries", response_model=list[DeliveryOut])
def list_deliveries(
    session: SessionDep, _key: ReadKey,
    status: Annotated[str | None, Query(description="pending, delivering, delivered or "
                                        "failed; several with commas")] = None,
    alert_id: OptionalIdQuery = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
    before: Annotated[int | None, Query(ge=1, le=MAX_ID,
                                        description="deliveries older than this id")] = None,
) -> list[DeliveryOut]:  # fmt: skip
    """Notifications, the newest first."""
    found = repository.list_deliveries(
        session, statuses=_states(status, DELIVERY_STATUSES, "status"), alert_id=alert_id,
        limit=limit, before_id=before,
    )  # fmt: skip
    return _deliveries_out(session, found, with_attempts=False)


@router.get("/deliveries/{delivery_id}", response_model=DeliveryOut)
def get_delivery(delivery_id: RowId, session: SessionDep, _key: ReadKey) -> DeliveryOut:
    delivery = repository.get_delivery(session, delivery_id=delivery_id)
    if delivery is None:
        raise NotFound(f"there is no delivery {delivery_id}")
    return _deliveries_out(session, [delivery], with_attempts=True)[0]


@router.post("/deliveries/{delivery_id}/redeliver", response_model=DeliveryOut)
def redeliver(delivery_id: RowId, session: SessionDep, _key: AdminKey) -> DeliveryOut:
    """Send it again now, with the same ``webhook-id`` (receivers de-duplicate on it)."""
    delivery = service.redeliver(session, delivery_id=delivery_id)
    return _deliveries_out(session, [delivery], with_attempts=True)[0]


@router.get("/endpoints", response_model=list[EndpointOut])
def list_endpoints(session: SessionDep, _key: ReadKey) -> list[EndpointOut]:
    """The circuit breaker of every endpoint notified so far."""
    waiting = repository.waiting_counts(session)
    return [
        EndpointOut(
            endpoint=redact_url(e.key),
            state=e.state,
            consecutive_failures=e.consecutive_failures,
            opened_at=e.opened_at,
            next_probe_at=e.next_probe_at,
            last_error=_redacted(e.last_error),
            last_success_at=e.last_success_at,
            last_failure_at=e.last_failure_at,
            waiting_deliveries=waiting.get(e.key, 0),
        )
        for e in repository.list_endpoints(session)
    ]
