"""The retention pass on a schedule: every ``DRIFTWATCH_RETENTION_INTERVAL_SECONDS`` in every
``driftwatch serve`` (one replica at a time does the work; the others skip that turn)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import Engine

from driftwatch import metrics
from driftwatch.config import Settings
from driftwatch.core.retention import describe
from driftwatch.core.time import iso, utcnow
from driftwatch.retention import service
from driftwatch.retention.service import Report
from driftwatch.summaries import service as summaries

log = logging.getLogger("driftwatch.retention")


class RetentionWorker:
    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings
        self._ticker = BackgroundScheduler(timezone=UTC)
        self._ticker.add_job(
            self.run_once, "interval", seconds=settings.retention_interval_seconds,
            next_run_time=datetime.now(UTC), max_instances=1, coalesce=True, id="retention",
            # the pass at start runs however long the app took from here to start(): with
            # APScheduler's default grace (1 s) a slow start skipped it for an interval (an hour)
            misfire_grace_time=None,
        )  # fmt: skip

    def start(self) -> None:
        self._ticker.start()
        age = self.settings.retention
        log.info("retention: %s", f"raw data kept {describe(age)}" if age else
                 "raw data kept forever (DRIFTWATCH_RETENTION is off)")  # fmt: skip

    def shutdown(self) -> None:
        self._ticker.shutdown(wait=True)

    def run_once(self) -> Report | None:
        self.compact_summaries()
        try:
            report = service.apply(self.engine, self.settings.retention_policy(), now=utcnow())
        except Exception:
            record_retention(None)
            log.exception("retention: the pass failed; the next one tries again")
            return None
        record_retention(report)
        if report.dropped_partitions or any(report.rows.values()):
            rows = ", ".join(f"{table} {count}" for table, count in sorted(report.rows.items()))
            log.info("retention: removed raw data before %s: %d partitions dropped; rows: %s",
                     iso(report.cutoff) if report.cutoff else "-",
                     len(report.dropped_partitions), rows)  # fmt: skip
        return report

    def compact_summaries(self) -> None:
        """Closed buckets' batch summaries merged into one row per column (summaries stay
        when retention removes raw rows; they have no retention of their own)."""
        try:
            summaries.compact(self.engine, now=utcnow())
        except Exception:
            log.exception("summaries: compaction failed; the next pass tries again")


def record_retention(report: Report | None) -> None:
    """A retention pass: its ``Report``, or None when it failed."""
    if report is None:
        metrics.RETENTION_PASSES.labels("failed").inc()
        return
    metrics.RETENTION_PASSES.labels("skipped" if report.skipped else "done").inc()
    for table, count in report.rows.items():
        metrics.RETENTION_REMOVED.labels(table).inc(count)
    metrics.RETENTION_PARTITIONS.inc(len(report.dropped_partitions))
    if report.cutoff is not None and not report.skipped:
        metrics.RETENTION_CUTOFF.set(report.cutoff.timestamp())
