"""The dispatcher in every ``driftwatch serve``: it sends what the outbox holds, at least once.

A delivery is claimed with a lease (``FOR UPDATE SKIP LOCKED`` on Postgres) and committed as
"delivering" before it is sent; the result and the attempt are committed after. A process that
dies in between leaves a delivery whose lease runs out, and another dispatcher sends it again,
with the same ``webhook-id`` so the receiver can tell. A process that lives ends each attempt
by its deadline (``delivery_timeout_seconds``, the whole request), before the lease runs out
(``delivery_lease_seconds``, checked to be longer): a slow receiver is not sent the same
message twice at once. Failed attempts wait for the next step of the retry schedule (or what
``Retry-After`` asked); endpoints that keep failing are paused by their circuit breaker and
probed until they answer.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from driftwatch import metrics
from driftwatch.alerting import repository
from driftwatch.alerting.http import BoundedHttp
from driftwatch.alerting.senders import USER_AGENT, Outcome, SlackSender, WebhookSender
from driftwatch.alerting.service import OUTBOX_CHANNEL, OUTBOX_WRITTEN
from driftwatch.config import Settings
from driftwatch.core.time import utcnow
from driftwatch.db import session_scope
from driftwatch.models import Delivery, DeliveryAttempt
from driftwatch.text import redact_url, redact_urls_in

log = logging.getLogger("driftwatch.delivery")


@dataclass(frozen=True, slots=True)
class Claimed:
    """What one attempt needs, copied out of the claiming transaction."""

    id: int
    alert_id: int
    channel_type: str
    target: str
    endpoint: str
    secret_env: str | None
    message_type: str
    webhook_id: str
    body: str
    attempt: int
    thread_ts: str | None
    early_probe: bool = False  # sent before its retry time, to probe its endpoint

    @classmethod
    def of(cls, delivery: Delivery, thread_ts: str | None, early_probe: bool = False) -> Claimed:
        return cls(
            id=delivery.id, alert_id=delivery.alert_id, channel_type=delivery.channel_type,
            target=delivery.target, endpoint=delivery.endpoint, secret_env=delivery.secret_env,
            message_type=delivery.message_type, webhook_id=delivery.webhook_id,
            body=delivery.body, attempt=delivery.attempts, thread_ts=thread_ts,
            early_probe=early_probe,
        )  # fmt: skip


class Dispatcher:
    def __init__(self, engine: Engine, settings: Settings, owner: str | None = None) -> None:
        self.engine = engine
        self.settings = settings
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}"
        # every attempt ends by this deadline; the lease outlasts it (config.Settings checks)
        timeout = settings.delivery_timeout_seconds
        self.http = BoundedHttp(timeout=timeout, headers={"user-agent": USER_AGENT})
        self.webhooks = WebhookSender(timeout, self.http)
        self.slack = SlackSender(token=settings.slack_token, api_url=settings.slack_api_url,
                                 timeout=timeout, http=self.http)  # fmt: skip
        self.concurrency = max(1, settings.dispatcher_concurrency)
        self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="driftwatch-send")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="driftwatch-dispatcher",
                                        daemon=True)  # fmt: skip

    def start(self) -> None:
        self._thread.start()
        if self.engine.dialect.name == "postgresql":
            threading.Thread(target=self._listen, name="driftwatch-outbox-listener",
                             daemon=True).start()  # fmt: skip
        log.info("dispatcher started as %s", self.owner)

    def _listen(self) -> None:
        """Wake up on the NOTIFY of another replica's commit (polling remains the safety net)."""
        url = self.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        while not self._stop.is_set():
            try:
                with psycopg.connect(url, autocommit=True) as connection:
                    connection.execute(f"LISTEN {OUTBOX_CHANNEL}")
                    while not self._stop.is_set():
                        for _notice in connection.notifies(timeout=1.0):
                            OUTBOX_WRITTEN.set()
            except Exception as error:
                log.warning("dispatcher: outbox notifications unavailable (%s); polling", error)
                self._stop.wait(5)

    def shutdown(self) -> None:
        self._stop.set()
        OUTBOX_WRITTEN.set()
        self._thread.join(timeout=30)
        self._pool.shutdown(wait=True)
        self.http.close()

    def _loop(self) -> None:
        inflight: set[Future[None]] = set()
        while not self._stop.is_set():
            inflight = {f for f in inflight if not f.done()}
            free = self.concurrency - len(inflight)
            claimed = self.claim(free) if free > 0 else []
            for item in claimed:
                inflight.add(self._pool.submit(self.deliver, item))
            if not claimed or len(claimed) == free:
                # nothing due, or every slot busy: until a commit or a finished send wakes us
                OUTBOX_WRITTEN.wait(self.settings.dispatcher_interval_seconds)
                OUTBOX_WRITTEN.clear()

    # -- one claim, one attempt ----------------------------------------------------------------

    def claim(self, limit: int) -> list[Claimed]:
        now = utcnow()
        lease_until = now + timedelta(seconds=self.settings.delivery_lease_seconds)
        try:
            with session_scope(self.engine) as session:
                taken = repository.claim_deliveries(
                    session, owner=self.owner, now=now, lease_until=lease_until, limit=limit
                )
                claimed = []
                for delivery, early in taken:
                    parent = (
                        repository.thread_parent(session, delivery=delivery)
                        if delivery.channel_type == "slack"
                        else None
                    )
                    thread_ts = (parent.response or {}).get("ts") if parent else None
                    claimed.append(Claimed.of(delivery, thread_ts, early))
                return claimed
        except Exception:
            log.exception("dispatcher: could not claim deliveries")
            return []

    def deliver(self, claimed: Claimed) -> None:
        started_at = utcnow()
        started = time.perf_counter()
        try:
            outcome = self._send(claimed)
        except Exception as error:  # a bug in a sender must not lose the delivery
            log.exception("delivery %d: sending failed unexpectedly", claimed.id)
            outcome = Outcome(False, error=redact_urls_in(f"{type(error).__name__}: {error}")[:500])
        duration = time.perf_counter() - started
        try:
            self.record(claimed, outcome, started_at=started_at, duration=duration)
        except Exception:
            # The lease runs out and the delivery is sent again: at least once.
            log.exception("delivery %d: could not record the attempt", claimed.id)
        finally:
            OUTBOX_WRITTEN.set()  # a slot is free

    def _send(self, claimed: Claimed) -> Outcome:
        if claimed.channel_type == "slack":
            return self.slack.send(body=claimed.body, thread_ts=claimed.thread_ts)
        return self.webhooks.send(url=claimed.target, secret_env=claimed.secret_env,
                                  webhook_id=claimed.webhook_id, body=claimed.body)  # fmt: skip

    def _retry_delay(self, delivery: Delivery, outcome: Outcome) -> timedelta | None:
        """How long until the next attempt; None when there is none."""
        schedule = self.settings.retry_schedule
        if outcome.permanent or delivery.retry_step >= len(schedule):
            return None
        if outcome.retry_after is not None:
            return timedelta(seconds=outcome.retry_after)
        # a little jitter, so that deliveries failed together don't retry together
        return schedule[delivery.retry_step] * random.uniform(0.9, 1.1)

    def record(
        self, claimed: Claimed, outcome: Outcome, *, started_at: datetime, duration: float
    ) -> None:
        with session_scope(self.engine) as session:
            delivery = repository.lock_delivery(session, delivery_id=claimed.id)
            if delivery is None:
                return  # its alert was deleted with its model
            now = utcnow()
            # A probe sent ahead of its retry time that fails leaves the delivery where it was
            # in its schedule: probing a long outage must not use up its retries.
            keep_schedule = claimed.early_probe and not outcome.delivered and not outcome.permanent
            delay = (
                None if outcome.delivered or keep_schedule else self._retry_delay(delivery, outcome)
            )
            if outcome.delivered:
                label = "delivered"
            elif keep_schedule:
                label = "probe_failed"
            else:
                label = "retry" if delay else "failed"
            session.add(DeliveryAttempt(
                delivery_id=delivery.id, number=claimed.attempt, owner=self.owner,
                started_at=started_at, duration_seconds=duration, outcome=label,
                status_code=outcome.status_code, error=outcome.error,
                retry_at=now + delay if delay else None,
            ))  # fmt: skip
            # Another dispatcher may have taken it over (our lease ran out) or an operator
            # asked for a redelivery meanwhile: the attempt is history, the state is theirs.
            if delivery.status == "delivering" and delivery.owner == self.owner:
                if keep_schedule:
                    delivery.status, delivery.lease_until = "pending", None
                    delivery.last_error = outcome.error
                    delivery.last_status_code = outcome.status_code
                else:
                    self._update(delivery, outcome, delay, now)
            self._breaker(session, claimed.endpoint, outcome, now)
        metrics.record_delivery(claimed.channel_type, label)
        level = logging.INFO if outcome.delivered else logging.WARNING
        log.log(level, "delivery %d (%s %s to %s, webhook-id %s) attempt %d: %s%s",
                claimed.id, claimed.channel_type, claimed.message_type, redact_url(claimed.target),
                claimed.webhook_id, claimed.attempt, label,
                f" ({outcome.error})" if outcome.error else "",
                extra={"delivery_id": claimed.id, "alert_id": claimed.alert_id,
                       "webhook_id": claimed.webhook_id, "outcome": label})  # fmt: skip

    @staticmethod
    def _update(delivery: Delivery, outcome: Outcome, delay: timedelta | None,
                now: datetime) -> None:  # fmt: skip
        delivery.lease_until = None
        delivery.last_status_code = outcome.status_code
        if outcome.delivered:
            delivery.status = "delivered"
            delivery.delivered_at = now
            delivery.last_error = None
            delivery.response = outcome.response
            return
        delivery.last_error = outcome.error
        delivery.retry_step += 1
        if delay is None:
            delivery.status = "failed"
        else:
            delivery.status = "pending"
            delivery.next_attempt_at = now + delay

    def _breaker(self, session: Session, key: str, outcome: Outcome, now: datetime) -> None:
        answered = outcome.delivered or (outcome.reached and not outcome.endpoint_failure)
        if not answered and not outcome.endpoint_failure:
            return  # never sent (configuration): says nothing about the endpoint
        endpoint = repository.lock_endpoint(session, key=key, now=now)
        endpoint.updated_at = now
        if answered:
            endpoint.consecutive_failures = 0
            endpoint.last_success_at = now
            if endpoint.state != "closed":
                endpoint.state = "closed"
                endpoint.next_probe_at = None
                repository.release_endpoint(session, key=key, now=now)
                log.warning("endpoint %s answers again: breaker closed, waiting deliveries go",
                            redact_url(key))  # fmt: skip
            metrics.set_breaker(key, "closed")
            return
        endpoint.consecutive_failures += 1
        endpoint.last_failure_at = now
        endpoint.last_error = outcome.error
        probe = timedelta(seconds=self.settings.breaker_probe_seconds)
        if endpoint.state == "half_open" or (
            endpoint.state == "closed"
            and endpoint.consecutive_failures >= self.settings.breaker_failures
        ):
            if endpoint.state == "closed":
                endpoint.opened_at = now
                log.warning("endpoint %s failed %d times in a row: breaker open, deliveries "
                            "to it wait; probing every %s", redact_url(key),
                            endpoint.consecutive_failures,
                            probe)  # fmt: skip
            endpoint.state = "open"
            endpoint.next_probe_at = now + probe
        metrics.set_breaker(key, endpoint.state)
