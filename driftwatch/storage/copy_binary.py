"""PostgreSQL binary COPY streams for ``predictions`` rows, built with numpy.

The fixed-size part of every row (field count, model id, timestamp, chunk id and row) is laid
out for the whole batch in one numpy structured array; only the text fields are joined row by
row. This is about three times cheaper than psycopg's ``write_row`` for the same rows.

Format: https://www.postgresql.org/docs/15/sql-copy.html (Binary Format).
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from driftwatch.storage.columns import PredictionColumns

HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
TRAILER = struct.pack(">h", -1)
NULL = struct.pack(">i", -1)
# Microseconds between the Unix epoch and PostgreSQL's (2000-01-01).
POSTGRES_EPOCH_US = 946_684_800_000_000

# The column order of the stream: fixed-size columns first, so they form one numpy record.
COLUMNS = (
    "model_id", "ts", "chunk_id", "chunk_row",
    "prediction_id", "model_version", "prediction_value", "prediction_class",
)  # fmt: skip
_FIXED = np.dtype([
    ("fields", ">i2"),
    ("model_len", ">i4"), ("model_id", ">i4"),
    ("ts_len", ">i4"), ("ts", ">i8"),
    ("chunk_len", ">i4"), ("chunk_id", ">i8"),
    ("row_len", ">i4"), ("row", ">i4"),
])  # fmt: skip
_VALUE = np.dtype([("len", ">i4"), ("value", ">f8")])
_pack_int = struct.Struct(">i").pack


class _TextCache(dict[str | None, bytes]):
    """Length-prefixed UTF-8 of each distinct value (versions and classes repeat a lot)."""

    def __missing__(self, value: str | None) -> bytes:
        encoded = NULL if value is None else _pack_int(len(raw := value.encode())) + raw
        self[value] = encoded
        return encoded


def _uniform(values: list[str | None]) -> bool:
    return values.count(values[0]) == len(values)


def _encode_uniform(model_id: int, chunk_id: int, columns: PredictionColumns) -> bytes | None:
    """The whole stream as one numpy record array, when every row has the same layout: ids of
    one byte length (as the SDK makes them), one model version, numeric predictions."""
    ids = columns.prediction_ids
    if not ids or not all(pid.isascii() for pid in ids):
        return None
    width = len(ids[0])
    if any(len(pid) != width for pid in ids):
        return None
    if not _uniform(columns.model_versions) or any(columns.prediction_classes):
        return None
    values = columns.prediction_values
    if np.isnan(values).any():
        return None
    version = _TextCache()[columns.model_versions[0]]
    layout = np.dtype([
        ("fixed", _FIXED),
        ("id_len", ">i4"), ("id", f"S{width}"),
        ("version", f"S{len(version)}"),
        ("value", _VALUE),
        ("class_null", ">i4"),
    ])  # fmt: skip
    rows = np.zeros(len(ids), dtype=layout)
    _fill_fixed(rows["fixed"], model_id, chunk_id, columns)
    rows["id_len"] = width
    rows["id"] = np.array(ids, dtype=f"S{width}")
    rows["version"] = version
    rows["value"]["len"] = 8
    rows["value"]["value"] = values
    rows["class_null"] = -1
    return HEADER + rows.tobytes() + TRAILER


def _fill_fixed(
    fixed: np.ndarray[Any, Any], model_id: int, chunk_id: int, columns: PredictionColumns
) -> None:
    fixed["fields"] = len(COLUMNS)
    fixed["model_len"] = 4
    fixed["model_id"] = model_id
    fixed["ts_len"] = 8
    fixed["ts"] = columns.timestamps_us - POSTGRES_EPOCH_US
    fixed["chunk_len"] = 8
    fixed["chunk_id"] = chunk_id
    fixed["row_len"] = 4
    fixed["row"] = np.arange(len(fixed))


def encode_predictions(model_id: int, chunk_id: int, columns: PredictionColumns) -> bytes:
    """A complete binary COPY stream of these rows, in ``COLUMNS`` order."""
    uniform = _encode_uniform(model_id, chunk_id, columns)
    return uniform if uniform is not None else _encode_rows(model_id, chunk_id, columns)


def _encode_rows(model_id: int, chunk_id: int, columns: PredictionColumns) -> bytes:
    """Any rows: the fixed-size part vectorised, the text fields joined row by row."""
    count = len(columns)
    fixed = np.zeros(count, dtype=_FIXED)
    _fill_fixed(fixed, model_id, chunk_id, columns)
    fixed_bytes = memoryview(fixed.tobytes())
    size = _FIXED.itemsize

    values = np.zeros(count, dtype=_VALUE)
    values["len"] = 8
    values["value"] = columns.prediction_values
    value_bytes = memoryview(values.tobytes())
    missing = np.isnan(columns.prediction_values).tolist()

    cache = _TextCache()
    parts: list[bytes | memoryview] = [HEADER]
    append = parts.append
    for index, (prediction_id, version, label, no_value) in enumerate(
        zip(
            columns.prediction_ids,
            columns.model_versions,
            columns.prediction_classes,
            missing,
            strict=True,
        )
    ):
        append(fixed_bytes[index * size : (index + 1) * size])
        encoded_id = prediction_id.encode()
        append(_pack_int(len(encoded_id)))
        append(encoded_id)
        append(cache[version])
        append(NULL if no_value else value_bytes[index * 12 : index * 12 + 12])
        append(cache[label])
    append(TRAILER)
    return b"".join(parts)


KEY_COLUMNS = ("model_id", "ts", "prediction_id")
_KEY_FIXED = np.dtype([
    ("fields", ">i2"), ("model_len", ">i4"), ("model_id", ">i4"), ("ts_len", ">i4"), ("ts", ">i8"),
])  # fmt: skip


def encode_keys(model_id: int, columns: PredictionColumns) -> bytes:
    """A binary COPY stream of ``prediction_keys`` rows, in ``KEY_COLUMNS`` order."""
    ids = columns.prediction_ids
    width = len(ids[0]) if ids else 0
    uniform = all(pid.isascii() and len(pid) == width for pid in ids)
    id_type = f"S{width}" if uniform else "O"
    layout = np.dtype([("fixed", _KEY_FIXED), ("id_len", ">i4")])
    fixed = np.zeros(len(ids), dtype=layout)
    fixed["fixed"]["fields"] = len(KEY_COLUMNS)
    fixed["fixed"]["model_len"] = 4
    fixed["fixed"]["model_id"] = model_id
    fixed["fixed"]["ts_len"] = 8
    fixed["fixed"]["ts"] = columns.timestamps_us - POSTGRES_EPOCH_US
    if uniform:  # one record array: ids of one byte length, as the SDK makes them
        rows = np.zeros(len(ids), dtype=[("head", layout), ("id", id_type)])
        rows["head"] = fixed
        rows["head"]["id_len"] = width
        rows["id"] = np.array(ids, dtype=id_type)
        return HEADER + rows.tobytes() + TRAILER
    encoded = [pid.encode() for pid in ids]
    fixed["id_len"] = [len(raw) for raw in encoded]
    head = memoryview(fixed.tobytes())
    size = layout.itemsize
    parts: list[bytes | memoryview] = [HEADER]
    for index, raw in enumerate(encoded):
        parts.append(head[index * size : (index + 1) * size])
        parts.append(raw)
    parts.append(TRAILER)
    return b"".join(parts)
