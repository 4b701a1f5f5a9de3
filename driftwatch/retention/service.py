"""Retention: raw predictions older than the policy keeps are removed; what was computed stays.

Removed: predictions with their feature chunks and keys, labels, and rejected records, of the
days before the cutoff (``Retention.cutoff``). Kept: models, baselines (prepared profiles),
runs with their results, distributions and metrics, daily metric sums, alerts and deliveries,
so the dashboard and the rules work on the whole history.

On Postgres the raw prediction tables lose whole day partitions (``DETACH ... CONCURRENTLY``,
then ``DROP``): no row is deleted, nothing waits on a lock the writers hold, and nothing is left
for vacuum. The narrow key, label and rejected-record tables lose rows, in small batches, each
its own transaction. On SQLite everything is deleted by rows, in batches.

One replica at a time applies the policy (an advisory lock on Postgres; SQLite's write lock).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, select, text

from driftwatch.core.retention import Retention
from driftwatch.core.time import DAY, day_start
from driftwatch.models import MonitoredModel
from driftwatch.models.base import UTCDateTime
from driftwatch.storage import partitions
from driftwatch.storage.partitions import DAILY_AHEAD

log = logging.getLogger("driftwatch.retention")
LOCK = 0x64770003  # advisory lock: one replica applies the policy at a time
BATCH_ROWS = 10_000


@dataclass(slots=True)
class Report:
    """What one pass removed (or, in a dry run, would remove)."""

    cutoff: datetime | None
    dry_run: bool = False
    skipped: bool = False  # another replica was applying the policy
    dropped_partitions: list[str] = field(default_factory=list)
    created_partitions: list[str] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)  # table -> rows removed
    # Predictions before this are gone: the cutoff, or earlier where a monthly partition that
    # straddles the cutoff is kept whole (its rows keep their keys until it goes)
    gone_before: datetime | None = None

    def add(self, table: str, count: int) -> None:
        self.rows[table] = self.rows.get(table, 0) + count


# table -> the condition on its rows that are past the cutoff (a time index serves each; those
# with a model are run per model, to use their index on (model_id, time))
_EXPIRED_ROWS = {
    "prediction_keys": "ts < :gone_before",
    "ground_truth": "ts < :cutoff",  # a label older than the retention is refused on arrival
    # a shadow prediction kept longer than its served one would join nothing
    "shadow_predictions": "received_at < :cutoff",
    "rejected_records": "model_id = :model AND received_at < :cutoff",
}
# on SQLite the raw tables too (Postgres drops their partitions)
_EXPIRED_RAW_SQLITE = {
    "predictions": "model_id = :model AND ts < :gone_before",
    "prediction_chunks": "model_id = :model AND ts_min < :cutoff AND ts_max < :cutoff",
}


def apply(engine: Engine, retention: Retention, *, now: datetime, dry_run: bool = False) -> Report:
    """One pass of the policy at ``now``; on Postgres it also makes the coming days'
    partitions, so that writers rarely have to."""
    cutoff = retention.cutoff(now)
    report = Report(cutoff=cutoff, gone_before=cutoff, dry_run=dry_run)
    if engine.dialect.name != "postgresql":
        _apply_rows(engine, report, {**_EXPIRED_RAW_SQLITE, **_EXPIRED_ROWS})
        return report
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as lock:
        if not lock.execute(text("SELECT pg_try_advisory_lock(:lock)"), {"lock": LOCK}).scalar():
            report.skipped = True
            return report
        try:
            if not dry_run:
                report.created_partitions = _make_ahead(engine, retention, now)
            _drop_partitions(engine, report)
            _apply_rows(engine, report, _EXPIRED_ROWS)
            if not dry_run:  # each prediction has one key: its key counts it (see below)
                report.add("predictions", report.rows.get("prediction_keys", 0))
        finally:
            lock.execute(text("SELECT pg_advisory_unlock(:lock)"), {"lock": LOCK})
    return report


def _make_ahead(engine: Engine, retention: Retention, now: datetime) -> list[str]:
    today = day_start(now)
    days = [today + DAY * offset for offset in range(DAILY_AHEAD // DAY)]
    with engine.begin() as connection:
        connection.exec_driver_sql("SET LOCAL lock_timeout = '30s'")
        return partitions.ensure(connection, days, now=now, retention=retention)


def _drop_partitions(engine: Engine, report: Report) -> None:
    cutoff = report.cutoff
    if cutoff is None:
        return
    with engine.connect() as connection:
        attached = partitions.list_partitions(connection)
        leftovers = [p for p in partitions.list_detached(connection) if p.span.high <= cutoff]
        connection.rollback()
    # an interrupted detach first: a table has at most one pending, and it blocks the others
    expired = sorted((p for p in attached if p.span.high <= cutoff),
                     key=lambda p: (not p.detach_pending, p.span))  # fmt: skip
    report.gone_before = min([cutoff] + [
        p.span.low for p in attached if p.table == "predictions" and cutoff in p.span
    ])  # fmt: skip
    # DETACH ... CONCURRENTLY cannot run inside a transaction block.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql("SET lock_timeout = '60s'")
        try:
            _detach_and_drop(connection, report, expired, leftovers)
        finally:  # the connection goes back to the pool
            connection.exec_driver_sql("RESET lock_timeout")
    partitions.KNOWN.forget(str(engine.url))


def _detach_and_drop(
    connection: Connection,
    report: Report,
    expired: list[partitions.Partition],
    leftovers: list[partitions.Partition],
) -> None:
    for partition in expired:
        count = _count(connection, report, partition)
        report.dropped_partitions.append(partition.name)
        if report.dry_run:
            continue
        how = "FINALIZE" if partition.detach_pending else "CONCURRENTLY"
        connection.exec_driver_sql(
            f"ALTER TABLE {partition.table} DETACH PARTITION {partition.name} {how}"
        )
        connection.exec_driver_sql(f"DROP TABLE {partition.name}")
        log.info("retention: dropped partition %s%s", partition.name,
                 "" if count is None else f" ({count} rows)")  # fmt: skip
    for leftover in leftovers:  # detached by an earlier pass that stopped before its DROP
        _count(connection, report, leftover)
        report.dropped_partitions.append(leftover.name)
        if not report.dry_run:
            connection.exec_driver_sql(f"DROP TABLE {leftover.name}")
            log.info("retention: dropped detached partition %s", leftover.name)


def _count(connection: Connection, report: Report, partition: partitions.Partition) -> int | None:
    """Add a partition's rows to the report, except a real pass's predictions: counting a day of
    them would read all of it to throw it away, so they are counted by their keys instead."""
    if not report.dry_run and partition.table == "predictions":
        return None
    count = int(connection.exec_driver_sql(f"SELECT count(*) FROM {partition.name}").scalar() or 0)
    report.add(partition.table, count)
    return count


def _apply_rows(engine: Engine, report: Report, expired: dict[str, str]) -> None:
    if report.cutoff is None:
        return
    with engine.connect() as connection:
        model_ids = list(connection.execute(select(MonitoredModel.id)).scalars())
        connection.rollback()
    for table, condition in expired.items():
        if ":model" not in condition:
            report.add(table, _remove(engine, report, table, condition, {}))
            continue
        for model_id in model_ids:
            report.add(table, _remove(engine, report, table, condition, {"model": model_id}))


def _remove(
    engine: Engine, report: Report, table: str, condition: str, params: dict[str, Any]
) -> int:
    """Rows of ``table`` matching ``condition``, deleted ``BATCH_ROWS`` at a time (counted in a
    dry run)."""
    times = {"cutoff": report.cutoff, "gone_before": report.gone_before}
    used = {name: at for name, at in times.items() if f":{name}" in condition}
    params = {**params, **used}
    cutoffs = [bindparam(name, type_=UTCDateTime()) for name in used]
    if report.dry_run:
        with engine.connect() as connection:
            query = text(f"SELECT count(*) FROM {table} WHERE {condition}").bindparams(*cutoffs)
            return int(connection.execute(query, params).scalar() or 0)
    row = "ctid" if engine.dialect.name == "postgresql" else "rowid"
    match = "= ANY(ARRAY(" if row == "ctid" else "IN ("
    close = "))" if row == "ctid" else ")"
    statement = text(
        f"DELETE FROM {table} WHERE {row} {match}SELECT {row} FROM {table} WHERE {condition} "
        f"LIMIT {BATCH_ROWS}{close}"
    ).bindparams(*cutoffs)
    removed = 0
    while True:
        with engine.begin() as connection:
            count = connection.execute(statement, params).rowcount
        removed += count
        if count < BATCH_ROWS:
            return removed
