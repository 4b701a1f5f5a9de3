"""Every query of alerting: rule states, alerts and events, silences, deliveries, breakers."""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import and_, exists, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, aliased

from driftwatch.models import (
    Alert,
    AlertEvent,
    AlertRuleState,
    Delivery,
    DeliveryAttempt,
    Endpoint,
    MonitoredModel,
    Prediction,
    Silence,
)

RowT = TypeVar("RowT")


def _insert_ignore(session: Session, table: Any, values: dict[str, Any]) -> None:
    """INSERT ... ON CONFLICT DO NOTHING, on either dialect."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    session.execute(dialect.insert(table).values(**values).on_conflict_do_nothing())


def _locked(session: Session, table: type[RowT], *conditions: Any) -> RowT | None:
    """The row, read fresh and locked (``FOR UPDATE``) until the transaction ends."""
    query = (
        select(table).where(*conditions).with_for_update().execution_options(populate_existing=True)
    )
    return session.scalars(query).first()


# -- rule states and alerts ----------------------------------------------------------------------


def lock_rule_state(
    session: Session, *, model_id: int, rule: str, segment: str = ""
) -> AlertRuleState:
    """The (model, rule, segment) state row, created if new, locked until the transaction
    ends (``segment``: "feature=value" for a per_segment rule, "" otherwise)."""
    _insert_ignore(session, AlertRuleState, {"model_id": model_id, "rule": rule,
                                             "segment": segment, "state": "ok",
                                             "breaches": 0})  # fmt: skip
    found = _locked(session, AlertRuleState, AlertRuleState.model_id == model_id,
                    AlertRuleState.rule == rule, AlertRuleState.segment == segment)  # fmt: skip
    assert found is not None
    return found


def model_version_in(
    session: Session, *, model_id: int, start: datetime, end: datetime
) -> str | None:
    """The model version of the window's newest prediction."""
    query = (
        select(Prediction.model_version)
        .where(Prediction.model_id == model_id, Prediction.ts >= start, Prediction.ts < end)
        .order_by(Prediction.ts.desc())
        .limit(1)
    )
    return session.scalar(query)


def list_alerts(
    session: Session, *, model_id: int | None = None, states: Sequence[str] = (),
    rule: str | None = None, limit: int = 500, before_id: int | None = None,
) -> list[tuple[Alert, str]]:  # fmt: skip
    """Alerts with their model's name, the newest first."""
    query = select(Alert, MonitoredModel.name).join(
        MonitoredModel, MonitoredModel.id == Alert.model_id
    )
    if model_id is not None:
        query = query.where(Alert.model_id == model_id)
    if states:
        query = query.where(Alert.state.in_(states))
    if rule is not None:
        query = query.where(Alert.rule == rule)
    if before_id is not None:
        query = query.where(Alert.id < before_id)
    rows = session.execute(query.order_by(Alert.id.desc()).limit(limit)).all()
    return [(alert, name) for alert, name in rows]


def get_alert(session: Session, *, alert_id: int) -> tuple[Alert, str] | None:
    row = session.execute(
        select(Alert, MonitoredModel.name)
        .join(MonitoredModel, MonitoredModel.id == Alert.model_id)
        .where(Alert.id == alert_id)
    ).first()
    return None if row is None else (row[0], row[1])


def events_of(session: Session, *, alert_id: int) -> list[AlertEvent]:
    query = select(AlertEvent).where(AlertEvent.alert_id == alert_id).order_by(AlertEvent.id)
    return list(session.scalars(query))


# -- silences ------------------------------------------------------------------------------------


def active_silences(session: Session, *, now: datetime) -> list[Silence]:
    return list(session.scalars(select(Silence).where(Silence.until > now).order_by(Silence.id)))


def matching_silence(silences: Sequence[Silence], *, model: str, rule: str) -> Silence | None:
    """The first of ``silences`` whose globs match this model and rule."""
    for silence in silences:
        if fnmatch.fnmatchcase(model, silence.model) and fnmatch.fnmatchcase(rule, silence.rule):
            return silence
    return None


def silence_for(session: Session, *, model: str, rule: str, now: datetime) -> Silence | None:
    return matching_silence(active_silences(session, now=now), model=model, rule=rule)


def list_silences(session: Session, *, include_expired: bool, now: datetime) -> list[Silence]:
    query = select(Silence).order_by(Silence.id.desc())
    if not include_expired:
        query = query.where(Silence.until > now)
    return list(session.scalars(query))


# -- deliveries ----------------------------------------------------------------------------------


def deliveries_of(session: Session, *, alert_id: int) -> list[Delivery]:
    query = select(Delivery).where(Delivery.alert_id == alert_id).order_by(Delivery.id)
    return list(session.scalars(query))


def list_deliveries(
    session: Session, *, statuses: Sequence[str] = (), alert_id: int | None = None,
    limit: int = 500, before_id: int | None = None,
) -> list[Delivery]:  # fmt: skip
    query = select(Delivery)
    if statuses:
        query = query.where(Delivery.status.in_(statuses))
    if alert_id is not None:
        query = query.where(Delivery.alert_id == alert_id)
    if before_id is not None:
        query = query.where(Delivery.id < before_id)
    return list(session.scalars(query.order_by(Delivery.id.desc()).limit(limit)))


def attempts_of(session: Session, *, delivery_ids: Sequence[int]) -> list[DeliveryAttempt]:
    if not delivery_ids:
        return []
    query = (
        select(DeliveryAttempt)
        .where(DeliveryAttempt.delivery_id.in_(delivery_ids))
        .order_by(DeliveryAttempt.id)
    )
    return list(session.scalars(query))


