"""Scheduled monitoring: every closed window of every model is computed, once, by one replica.

APScheduler is only the ticker in each ``driftwatch serve`` process. Replicas agree through
the database: a window is queued as a run with a unique key (queuing it twice is a no-op), and
a replica claims a pending run (``FOR UPDATE SKIP LOCKED`` on Postgres, the write lock on
SQLite) with a lease; a run whose replica died is taken over when its lease runs out. A run
whose window later receives labels or predictions is queued again (within the label horizon),
so accuracy follows late labels. One model's failure never stops the others.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import Engine, update
from sqlalchemy.orm import Session

from driftwatch import metrics
from driftwatch.alerting import service as alerts
from driftwatch.alerting.service import AlertingContext, RulesSource
from driftwatch.config import Settings
from driftwatch.core.result import RunResult
from driftwatch.core.time import iso, spans_between, utcnow, window_start
from driftwatch.db import session_scope
from driftwatch.models import Baseline, MonitoredModel, Run
from driftwatch.models.monitoring import SPAN, WINDOW
from driftwatch.monitoring import repository, service, spans
from driftwatch.registry import service as registry

log = logging.getLogger("driftwatch.scheduler")
MAX_ATTEMPTS = 3


class Scheduler:
    def __init__(self, engine: Engine, settings: Settings, owner: str | None = None) -> None:
        self.engine = engine
        self.settings = settings
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}"
        self.rules = RulesSource(settings.rules_dir)
        self._ticker = BackgroundScheduler(timezone=UTC)
        self._ticker.add_job(
            self.tick, "interval", seconds=settings.scheduler_interval_seconds,
            next_run_time=datetime.now(UTC), max_instances=1, coalesce=True,
            id="monitoring-tick", misfire_grace_time=None,  # late ticks run (coalesced), not skip
        )  # fmt: skip

    def start(self) -> None:
        self._ticker.start()
        log.info("scheduler started as %s", self.owner)

    def shutdown(self) -> None:
        self._ticker.shutdown(wait=True)

    # -- one tick ------------------------------------------------------------------------------

    def tick(self) -> None:
        now = utcnow()
        try:
            with session_scope(self.engine) as session:
                model_ids = [m.id for m in repository.models_to_schedule(session)]
        except Exception:
            log.exception("scheduler: could not list models")
            return
        for model_id in model_ids:
            self.plan(model_id, now)
        self.work(deadline=time.monotonic() + self.settings.scheduler_interval_seconds * 5)

    def plan(self, model_id: int, now: datetime) -> None:
        """Queue the model's newly closed windows that hold predictions and record those that
        hold none (a stretch of them is one row); queue again its windows changed since
        computed, and a window of a stretch that predictions came into late."""
        try:
            with session_scope(self.engine) as session:
                # replicas plan a model in turn (Postgres; SQLite writes one at a time anyway).
                # FOR NO KEY UPDATE: a request inserting a run of this model (its foreign key
                # takes KEY SHARE on the model) is not blocked, or the two would deadlock on
                # a run both insert.
                model = session.get(MonitoredModel, model_id, with_for_update={"key_share": True})
                if model is None:
                    return
                baseline = service.active_baseline(session, model=model)
                first = repository.first_prediction_time(session, model_id=model.id)
                if baseline is None or first is None:
                    return  # nothing to compare yet
                length = timedelta(seconds=model.window_seconds)
                cutoff = self.settings.retention_policy().cutoff(now)
                horizon = now - self.settings.label_horizon
                since = horizon if cutoff is None else max(horizon, cutoff)
                stale = repository.stale_runs(session, model_id=model.id, since=since)
                repository.requeue(session, run_ids=stale)
                reopened = self._reopen(session, model, baseline.id, since, now)
                start = model.scheduled_until or first
                if cutoff is not None and start < cutoff:
                    start = cutoff  # earlier windows have lost their raw data
                if window_start(start, length) < start and model.scheduled_until is not None:
                    start += length  # the window containing ``start`` is queued already
                start = window_start(start, length)
                end = window_start(
                    now - timedelta(seconds=self.settings.window_grace_seconds), length
                )  # the window containing that moment is still open
                queued = quiet = 0
                if start < end:
                    queued, quiet = lay_out(
                        session, model=model, baseline_id=baseline.id, start=start, end=end,
                        now=now, limit=self.settings.max_catchup_windows,
                        alerting=self._alerting(),
                    )  # fmt: skip
                    spans.plan(session, model=model, baseline_id=baseline.id,
                               since=model.scheduled_until, until=end, now=now)  # fmt: skip
                    model.scheduled_until = end
                if queued or stale or reopened:
                    log.info("model %s: queued %d windows, %d changed since computed, %d "
                             "without traffic until predictions came late", model.name, queued,
                             len(stale), reopened)  # fmt: skip
                if quiet:
                    log.debug("model %s: %d windows without traffic", model.name, quiet)
        except Exception:
            log.exception("scheduler: planning model %s failed; other models go on", model_id)

    @staticmethod
    def _reopen(session: Session, model: MonitoredModel, baseline_id: int, since: datetime,
                now: datetime) -> int:  # fmt: skip
        """Queue the windows after ``since`` that predictions came into late in each stretch
        without traffic, and set them apart from it (the rest stays without traffic; the part
        before ``since`` is history). Returns how many stretches were reopened."""
        length = timedelta(seconds=model.window_seconds)
        first = window_start(since, length)
        first = first if first >= since else first + length  # windows starting after ``since``
        stretches = repository.no_traffic_with_late_predictions(
            session, model_id=model.id, since=since
        )
        for stretch in stretches:
            start, end = max(stretch.window_start, first), stretch.window_end
            busy = [(moment, moment + length) for moment in repository.busy_windows(
                session, model_id=model.id, start=start, end=end, length=length)]  # fmt: skip
            repository.set_apart(session, stretch=stretch, windows=busy, now=now,
                                 features=registry.feature_specs(model))  # fmt: skip
            repository.enqueue(session, model_id=model.id, baseline_id=baseline_id,
                               windows=busy)  # fmt: skip
            spans.queue_containing(session, model=model, baseline_id=baseline_id,
                                   moments=[moment for moment, _ in busy], now=now)  # fmt: skip
        return len(stretches)

    def _alerting(self) -> AlertingContext:
        return AlertingContext(self.rules.current(), self.settings.public_url)

    def work(self, deadline: float) -> int:
        """Compute claimable runs until none is left or the deadline passes."""
        done = 0
        while time.monotonic() < deadline:
            run_id = self._claim()
            if run_id is None:
                break
            self._compute(run_id)
            done += 1
        return done

    def _claim(self) -> int | None:
        now = utcnow()
        lease = timedelta(seconds=self.settings.run_lease_seconds)
        try:
            with session_scope(self.engine) as session:
                run = repository.claim(session, owner=self.owner, now=now, lease_until=now + lease)
                return None if run is None else run.id
        except Exception:
            log.exception("scheduler: could not claim a run")
            return None

    def _compute(self, run_id: int) -> None:
        try:
            with session_scope(self.engine) as session:
                run = session.get(Run, run_id)
                model = session.get(MonitoredModel, run.model_id) if run else None
                if run is None or model is None:
                    return
                cutoff = self.settings.retention_policy().expired(run.window_start, utcnow())
                if cutoff is not None and run.kind != SPAN:  # (a span reads its summaries)
                    _expired(run, cutoff)
                    return
                if not _repoint(session, model, run):
                    return
                context = self._alerting()
                try:
                    service.compute_run(session, model=model, run=run, alerting=context,
                                        exact_max_rows=self.settings.exact_max_rows,
                                        label_horizon=self.settings.label_horizon)  # fmt: skip
                except service.RawDataGone as gone:  # raised before anything is written
                    log.warning("%s", gone, extra={"run_id": run_id})
                    _keep_computed(run)
                    return
                if run.kind == WINDOW:
                    _evaluate_following(session, model=model, run=run, context=context)
                log.info("model %s: %s %s computed (%d rows, %.2f s)", model.name,
                         "span" if run.kind == SPAN else "window", run.window_start.isoformat(),
                         run.rows or 0, run.duration_seconds or 0,
                         extra={"model": model.name, "run_id": run.id})  # fmt: skip
        except Exception as error:
            log.exception("scheduler: run %s failed; other runs go on", run_id,
                          extra={"run_id": run_id})  # fmt: skip
            self._failed(run_id, error)

    def _failed(self, run_id: int, error: Exception) -> None:
        try:
            with session_scope(self.engine) as session:
                run = session.get(Run, run_id)
                if run is None:
                    return
                retry = run.attempts < MAX_ATTEMPTS
                model = session.get(MonitoredModel, run.model_id)
                metrics.record_run(model.name if model else str(run.model_id), "failed")
                session.execute(
                    update(Run)
                    .where(Run.id == run_id)
                    .values(
                        status="pending" if retry else "failed",
                        # a failed run waits a little longer after each attempt
                        lease_until=utcnow() + timedelta(seconds=30 * run.attempts),
                        error=f"{type(error).__name__}: {error}"[:2000],
                    )
                )
        except Exception:
            log.exception("scheduler: could not record the failure of run %s", run_id)


def lay_out(
    session: Session, *, model: MonitoredModel, baseline_id: int, start: datetime,
    end: datetime, now: datetime, limit: int | None = None,
    alerting: AlertingContext | None = None,
) -> tuple[int, int]:  # fmt: skip
    """Queue the windows from ``start`` to ``end`` that may hold predictions and record the
    stretches between them that hold none, without computing them. Catching up over more than
    ``limit`` windows, only the newest ``limit`` are queued; what comes before them is recorded
    only if it holds no predictions at all. The windows recorded without traffic are evaluated
    by the ``alerting`` rules (see ``evaluate_quiet``), in this transaction. Returns the windows
    queued and those recorded without traffic."""
    length = timedelta(seconds=model.window_seconds)
    if limit is not None and end - start > limit * length:
        recent = end - limit * length
        if repository.any_predictions(session, model_id=model.id, start=start, end=recent):
            start = recent
    busy = repository.busy_windows(session, model_id=model.id, start=start, end=end,
                                   length=length)  # fmt: skip
    computed = repository.window_runs_between(session, model_id=model.id, start=start, end=end)
    queued = repository.enqueue(
        session, model_id=model.id, baseline_id=baseline_id,
        windows=[(moment, moment + length) for moment in busy],
    )  # fmt: skip
    spans = spans_between(start, end, length, [*busy, *computed])
    recorded = repository.record_no_traffic(
        session, model_id=model.id, baseline_id=baseline_id, spans=spans, now=now,
        features=registry.feature_specs(model),
    )  # fmt: skip
    for stretch, span_start, span_end in recorded if alerting is not None else ():
        # A window queued before these is evaluated when computed, and rules take windows in
        # order: these wait for it (``_evaluate_following``).
        if not repository.computing_before(session, model_id=model.id, moment=span_start):
            evaluate_quiet(session, model=model, stretch=stretch, start=span_start,
                           end=span_end, context=alerting, now=now)  # fmt: skip
    return queued, sum(int((span_end - span_start) / length) for span_start, span_end in spans)


def _repoint(session: Session, model: MonitoredModel, run: Run) -> bool:
    """A claimed run whose baseline was deleted before its window was first computed (deleting
    moves only the pending runs) moves to the model's active baseline, or goes where that one
    has a run of the window already. Whether it is left to compute; a run computed before is
    left as it is (``compute_run`` keeps its result)."""
    baseline = session.get(Baseline, run.baseline_id)
    if baseline is None or baseline.deleted_at is None or run.computations:
        return True
    active = service.active_baseline(session, model=model)
    taken = active is None or repository.lock_run(
        session, model_id=model.id, baseline_id=active.id, start=run.window_start,
        end=run.window_end,
    ) is not None  # fmt: skip
    if active is not None and not taken:
        run.baseline_id = active.id
        session.flush()
        log.info("run %s: baseline %s was deleted before its window was computed: computed "
                 "against the active baseline %s", run.id, baseline.id, active.id,
                 extra={"run_id": run.id})  # fmt: skip
        return True
    session.delete(run)
    session.flush()
    log.info("run %s: baseline %s was deleted before its window was computed, which the active "
             "baseline has a run of (or there is none): dropped", run.id, baseline.id,
             extra={"run_id": run.id})  # fmt: skip
    return False


def evaluate_quiet(
    session: Session, *, model: MonitoredModel, stretch: Run, start: datetime, end: datetime,
    context: AlertingContext | None, now: datetime,
) -> None:  # fmt: skip
    """Apply the model's rules to the windows from ``start`` to ``end`` of a stretch without
    traffic, oldest first, each with its own span and the empty result of a window without
    predictions (``rows`` 0, the records refused in it counted), the events naming the
    stretch's row. Rules need no more than ``for`` windows in a row to fire, so of a stretch
    that grows by many windows at once (catching up after downtime) only the newest
    max(``for``) + 1 windows are evaluated."""
    rules = [] if context is None else [r for r in context.rules.rules
                                        if r.applies_to(model.name)]  # fmt: skip
    if context is None or not rules:
        return
    length = timedelta(seconds=model.window_seconds)
    depth = max(rule.for_windows for rule in rules) + 1
    first = max(start, end - depth * length)
    refused = repository.rejected_by_window(session, model_id=model.id, start=first, end=end,
                                            length=length)  # fmt: skip
    features = registry.feature_specs(model)
    moment = first
    while moment < end:
        result = RunResult.empty(features, rejected=refused.get(moment, 0))
        window = alerts.Evaluated(stretch.id, stretch.baseline_id, moment,
                                  min(moment + length, end), result)  # fmt: skip
        alerts.evaluate_window(session, model=model, window=window, context=context, now=now)
        moment += length


def _evaluate_following(
    session: Session, *, model: MonitoredModel, run: Run, context: AlertingContext
) -> None:
    """After a window is computed, evaluate the stretch without traffic that follows it, which
    waited for it (``lay_out``), unless an earlier window still waits to be computed. (Windows
    evaluated before are history to the rules: evaluating them again changes nothing.)"""
    stretch = repository.no_traffic_starting(session, model_id=model.id, start=run.window_end)
    if stretch is None or repository.computing_before(
        session, model_id=model.id, moment=stretch.window_start
    ):
        return
    evaluate_quiet(session, model=model, stretch=stretch, start=stretch.window_start,
                   end=stretch.window_end, context=context, now=utcnow())  # fmt: skip


def _keep_computed(run: Run) -> None:
    """A queued run whose raw data has gone keeps the result it was computed with."""
    run.status = "done"
    run.lease_until = None


def _expired(run: Run, cutoff: datetime) -> None:
    """A queued window whose raw data retention removed before it was computed: a run computed
    before keeps its result; one never computed fails, saying why."""
    run.lease_until = None
    if run.computations:
        _keep_computed(run)
        log.info("run %s: window %s kept as computed before (raw data removed by retention)",
                 run.id, run.window_start.isoformat(), extra={"run_id": run.id})  # fmt: skip
        return
    run.status = "failed"
    run.error = (
        f"raw predictions before {iso(cutoff)} were removed by the retention policy before "
        "this window was computed"
    )
    log.warning("run %s: %s", run.id, run.error, extra={"run_id": run.id})
