"""Every query of the ingest path.

Bulk writes on Postgres are one binary COPY straight into the table. A primary-key clash (a
record sent again, usually an SDK retry) aborts that COPY; the batch is then loaded into a
temporary table and moved with ``ON CONFLICT DO NOTHING``, so duplicates are skipped and counted
and the common case pays for one COPY only. SQLite uses ``INSERT OR IGNORE``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
import psycopg
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from driftwatch.ingest.validation import Rejection
from driftwatch.models import GroundTruth, Prediction, RejectedRecord
from driftwatch.models.base import utcnow

PREDICTION_COLUMNS = (
    "model_id",
    "prediction_id",
    "ts",
    "model_version",
    "prediction_value",
    "prediction_class",
    "num_values",
    "cat_values",
)
PREDICTION_PG_TYPES = (
    "int4",
    "text",
    "timestamptz",
    "text",
    "float8",
    "text",
    "float8[]",
    "text[]",
)
GROUND_TRUTH_COLUMNS = (
    "model_id",
    "prediction_id",
    "label_value",
    "label_class",
    "ts",
    "received_at",
)
GROUND_TRUTH_PG_TYPES = ("int4", "text", "float8", "text", "timestamptz", "timestamptz")


def _copy_rows(
    cursor: psycopg.Cursor[Any],
    table: str,
    columns: Sequence[str],
    types: Sequence[str],
    rows: Sequence[tuple[Any, ...]],
) -> None:
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(list(types))
        for row in rows:
            copy.write_row(row)


def _insert_ignore_postgres(
    session: Session,
    table: str,
    columns: Sequence[str],
    types: Sequence[str],
    rows: Sequence[tuple[Any, ...]],
) -> int:
    driver = session.connection().connection.driver_connection
    assert isinstance(driver, psycopg.Connection)
    try:
        with driver.transaction(), driver.cursor() as cursor:  # a savepoint inside the session's
            _copy_rows(cursor, table, columns, types, rows)
        return len(rows)
    except psycopg.errors.UniqueViolation:
        pass
    with driver.transaction(), driver.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS incoming_{table} "
            f"(LIKE {table} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )
        cursor.execute(f"TRUNCATE incoming_{table}")
        _copy_rows(cursor, f"incoming_{table}", columns, types, rows)
        column_list = ", ".join(columns)
        cursor.execute(
            f"INSERT INTO {table} ({column_list}) SELECT {column_list} FROM incoming_{table} "
            "ON CONFLICT DO NOTHING"
        )
        return cursor.rowcount


def _insert_ignore_sqlite(
    session: Session, table: str, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> int:
    placeholders = ", ".join("?" * len(columns))
    cursor = session.connection().connection.driver_connection.cursor()  # type: ignore[union-attr]
    cursor.executemany(
        f"INSERT OR IGNORE INTO {table} ({', '.join(columns)}) VALUES ({placeholders})", rows
    )
    return int(cursor.rowcount)


def _sqlite_time(value: Any) -> str:
    # SQLAlchemy's SQLite DateTime format (naive UTC, always with microseconds, so that times
    # compare correctly as text against the parameters SQLAlchemy binds).
    return str(value.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds"))


def insert_predictions(session: Session, *, model_id: int, rows: Sequence[tuple[Any, ...]]) -> int:
    """Store validated rows (see ``validate_predictions``); returns how many were new."""
    if not rows:
        return 0
    if session.get_bind().dialect.name == "postgresql":
        full = [(model_id, *row) for row in rows]
        return _insert_ignore_postgres(
            session, "predictions", PREDICTION_COLUMNS, PREDICTION_PG_TYPES, full
        )
    dumps = orjson.dumps
    full = [
        (
            model_id,
            pid,
            _sqlite_time(ts),
            version,
            value,
            label,
            dumps(num_values, option=orjson.OPT_SERIALIZE_NUMPY).decode(),
            dumps(cat_values).decode(),
        )
        for pid, ts, version, value, label, num_values, cat_values in rows
    ]
    return _insert_ignore_sqlite(session, "predictions", PREDICTION_COLUMNS, full)


def insert_ground_truth(session: Session, *, model_id: int, rows: Sequence[tuple[Any, ...]]) -> int:
    """Store validated label rows (see ``validate_ground_truth``); returns how many were new."""
    if not rows:
        return 0
    received_at = utcnow()
    if session.get_bind().dialect.name == "postgresql":
        full = [(model_id, *row, received_at) for row in rows]
        return _insert_ignore_postgres(
            session, "ground_truth", GROUND_TRUTH_COLUMNS, GROUND_TRUTH_PG_TYPES, full
        )
    full = [
        (model_id, pid, value, label, _sqlite_time(ts), _sqlite_time(received_at))
        for pid, value, label, ts in rows
    ]
    return _insert_ignore_sqlite(session, "ground_truth", GROUND_TRUTH_COLUMNS, full)


def _json_safe(record: Any) -> Any:
    # Kept for operators as it came; anything JSON cannot hold is replaced by its text.
    try:
        return orjson.loads(orjson.dumps(record))
    except (TypeError, orjson.JSONEncodeError):
        return repr(record)[:10_000]


def insert_rejections(
    session: Session, *, model_id: int, kind: str, rejections: Sequence[Rejection]
) -> None:
    if not rejections:
        return
    received_at = utcnow()
    session.add_all(
        RejectedRecord(
            model_id=model_id,
            kind=kind,
            batch_index=r.index,
            prediction_id=r.prediction_id,
            error=r.error,
            record=_json_safe(r.record),
            received_at=received_at,
        )
        for r in rejections
    )
    session.flush()


def list_rejections(
    session: Session, *, model_id: int, limit: int, before_id: int | None = None
) -> list[RejectedRecord]:
    query = select(RejectedRecord).where(RejectedRecord.model_id == model_id)
    if before_id is not None:
        query = query.where(RejectedRecord.id < before_id)
    return list(session.scalars(query.order_by(RejectedRecord.id.desc()).limit(limit)))


def count_predictions(session: Session, *, model_id: int) -> int:
    query = select(func.count()).select_from(Prediction).where(Prediction.model_id == model_id)
    return int(session.scalar(query) or 0)


def count_labeled(session: Session, *, model_id: int) -> int:
    query = (
        select(func.count())
        .select_from(Prediction)
        .join(
            GroundTruth,
            (GroundTruth.model_id == Prediction.model_id)
            & (GroundTruth.prediction_id == Prediction.prediction_id),
        )
        .where(Prediction.model_id == model_id)
    )
    return int(session.scalar(query) or 0)
