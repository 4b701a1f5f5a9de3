"""Every query of the ingest path, and reading a window of stored predictions back.

Bulk writes on Postgres are binary COPY straight into the table. A primary-key clash (a record
sent again, usually an SDK retry) aborts the COPY; the records already stored are then left out
and the rest written, so duplicates are skipped and counted and the common case pays for one
COPY only. SQLite checks first, under the write lock it takes at BEGIN.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import orjson
import psycopg
from psycopg.types.json import Json
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from driftwatch.core.retention import Retention
from driftwatch.core.time import day_numbers, day_start, iso, utcnow
from driftwatch.errors import Conflict, PayloadTooLarge
from driftwatch.ingest.validation import (
    BINARY,
    MULTICLASS,
    UNKNOWN_CLASSES,
    ModelClasses,
    Rejection,
    Unreadable,
    bounded_repr,
)
from driftwatch.models import (
    GroundTruth,
    PredictionChunk,
    PredictionKey,
    RejectedRecord,
)
from driftwatch.storage import chunks, copy_binary, partitions, postgres
from driftwatch.storage.columns import PredictionColumns

GROUND_TRUTH_COLUMNS = (
    "model_id", "prediction_id", "label_value", "label_class", "ts", "received_at",
)  # fmt: skip
GROUND_TRUTH_PG_TYPES = ("int4", "text", "float8", "text", "timestamptz", "timestamptz")

SHADOW_COLUMNS = (
    "model_id", "prediction_id", "model_version", "prediction_value", "prediction_class",
    "received_at",
)  # fmt: skip
SHADOW_PG_TYPES = ("int4", "text", "text", "float8", "text", "timestamptz")

Load = Callable[[psycopg.Cursor[Any], str], None]


def _insert_ignore_postgres(
    session: Session, table: str, columns: Sequence[str], load: Load, count: int
) -> int:
    """Run ``load(cursor, table)``, a COPY of ``count`` rows, skipping rows already stored."""
    driver = postgres.psycopg_connection(session)
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


def _sqlite_times(timestamps_us: np.ndarray[Any, Any]) -> list[str]:
    text = np.datetime_as_string(timestamps_us.astype("datetime64[us]"), unit="us")
    return [str(t).replace("T", " ") for t in text]


def _existing_ids(session: Session, model_id: int, ids: list[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(ids), 5000):
        part = ids[start : start + 5000]
        found.update(
            session.scalars(
                select(PredictionKey.prediction_id).where(
                    PredictionKey.model_id == model_id, PredictionKey.prediction_id.in_(part)
                )
            )
        )
    return found


def _without(columns: PredictionColumns, existing: set[str]) -> PredictionColumns:
    if not existing:  # the usual case: no copy of the batch
        return columns
    return columns.take([i for i, pid in enumerate(columns.prediction_ids) if pid not in existing])


def _by_day(columns: PredictionColumns) -> list[PredictionColumns]:
    """The records of each UTC day apart (a chunk lies in one day, so in one partition)."""
    days = day_numbers(columns.timestamps_us)
    if days.min() == days.max():
        return [columns]
    return [columns.take(np.flatnonzero(days == day).tolist()) for day in np.unique(days)]


def _chunk_row(model_id: int, columns: PredictionColumns) -> dict[str, Any]:
    encoded = chunks.encode(columns)
    return {
        "model_id": model_id,
        "ts_min": chunks.from_us(encoded.ts_min_us),
        "ts_max": chunks.from_us(encoded.ts_max_us),
        "rows": encoded.rows,
        "num_width": encoded.num_width,
        "cat_width": encoded.cat_width,
        "timestamps": encoded.timestamps,
        "num_values": encoded.num_values,
        "cat_codes": encoded.cat_codes,
        "prediction_values": encoded.prediction_values,
        "prediction_classes": encoded.prediction_classes,
        "dictionary": encoded.dictionary,
        "created_at": utcnow(),
        # only for a batch with embedding features: one without writes the rows it always did
        **({} if encoded.emb_values is None else {"emb_values": encoded.emb_values}),
        # only where there are (a row without the key is written as tables before 0017 hold)
        **({"prediction_scores": encoded.prediction_scores}
           if encoded.prediction_scores is not None else {}),
    }  # fmt: skip


_CHUNK_COLUMNS = (
    "model_id", "ts_min", "ts_max", "rows", "num_width", "cat_width", "timestamps", "num_values",
    "cat_codes", "prediction_values", "prediction_classes", "dictionary", "prediction_scores",
    "created_at",
)  # fmt: skip


def _insert_statement(columns: tuple[str, ...]) -> str:
    return (
        f"INSERT INTO prediction_chunks ({', '.join(columns)}) "
        f"VALUES ({', '.join(['%s'] * len(columns))}) RETURNING id"
    )


_INSERT_CHUNK = _insert_statement(_CHUNK_COLUMNS)
_EMBEDDING_CHUNK_COLUMNS = (*_CHUNK_COLUMNS, "emb_values")
_INSERT_EMBEDDING_CHUNK = _insert_statement(_EMBEDDING_CHUNK_COLUMNS)


def _insert_chunk(session: Session, model_id: int, columns: PredictionColumns) -> int:
    row = _chunk_row(model_id, columns)
    if session.get_bind().dialect.name == "postgresql":
        # Straight to psycopg, buffers as binary parameters: the ORM path costs more than the
        # insert itself for a few hundred kilobytes of column data.
        embedded = "emb_values" in row
        names = _EMBEDDING_CHUNK_COLUMNS if embedded else _CHUNK_COLUMNS
        values = [row.get(c) for c in names]
        values[names.index("dictionary")] = Json(row["dictionary"])
        cursor = postgres.psycopg_connection(session).execute(
            _INSERT_EMBEDDING_CHUNK if embedded else _INSERT_CHUNK, values, binary=True
        )
        found = cursor.fetchone()
        assert found is not None
        return int(found[0])
    chunk_id = session.execute(
        insert(PredictionChunk).returning(PredictionChunk.id), [row]
    ).scalar_one()
    return int(chunk_id)


DEFAULT_MAX_BATCH_PARTITIONS = 100  # DRIFTWATCH_MAX_BATCH_PARTITIONS


def insert_predictions(
    session: Session, *, model_id: int, columns: PredictionColumns, retention: Retention,
    max_partitions: int = DEFAULT_MAX_BATCH_PARTITIONS,
) -> int:  # fmt: skip
    """Store validated predictions that are new; returns how many that was."""
    return len(store_predictions(session, model_id=model_id, columns=columns,
                                 retention=retention, max_partitions=max_partitions))  # fmt: skip


def store_predictions(
    session: Session, *, model_id: int, columns: PredictionColumns, retention: Retention,
    max_partitions: int = DEFAULT_MAX_BATCH_PARTITIONS,
) -> PredictionColumns:  # fmt: skip
    """Store validated predictions that are new; returns those (the ones stored).

    Each day's records of the batch go into one chunk, and each prediction gets a key and a
    narrow row pointing at its chunk. Records already stored (an SDK retry) are left out of
    all three, so no window counts a prediction twice.
    """
    if not len(columns):
        return columns
    if session.get_bind().dialect.name == "postgresql":
        return _insert_predictions_postgres(session, model_id, columns, retention, max_partitions)
    # SQLite: the transaction holds the write lock from BEGIN IMMEDIATE, so nothing can slip
    # in between this check and the insert.
    columns = _without(columns, _existing_ids(session, model_id, columns.prediction_ids))
    if not len(columns):
        return columns
    cursor = session.connection().connection.driver_connection.cursor()  # type: ignore[union-attr]
    times = _sqlite_times(columns.timestamps_us)
    cursor.executemany(
        "INSERT INTO prediction_keys (model_id, prediction_id, ts) VALUES (?, ?, ?)",
        [(model_id, pid, times[i]) for i, pid in enumerate(columns.prediction_ids)],
    )
    for day in _by_day(columns):
        chunk_id = _insert_chunk(session, model_id, day)
        times = _sqlite_times(day.timestamps_us)
        values = day.prediction_values.tolist()
        rows = [
            (model_id, pid, times[i], chunk_id, i, day.model_versions[i],
             None if values[i] != values[i] else values[i], day.prediction_classes[i])
            for i, pid in enumerate(day.prediction_ids)
        ]  # fmt: skip
        cursor.executemany(
            "INSERT INTO predictions (model_id, prediction_id, ts, chunk_id, chunk_row, "
            "model_version, prediction_value, prediction_class) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
    return columns


def _no_partition(error: psycopg.errors.CheckViolation) -> bool:
    """ "no partition of relation ... found for row", in any server language: the one check
    violation that names no constraint."""
    return error.diag.constraint_name is None


def _ensure_partitions(
    session: Session, days: list[PredictionColumns], retention: Retention, max_partitions: int
) -> None:
    try:
        partitions.ensure(session.connection(), [_day_of(day) for day in days], now=utcnow(),
                          retention=retention, max_new=max_partitions)  # fmt: skip
    except partitions.TooManyPartitions as error:
        first, last = _day_of(days[0]), _day_of(days[-1])
        raise PayloadTooLarge(
            f"records: this batch spans {len(days)} days ({first.date()} to {last.date()}) "
            f"that need {error.needed} new time partitions; a batch may create at most "
            f"{error.limit} (DRIFTWATCH_MAX_BATCH_PARTITIONS): send it in smaller batches, each of "
            "a shorter span of time"
        ) from None


def _insert_predictions_postgres(
    session: Session, model_id: int, columns: PredictionColumns, retention: Retention,
    max_partitions: int,
) -> PredictionColumns:  # fmt: skip
    driver = postgres.psycopg_connection(session)
    keys = postgres.copy_statement("prediction_keys", copy_binary.KEY_COLUMNS)
    rows = postgres.copy_statement("predictions", copy_binary.COLUMNS)
    days = _by_day(columns)
    now = utcnow()
    cutoff = retention.cutoff(now)
    if cutoff is not None and _day_of(days[0]) < cutoff:
        # validated before midnight moved the cutoff: their partition may be being dropped
        raise Conflict(
            f"predictions before {iso(cutoff)} expired while this batch was being written; "
            "send it again (they will be refused, the others stored)"
        )
    _ensure_partitions(session, days, retention, max_partitions)
    # Optimistic: one COPY of keys, one chunk and one COPY of rows per day. A duplicate id
    # aborts them all (savepoint); then the ids already stored are looked up and left out,
    # and the rest is tried again. Concurrent requests carrying the same ids converge within
    # a few rounds.
    for _attempt in range(8):
        try:
            with driver.transaction(), driver.cursor() as cursor:
                with cursor.copy(keys) as copy:
                    copy.write(copy_binary.encode_keys(model_id, columns))
                for day in days:
                    chunk_id = _insert_chunk(session, model_id, day)
                    with cursor.copy(rows) as copy:
                        copy.write(copy_binary.encode_predictions(model_id, chunk_id, day))
            return columns
        except psycopg.errors.UniqueViolation:
            columns = _without(columns, _existing_ids(session, model_id, columns.prediction_ids))
            if not len(columns):
                return columns
            days = _by_day(columns)
        except psycopg.errors.CheckViolation as error:
            if not _no_partition(error):
                raise
            # Dropped by another replica's retention since this process last looked.
            partitions.KNOWN.forget(str(session.get_bind().engine.url))
            _ensure_partitions(session, days, retention, max_partitions)
    raise Conflict("the same predictions are being written concurrently; send the batch again")


def _day_of(columns: PredictionColumns) -> datetime:
    return day_start(chunks.from_us(int(columns.timestamps_us[0])))


def insert_ground_truth(session: Session, *, model_id: int, rows: Sequence[tuple[Any, ...]]) -> int:
    """Store validated label rows (see ``validate_ground_truth``); returns how many were new."""
    return _insert_keyed(session, "ground_truth", GROUND_TRUTH_COLUMNS, GROUND_TRUTH_PG_TYPES,
                         model_id=model_id, rows=rows)  # fmt: skip


def insert_shadow_predictions(
    session: Session, *, model_id: int, rows: Sequence[tuple[Any, ...]]
) -> int:
    """Store validated shadow rows (see ``validate_shadow_predictions``); returns how many were
    new (one per prediction id and version: a record sent again is a duplicate)."""
    return _insert_keyed(session, "shadow_predictions", SHADOW_COLUMNS, SHADOW_PG_TYPES,
                         model_id=model_id, rows=rows)  # fmt: skip


def _insert_keyed(
    session: Session, table: str, columns: Sequence[str], pg_types: Sequence[str], *,
    model_id: int, rows: Sequence[tuple[Any, ...]],
) -> int:  # fmt: skip
    """Store rows keyed by their primary key (labels, shadow predictions), each as
    ``(model_id, *row, received_at)``, leaving out those already stored; returns how many were
    new. Postgres: one COPY; SQLite: one insert that ignores conflicts."""
    if not rows:
        return 0
    received_at = utcnow()
    full = [(model_id, *row, received_at) for row in rows]
    if session.get_bind().dialect.name == "postgresql":

        def load(cursor: psycopg.Cursor[Any], target: str) -> None:
            with cursor.copy(postgres.copy_statement(target, columns)) as copy:
                copy.set_types(list(pg_types))
                for row in full:
                    copy.write_row(row)

        return _insert_ignore_postgres(session, table, columns, load, len(full))
    as_text = [tuple(_sqlite_time(v) if isinstance(v, datetime) else v for v in row)
               for row in full]  # fmt: skip
    return _insert_ignore_sqlite(session, table, columns, as_text)


def _json_safe(record: Any) -> Any:
    # Kept for operators as it came; anything JSON cannot hold is replaced by its text (a record
    # that was not JSON by itself, by the text sent; one nested past orjson's 254 levels, by a
    # repr of its first levels).
    if isinstance(record, Unreadable):
        return record.text
    try:
        return orjson.loads(orjson.dumps(record))
    except (TypeError, orjson.JSONEncodeError):
        return describe_deep(record)


_DEEP = bounded_repr(maxlevel=20, maxstring=1000, maxlong=1000, maxother=1000, maxdict=100,
                     maxlist=100)  # fmt: skip


def describe_deep(record: Any) -> str:
    return _DEEP.repr(record)[:10_000]


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
            # as sent, but Postgres text cannot hold NUL: shown as \x00
            prediction_id=None
            if r.prediction_id is None
            else r.prediction_id.replace("\x00", "\\x00"),
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


def window_capacity(session: Session, *, model_id: int, start: datetime, end: datetime) -> int:
    """The rows of the chunks overlapping [start, end): at least the window's predictions
    (a chunk may straddle its bounds), read without decoding any."""
    overlapping = _overlapping(session, model_id=model_id, start=start, end=end)
    return int(
        session.scalar(select(func.coalesce(func.sum(PredictionChunk.rows), 0))
                       .where(*overlapping)) or 0
    )  # fmt: skip


def read_window(
    session: Session, *, model_id: int, num_width: int, cat_width: int,
    start: datetime, end: datetime, embeddings: Sequence[tuple[str, int]] = (),
) -> chunks.WindowColumns:  # fmt: skip
    """Every stored prediction of the model with ``start <= ts < end``, as columns.

    Chunks are streamed one at a time into arrays sized for the window, so the memory used is
    about one copy of the window's values.
    """
    overlapping = _overlapping(session, model_id=model_id, start=start, end=end)
    capacity = int(
        session.scalar(select(func.coalesce(func.sum(PredictionChunk.rows), 0))
                       .where(*overlapping)) or 0
    )  # fmt: skip
    builder = chunks.WindowBuilder(capacity, num_width=num_width, cat_width=cat_width,
                                   embeddings=embeddings)  # fmt: skip
    start_us, end_us = chunks.to_us(start), chunks.to_us(end)
    fields = _CHUNK_FIELDS + (("emb_values",) if embeddings else ())
    for row in _stream_chunks(session, model_id=model_id, start=start, end=end, fields=fields):
        chunk_id = row.pop("id")
        builder.add(chunks.decode(**row), start_us=start_us, end_us=end_us, chunk_id=chunk_id)
    return builder.finish()


def _overlapping(session: Session, *, model_id: int, start: datetime, end: datetime) -> list[Any]:
    """Conditions for the chunks holding rows of [start, end). A chunk lies in one UTC day, so
    on Postgres the window's first day bounds ``ts_min`` too, and partitions of earlier days
    are never looked at."""
    conditions = [
        PredictionChunk.model_id == model_id,
        PredictionChunk.ts_min < end,
        PredictionChunk.ts_max >= start,
    ]
    if session.get_bind().dialect.name == "postgresql":
        conditions.append(PredictionChunk.ts_min >= day_start(start))
    return conditions


_CHUNK_FIELDS = (
    "id", "rows", "timestamps", "num_values", "num_width", "cat_codes", "cat_width",
    "prediction_values", "prediction_classes", "dictionary", "prediction_scores",
)  # fmt: skip


def _stream_chunks(
    session: Session, *, model_id: int, start: datetime, end: datetime,
    fields: tuple[str, ...] = _CHUNK_FIELDS,
) -> Iterator[dict[str, Any]]:  # fmt: skip
    """The window's chunks one at a time. On Postgres through a server-side cursor in binary
    format: bytea in the default text format is hex, twice the bytes and a decode besides."""
    if session.get_bind().dialect.name == "postgresql":
        yield from postgres.stream_binary(
            session,
            f"SELECT {', '.join(fields)} FROM prediction_chunks "
            "WHERE model_id = %(model)s AND ts_min < %(end)s AND ts_max >= %(start)s "
            "AND ts_min >= %(first_day)s ORDER BY id",
            {"model": model_id, "start": start, "end": end, "first_day": day_start(start)},
            fields=fields,
            rows_per_fetch=4,
        )
        return
    rows = session.execute(
        select(*(getattr(PredictionChunk, name) for name in fields))
        .where(*_overlapping(session, model_id=model_id, start=start, end=end))
        .order_by(PredictionChunk.id)
        .execution_options(yield_per=4)
    )
    for row in rows:
        yield row._asdict()


RECENT_CHUNKS = 20


def model_classes(session: Session, *, model_id: int, task: str = BINARY) -> ModelClasses:
    """What a model's newest stored predictions are: numbers, or class names (those its newest
    chunks name); a multiclass model's, the classes its newest per-class probabilities name.
    Cheap: the newest chunks by the (model, created_at) index, of the last two days first (a
    chunk lies in one UTC day: on Postgres only those days' partitions are read), of every day
    only for a model without recent predictions."""
    if task == MULTICLASS:
        return _probability_classes(session, model_id)
    newest = _newest_classes(session, model_id, since=day_start(utcnow()) - timedelta(days=1))
    if not newest:
        newest = _newest_classes(session, model_id, since=None)
    if not newest:
        return UNKNOWN_CLASSES
    if not newest[0]:
        return ModelClasses(scores=True)
    return ModelClasses(names=frozenset(name for names in newest for name in names or ()))


def _probability_classes(session: Session, model_id: int) -> ModelClasses:
    query = select(PredictionChunk.dictionary["score_classes"]).where(
        PredictionChunk.model_id == model_id, PredictionChunk.prediction_scores.is_not(None)
    )
    recent = query.where(PredictionChunk.ts_min >= day_start(utcnow()) - timedelta(days=1))
    for attempt in (recent, query):
        newest = attempt.order_by(PredictionChunk.created_at.desc()).limit(1)
        found = session.scalars(newest).first()
        if found:
            return ModelClasses(probabilities=tuple(str(name) for name in found))
    return UNKNOWN_CLASSES


def _newest_classes(session: Session, model_id: int, since: datetime | None) -> list[Any]:
    query = select(PredictionChunk.dictionary["classes"]).where(
        PredictionChunk.model_id == model_id
    )
    if since is not None:
        query = query.where(PredictionChunk.ts_min >= since)
    return list(
        session.scalars(query.order_by(PredictionChunk.created_at.desc()).limit(RECENT_CHUNKS))
    )


def label_names(session: Session, *, model_id: int, limit: int = 3) -> frozenset[str]:
    """Class names among the model's stored labels, ``limit`` at most (a binary model has two:
    only whether there are more matters)."""
    return frozenset(
        session.scalars(
            select(GroundTruth.label_class)
            .where(GroundTruth.model_id == model_id, GroundTruth.label_class.is_not(None))
            .distinct()
            .limit(limit)
        )
    )
