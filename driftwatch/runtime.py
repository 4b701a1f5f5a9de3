"""The background workers of a process, started and stopped in one place.

``create_app(settings, engine, workers=...)`` runs the chosen workers for the life of the app
(its lifespan), so ``driftwatch serve``, ``driftwatch demo`` and the tests that serve the app
start the same workers the same way: the scheduler (closed windows computed), the dispatcher
(notifications and webhooks sent) and the retention pass (``DRIFTWATCH_RETENTION`` applied).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import Engine

from driftwatch.config import Settings

log = logging.getLogger("driftwatch")


class Worker(Protocol):
    def start(self) -> None: ...

    def shutdown(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Workers:
    """Which workers a process runs (none unless asked: an app in a test serves requests only)."""

    monitoring: bool = False
    dispatcher: bool = False
    retention: bool = False

    @classmethod
    def every(cls) -> Workers:
        return cls(monitoring=True, dispatcher=True, retention=True)

    @classmethod
    def of_serve(
        cls, *, no_scheduler: bool, no_monitoring: bool, no_dispatcher: bool, no_retention: bool
    ) -> Workers:
        """What ``driftwatch serve`` runs: everything, less what its flags turn off
        (``--no-scheduler`` turns off all three)."""
        return cls(
            monitoring=not (no_scheduler or no_monitoring),
            dispatcher=not (no_scheduler or no_dispatcher),
            retention=not (no_scheduler or no_retention),
        )


NO_WORKERS = Workers()


class Started(list[Worker]):
    """The workers that started, and the engine of their own they use (closed by ``stop``)."""

    engine: Engine | None = None


def start(engine: Engine, settings: Settings, workers: Workers) -> Started:
    """Start the chosen workers, on connections of their own (a pool apart from ``engine``'s,
    which serves requests); what started, to ``stop`` later."""
    from driftwatch.alerting.dispatcher import Dispatcher
    from driftwatch.db import worker_engine
    from driftwatch.monitoring.scheduler import Scheduler
    from driftwatch.retention.scheduled import RetentionWorker

    chosen: list[Worker] = []
    started = Started()
    if workers == NO_WORKERS:
        return started
    own = worker_engine(engine, pool_size=settings.worker_pool_size,
                        overflow=settings.dispatcher_concurrency + 2)  # fmt: skip
    if own is not engine:
        started.engine = engine = own
    if workers.monitoring:
        chosen.append(Scheduler(engine, settings))
    if workers.dispatcher:
        chosen.append(Dispatcher(engine, settings))
    if workers.retention:
        chosen.append(RetentionWorker(engine, settings))
    try:
        for worker in chosen:
            worker.start()
            started.append(worker)
    except BaseException:
        stop(started)
        raise
    return started


def stop(started: list[Worker]) -> None:
    """Stop workers, the last started first; each waits for the work it has in hand. Then
    their own engine is closed."""
    for worker in reversed(started):
        try:
            worker.shutdown()
        except Exception:  # the others still stop
            log.exception("could not stop %s cleanly", type(worker).__name__)
    own = getattr(started, "engine", None)
    if own is not None:
        own.dispose()
