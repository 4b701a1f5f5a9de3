"""Time partitions of the raw prediction tables on Postgres.

``predictions`` (by ``ts``) and ``prediction_chunks`` (by ``ts_min``) are range-partitioned;
each partition is named after its span, ``predictions_p20261201_20261202``. A partition is
created when the first record of a day it would cover arrives (the retention job also makes
the next days' ahead of time), in the writing transaction: ``CREATE TABLE`` of a new table and
``ATTACH PARTITION``, which takes only a SHARE UPDATE EXCLUSIVE lock on the parent, so reads
and writes of other days go on. Retention detaches old partitions ``CONCURRENTLY`` and drops
them: no row is deleted, no vacuum follows.

Which spans exist is cached per process; a record for a day the cache does not cover makes the
writer look at the catalog again (under an advisory lock, so two replicas never create the
same partition).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, text

from driftwatch.core.retention import Retention
from driftwatch.core.time import DAY, day_start

# Days before today, and after it, that get a partition of their own when retention is off;
# data further back (a backfill) or ahead (a clock gone wrong) shares monthly partitions.
DAILY_BACK_WITHOUT_RETENTION = timedelta(days=60)
DAILY_AHEAD = timedelta(days=8)


@dataclass(frozen=True, order=True, slots=True)
class Span:
    """A partition's span ``[low, high)``: midnights UTC."""

    low: datetime
    high: datetime

    def __contains__(self, moment: object) -> bool:
        assert isinstance(moment, datetime)
        return self.low <= moment < self.high


def _month(moment: datetime) -> Span:
    low = datetime(moment.year, moment.month, 1, tzinfo=UTC)
    high = (
        datetime(moment.year + 1, 1, 1, tzinfo=UTC) if moment.month == 12
        else datetime(moment.year, moment.month + 1, 1, tzinfo=UTC)
    )  # fmt: skip
    return Span(low, high)


def daily_zone(now: datetime, retention: Retention) -> Span:
    """Days that get a partition each: the whole retention period (or the last 60 days when
    there is none) up to a week ahead."""
    today = day_start(now)
    back = retention.age + DAY if retention.age is not None else DAILY_BACK_WITHOUT_RETENTION
    return Span(day_start(today - back), today + DAILY_AHEAD)


def plan_range(day: datetime, existing: Sequence[Span], zone: Span) -> Span:
    """The partition to create for ``day`` (a midnight UTC that no existing range covers).

    A day of the daily zone gets itself; a day outside shares its calendar month, cut short
    where the month meets the daily zone or a partition that exists already, so that ranges
    never overlap and the daily zone stays free for daily partitions.
    """
    assert not any(day in known for known in existing), f"{day} has a partition already"
    if day in zone:
        wanted = Span(day, day + DAY)
    else:
        month = _month(day)
        if day < zone.low:
            wanted = Span(month.low, min(month.high, zone.low))
        else:
            wanted = Span(max(month.low, zone.high), month.high)
    low = max([wanted.low, *(r.high for r in existing if r.high <= day)])
    high = min([wanted.high, *(r.low for r in existing if r.low > day)])
    return Span(low, high)


# parent table -> its partition column
PARTITIONED = {"predictions": "ts", "prediction_chunks": "ts_min"}
LOCK = 0x64770002  # advisory lock: creating or dropping partitions
_NAME = re.compile(r"^(?P<table>[a-z_]+)_p(?P<low>\d{8})_(?P<high>\d{8})$")


@dataclass(frozen=True, slots=True)
class Partition:
    table: str
    name: str
    span: Span
    detach_pending: bool = False  # a DETACH ... CONCURRENTLY was interrupted


def _day(digits: str) -> datetime:
    return datetime(int(digits[:4]), int(digits[4:6]), int(digits[6:]), tzinfo=UTC)


def _digits(moment: datetime) -> str:
    return f"{moment.year:04d}{moment.month:02d}{moment.day:02d}"


def partition_name(table: str, span: Span) -> str:
    return f"{table}_p{_digits(span.low)}_{_digits(span.high)}"


def partition_table(name: str) -> str | None:
    """The parent table if ``name`` is one of our partitions' names."""
    partition = _named(name)
    return partition.table if partition else None


def list_partitions(connection: Connection) -> list[Partition]:
    """Every partition of the partitioned tables, in time order (names not ours are left out)."""
    rows = connection.execute(
        text(
            "SELECT parent.relname, child.relname, i.inhdetachpending "
            "FROM pg_inherits i "
            "JOIN pg_class parent ON parent.oid = i.inhparent "
            "JOIN pg_class child ON child.oid = i.inhrelid "
            "WHERE parent.relname IN ('predictions', 'prediction_chunks') "
            "AND parent.relnamespace = current_schema()::regnamespace"
        )
    ).all()
    found = [_named(name, table, pending) for table, name, pending in rows]
    return sorted((p for p in found if p), key=lambda p: (p.table, p.span))