def claim_deliveries(
    session: Session, *, owner: str, now: datetime, lease_until: datetime, limit: int
) -> list[tuple[Delivery, bool]]:
    """Take due deliveries: pending ones whose time has come, and sent ones whose sender died
    (lease ran out); each with whether it goes early, as its endpoint's probe.

    Skipped: deliveries to an endpoint whose breaker is open, except one probe per endpoint
    when its probe is due (any waiting delivery, due or not: the breaker, not the retry
    schedule, decides when a failing endpoint is tried again); and a delivery while an
    earlier message of its alert to the same channel is unfinished (order: firing before
    resolved, a Slack thread's parent before its replies)."""
    earlier = aliased(Delivery)
    waiting = (
        select(Endpoint.key)
        .where(Endpoint.state != "closed", Endpoint.next_probe_at > now)
        .scalar_subquery()
    )
    probing = (
        select(Endpoint.key)
        .where(Endpoint.state != "closed", Endpoint.next_probe_at <= now)
        .scalar_subquery()
    )
    candidates = (
        select(Delivery)
        .where(
            or_(
                and_(Delivery.status == "pending", Delivery.next_attempt_at <= now),
                and_(Delivery.status == "delivering", Delivery.lease_until < now),
                and_(Delivery.status == "pending", Delivery.endpoint.in_(probing)),
            ),
            Delivery.endpoint.not_in(waiting),
            ~exists().where(
                earlier.alert_id == Delivery.alert_id,
                earlier.channel == Delivery.channel,
                earlier.id < Delivery.id,
                earlier.status.in_(("pending", "delivering")),
            ),
        )
        .order_by(Delivery.next_attempt_at, Delivery.id)
        .limit(limit * 4)
    )
    if session.get_bind().dialect.name == "postgresql":
        candidates = candidates.with_for_update(skip_locked=True, of=Delivery)
    claimed: list[tuple[Delivery, bool]] = []
    access: dict[str, str] = {}  # endpoint -> "free", "probe" (taken: this one only), "skip"
    for delivery in session.scalars(candidates):
        if len(claimed) >= limit:
            break
        key = delivery.endpoint
        if key in access:
            if access[key] != "free":
                continue  # one probe per endpoint at a time
        else:
            access[key] = _endpoint_access(session, key=key, now=now, lease_until=lease_until)
            if access[key] == "skip":
                continue
        if (
            access[key] == "free"
            and delivery.status == "pending"
            and (delivery.next_attempt_at > now)
        ):
            continue  # not due, and its endpoint is not being probed (any more)
        early = delivery.status == "pending" and delivery.next_attempt_at > now
        claimed.append((delivery, early))
    for delivery, _ in claimed:
        delivery.status = "delivering"
        delivery.owner = owner
        delivery.lease_until = lease_until
        delivery.attempts += 1
    session.flush()
    return claimed


def _endpoint_access(session: Session, *, key: str, now: datetime, lease_until: datetime) -> str:
    """ "free" when the endpoint's breaker is closed; "probe" when its probe is due and this
    replica took it (the breaker goes half-open until the probe's lease ends); else "skip"."""
    state = session.scalar(select(Endpoint.state).where(Endpoint.key == key))
    if state is None or state == "closed":
        return "free"
    taken = session.execute(
        update(Endpoint)
        .where(Endpoint.key == key, Endpoint.state != "closed", Endpoint.next_probe_at <= now)
        .values(state="half_open", next_probe_at=lease_until, updated_at=now)
    )
    return "probe" if taken.rowcount else "skip"  # type: ignore[attr-defined]


def lock_delivery(session: Session, *, delivery_id: int) -> Delivery | None:
    return _locked(session, Delivery, Delivery.id == delivery_id)


def thread_parent(session: Session, *, delivery: Delivery) -> Delivery | None:
    """The delivered Slack message a reply about the same alert goes under."""
    query = (
        select(Delivery)
        .where(
            Delivery.alert_id == delivery.alert_id,
            Delivery.channel == delivery.channel,
            Delivery.message_type == "alert.firing",
            Delivery.status == "delivered",
            Delivery.id < delivery.id,
        )
        .order_by(Delivery.id)
        .limit(1)
    )
    return session.scalars(query).first()


def release_endpoint(session: Session, *, key: str, now: datetime) -> None:
    """After an endpoint recovers, the deliveries waiting for it go at once."""
    session.execute(
        update(Delivery)
        .where(
            Delivery.endpoint == key,
            Delivery.status == "pending",
            Delivery.next_attempt_at > now,
        )
        .values(next_attempt_at=now)
    )


# -- circuit breakers ----------------------------------------------------------------------------


def lock_endpoint(session: Session, *, key: str, now: datetime) -> Endpoint:
    _insert_ignore(session, Endpoint, {"key": key, "state": "closed", "consecutive_failures": 0,
                                       "updated_at": now})  # fmt: skip
    found = _locked(session, Endpoint, Endpoint.key == key)
    assert found is not None
    return found


def list_endpoints(session: Session) -> list[Endpoint]:
    return list(session.scalars(select(Endpoint).order_by(Endpoint.key)))


def waiting_counts(session: Session) -> dict[str, int]:
    """Unfinished deliveries per endpoint."""
    query = (
        select(Delivery.endpoint, func.count())
        .where(Delivery.status.in_(("pending", "delivering")))
        .group_by(Delivery.endpoint)
    )
    return {str(key): int(count) for key, count in session.execute(query)}


def get_delivery(session: Session, *, delivery_id: int) -> Delivery | None:
    return session.get(Delivery, delivery_id)
