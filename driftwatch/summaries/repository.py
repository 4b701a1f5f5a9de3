"""Every query on column summaries: append a batch's, read a span's, compact closed buckets."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, false, func, insert, or_, select, update
from sqlalchemy.orm import Session

from driftwatch.core.time import utcnow
from driftwatch.models import ColumnSummary
from driftwatch.stats import summaries
from driftwatch.storage import postgres


@dataclass(frozen=True, slots=True)
class Part:
    """One column's summary of one bucket, as stored."""

    bucket_start: datetime
    bucket_seconds: int
    role: str
    name: str
    summary: summaries.ColumnSummary
    parts: int = 1
    settled: bool = False  # compaction has seen it (see ``ColumnSummary.settled``)


_COLUMNS = (
    "model_id", "bucket_start", "bucket_seconds", "role", "name", "kind", "rows", "parts",
    "settled", "version", "body", "created_at",
)  # fmt: skip
_PG_TYPES = ("int4", "timestamptz", "int4", "varchar", "text", "varchar", "int4", "int4",
             "bool", "int2", "bytea", "timestamptz")  # fmt: skip


def _row(model_id: int, part: Part, created_at: datetime) -> tuple[Any, ...]:
    return (
        model_id, part.bucket_start, part.bucket_seconds, part.role, part.name,
        part.summary.kind, part.summary.rows, part.parts, part.settled, summaries.SUMMARY_VERSION,
        summaries.dumps(part.summary), created_at,
    )  # fmt: skip


def insert_parts(session: Session, *, model_id: int, parts: Sequence[Part]) -> None:
    """Append summaries (never update one: concurrent writers to a bucket add rows)."""
    if not parts:
        return
    now = utcnow()
    rows = [_row(model_id, part, now) for part in parts]
    if session.get_bind().dialect.name == "postgresql":
        cursor = postgres.psycopg_connection(session).cursor()
        with cursor.copy(postgres.copy_statement("column_summaries", _COLUMNS)) as copy:
            copy.set_types(list(_PG_TYPES))
            for row in rows:
                copy.write_row(row)
        return
    session.execute(insert(ColumnSummary), [dict(zip(_COLUMNS, row, strict=True)) for row in rows])


def read_span(
    session: Session, *, model_id: int, start: datetime, end: datetime,
    columns: Sequence[tuple[str, str]] | None = None,
) -> list[Part]:  # fmt: skip
    """Every stored summary of the model's buckets that start in [start, end), of these
    (role, name) columns only when given."""
    conditions = [
        ColumnSummary.model_id == model_id,
        ColumnSummary.bucket_start >= start,
        ColumnSummary.bucket_start < end,
    ]
    if columns is not None:
        conditions.append(
            or_(false(), *(and_(ColumnSummary.role == role, ColumnSummary.name == name)
                           for role, name in columns))
        )  # fmt: skip
    found = session.execute(
        select(
            ColumnSummary.bucket_start, ColumnSummary.bucket_seconds, ColumnSummary.role,
            ColumnSummary.name, ColumnSummary.parts, ColumnSummary.body,
        ).where(*conditions)
    )  # fmt: skip
    return [
        Part(bucket_start, seconds, role, name, summaries.loads(body), parts)
        for bucket_start, seconds, role, name, parts, body in found
    ]


def first_bucket(session: Session, *, model_id: int) -> datetime | None:
    """The start of the model's first summarized bucket (None: it has none)."""
    found: datetime | None = session.scalar(
        select(func.min(ColumnSummary.bucket_start)).where(ColumnSummary.model_id == model_id)
    )
    return found


@dataclass(frozen=True, slots=True)
class Group:
    model_id: int
    bucket_start: datetime
    bucket_seconds: int
    role: str
    name: str


def groups_to_compact(session: Session, *, closed_before: datetime, limit: int) -> list[Group]:
    """(model, bucket, column)s of buckets ended by ``closed_before`` holding a row compaction
    has not seen (a partial index keeps these few rows apart from the settled history)."""
    key = (ColumnSummary.model_id, ColumnSummary.bucket_start, ColumnSummary.bucket_seconds,
           ColumnSummary.role, ColumnSummary.name)  # fmt: skip
    found = session.execute(
        select(*key)
        .where(
            ColumnSummary.settled.is_(False),
            # buckets are an hour long at most but for odd windows (service.bucket_seconds);
            # compacting one still open is harmless: later rows merge at a later pass
            ColumnSummary.bucket_start < closed_before - timedelta(hours=1),
        )
        .distinct()
        .limit(limit)
    )
    return [Group(*row) for row in found]


def compact(session: Session, group: Group) -> int:
    """Replace the group's rows by their merge, settled; returns how many rows were merged
    (0 when there was one, now settled, or when a concurrent compaction took some of them
    first: then nothing changes)."""
    conditions = (
        ColumnSummary.model_id == group.model_id,
        ColumnSummary.bucket_start == group.bucket_start,
        ColumnSummary.bucket_seconds == group.bucket_seconds,
        ColumnSummary.role == group.role,
        ColumnSummary.name == group.name,
    )
    savepoint = session.begin_nested()
    try:
        rows = session.execute(
            select(ColumnSummary.id, ColumnSummary.parts, ColumnSummary.body)
            .where(*conditions)
            .with_for_update()
        ).all()
        ids = [row.id for row in rows]
        if len(rows) == 1:
            session.execute(update(ColumnSummary).where(ColumnSummary.id == ids[0])
                            .values(settled=True))  # fmt: skip
            savepoint.commit()
            return 0
        deleted = session.execute(
            delete(ColumnSummary).where(ColumnSummary.id.in_(ids)).returning(ColumnSummary.id)
        ).all()
        if not rows or len(deleted) != len(ids):  # another compactor merged them first
            savepoint.rollback()
            return 0
        merged = summaries.merge([summaries.loads(row.body) for row in rows])
        part = Part(group.bucket_start, group.bucket_seconds, group.role, group.name, merged,
                    sum(row.parts for row in rows), settled=True)  # fmt: skip
        insert_parts(session, model_id=group.model_id, parts=[part])
        savepoint.commit()
    except BaseException:
        if savepoint.is_active:
            savepoint.rollback()
        raise
    return len(ids)
