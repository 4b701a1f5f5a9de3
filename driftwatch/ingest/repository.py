"""Every query of the ingest path.

Bulk writes on Postgres are one binary COPY straight into the table. A primary-key clash (a
record sent again, usually an SDK retry) aborts that COPY; the batch is then loaded into a
temporary table and moved with ``ON CONFLICT DO NOTHING``, so duplicates are skipped and counted
and the common case pays for one COPY only. SQLite uses ``INSERT OR IGNORE``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import orjson
import psycopg
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from driftwatch.ingest import copy_binary
from driftwatch.ingest.validation import PredictionColumns, Rejection
from driftwatch.models import GroundTruth, Prediction, RejectedRecord
from driftwatch.models.base import utcnow

SQLITE_PREDICTION_COLUMNS = (
    "model_id", "prediction_id", "ts", "model_version", "prediction_value", "prediction_class",
    "num_values", "cat_values",
)  # fmt: skip
GROUND_TRUTH_COLUMNS = (
    "model_id", "prediction_id", "label_value", "label_class", "ts", "received_at",
)  # fmt: skip
GROUND_TRUTH_PG_TYPES = ("int4", "text", "float8", "text", "timestamptz", "timestamptz")

Load = Callable[[psycopg.Cursor[Any], str], None]


def _copy_statement(table: str, columns: Sequence[str]) -> str:
    return f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)"


def _insert_ignore_postgres(
    session: Session, table: str, columns: Sequence[str], load: Load, count: int
) -> int:
    """Run ``load(cursor, table)``, a COPY of ``count`` rows, skipping rows already stored."""
    driver = session.connection().connection.driver_connection
    assert isinstance(driver, psycopg.Connection)
    try:
        with driver.transaction(), driver.cursor() as cursor:  # a savepoint in the session's
            load(cursor, table)
        return count
    except psycopg.errors.UniqueViolation:
        pass
    with driver.transaction(), driver.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS incoming_{table} "
            f"(LIKE {table} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )
        cursor.execute(f"TRUNCATE incoming_{table}")
        load(cursor, f"incoming_{table}")
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


def _none_for_nan(values: list[float]) -> list[float | None]:
    return [None if v != v else v for v in values]


def insert_predictions(session: Session, *, model_id: int, columns: PredictionColumns) -> int:
    """Store validated predictions; returns how many were new."""
    count = len(columns)
    if not count:
        return 0
    if session.get_bind().dialect.name == "postgresql":
        stream = copy_binary.encode_predictions(model_id, columns)

        def load(cursor: psycopg.Cursor[Any], table: str) -> None:
            with cursor.copy(_copy_statement(table, copy_binary.COLUMNS)) as copy:
                copy.write(stream)

        return _insert_ignore_postgres(session, "predictions", copy_binary.COLUMNS, load, count)
    dumps = orjson.dumps
    times = np.datetime_as_string(columns.timestamps_us.astype("datetime64[us]"), unit="us")
    values = _none_for_nan(columns.prediction_values.tolist())
    numbers = [_none_for_nan(row) for row in columns.num_values.tolist()]
    categories = list(zip(*columns.cat_values, strict=True)) or [()] * count
    rows = [
        (
            model_id,
            columns.prediction_ids[i],
            str(times[i]).replace("T", " "),
            columns.model_versions[i],
            values[i],
            columns.prediction_classes[i],
            dumps(numbers[i]).decode(),
            dumps(categories[i]).decode(),
        )
        for i in range(count)
    ]
    return _insert_ignore_sqlite(session, "predictions", SQLITE_PREDICTION_COLUMNS, rows)


def insert_ground_truth(session: Session, *, model_id: int, rows: Sequence[tuple[Any, ...]]) -> int:
    """Store validated label rows (see ``validate_ground_truth``); returns how many were new."""
    if not rows:
        return 0
    received_at = utcnow()
    if session.get_bind().dialect.name == "postgresql":
        full = [(model_id, *row, received_at) for row in rows]

        def load(cursor: psycopg.Cursor[Any], table: str) -> None:
            with cursor.copy(_copy_statement(table, GROUND_TRUTH_COLUMNS)) as copy:
                copy.set_types(list(GROUND_TRUTH_PG_TYPES))
                for row in full:
                    copy.write_row(row)

        return _insert_ignore_postgres(
            session, "ground_truth", GROUND_TRUTH_COLUMNS, load, len(full)
        )
    sqlite_rows = [
        (model_id, pid, value, label, _sqlite_time(ts), _sqlite_time(received_at))
        for pid, value, label, ts in rows
    ]
    return _insert_ignore_sqlite(session, "ground_truth", GROUND_TRUTH_COLUMNS, sqlite_rows)


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