def _named(name: str, table: str | None = None, pending: bool = False) -> Partition | None:
    """The partition a table's name describes (of ``table`` if given), or None if not ours."""
    match = _NAME.match(name)
    if match is None or match["table"] not in PARTITIONED or table not in (None, match["table"]):
        return None
    span = Span(_day(match["low"]), _day(match["high"]))
    return Partition(match["table"], name, span, bool(pending))


def list_detached(connection: Connection) -> list[Partition]:
    """Tables named as our partitions that are no longer attached: left by a retention pass
    that stopped between its DETACH and its DROP."""
    rows = connection.execute(
        text(
            "SELECT c.relname FROM pg_class c WHERE c.relkind = 'r' "
            "AND c.relnamespace = current_schema()::regnamespace "
            "AND (c.relname LIKE 'predictions\\_p%' OR c.relname LIKE 'prediction\\_chunks\\_p%') "
            "AND NOT EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = c.oid)"
        )
    ).scalars()
    found = [_named(name) for name in rows]
    return sorted((p for p in found if p), key=lambda p: (p.table, p.span))


def create(connection: Connection, table: str, span: Span) -> str:
    """A new partition of ``table`` covering ``span``."""
    name = partition_name(table, span)
    column = PARTITIONED[table]
    connection.exec_driver_sql(
        f"CREATE TABLE {name} (LIKE {table} INCLUDING DEFAULTS INCLUDING STORAGE)"
    )
    # The check lets ATTACH skip scanning the table for rows outside the span (it is empty,
    # but the check also documents the span on the partition itself).
    connection.exec_driver_sql(
        f"ALTER TABLE {name} ADD CONSTRAINT {name}_span CHECK ({column} >= '{span.low.isoformat()}'"
        f" AND {column} < '{span.high.isoformat()}')"
    )
    connection.exec_driver_sql(
        f"ALTER TABLE {table} ATTACH PARTITION {name} "
        f"FOR VALUES FROM ('{span.low.isoformat()}') TO ('{span.high.isoformat()}')"
    )
    return name


class PartitionMap:
    """The spans that exist, per database, as this process last saw them."""

    def __init__(self) -> None:
        self._spans: dict[str, dict[str, list[Span]]] = {}
        self._lock = threading.Lock()

    def covers(self, database: str, days: Sequence[datetime]) -> bool:
        with self._lock:
            tables = self._spans.get(database)
            if tables is None:
                return False
            return all(
                any(day in span for span in tables.get(table, ()))
                for table in PARTITIONED
                for day in days
            )

    def remember(self, database: str, partitions: Sequence[Partition]) -> None:
        tables: dict[str, list[Span]] = {table: [] for table in PARTITIONED}
        for partition in partitions:
            tables[partition.table].append(partition.span)
        with self._lock:
            self._spans[database] = tables

    def forget(self, database: str) -> None:
        with self._lock:
            self._spans.pop(database, None)


KNOWN = PartitionMap()


class TooManyPartitions(ValueError):
    """A batch would need more new partitions than it may create."""

    def __init__(self, needed: int, limit: int) -> None:
        super().__init__(f"{needed} new partitions, more than {limit}")
        self.needed = needed
        self.limit = limit


def ensure(
    connection: Connection, days: Sequence[datetime], *, now: datetime, retention: Retention,
    max_new: int | None = None,
) -> list[str]:  # fmt: skip
    """Partitions covering these days (midnights UTC) in both tables, created in the caller's
    transaction where missing; returns the names of those created. Raises TooManyPartitions,
    creating none, if more than ``max_new`` spans (each a partition of every table) would be
    new."""
    database = str(connection.engine.url)
    if KNOWN.covers(database, days):
        return []
    connection.execute(text("SELECT pg_advisory_xact_lock(:lock)"), {"lock": LOCK})
    existing = list_partitions(connection)
    zone = daily_zone(now, retention)
    planned: list[tuple[str, Span]] = []
    for table in PARTITIONED:
        spans = [p.span for p in existing if p.table == table]
        for day in days:
            if any(day in span for span in spans):
                continue
            span = plan_range(day, spans, zone)
            planned.append((table, span))
            spans.append(span)
    needed = max((sum(1 for t, _ in planned if t == table) for table in PARTITIONED), default=0)
    if max_new is not None and needed > max_new:
        KNOWN.remember(database, existing)
        raise TooManyPartitions(needed, max_new)
    created = [create(connection, table, span) for table, span in planned]
    KNOWN.remember(database, list_partitions(connection) if created else existing)
    return created
