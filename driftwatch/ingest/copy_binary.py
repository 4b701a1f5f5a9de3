"""PostgreSQL binary COPY streams for prediction rows, built with numpy.

psycopg's ``write_row`` turns every array element into a Python-level dump (7 us a row for 20
numerical and 5 categorical features). Here the fixed-size part of every row (field count,
model id, timestamp and the ``float8[]`` of numerical features) is laid out for the whole batch
in one numpy structured array, and only the text fields are joined row by row.

Format: https://www.postgresql.org/docs/15/sql-copy.html (Binary Format) and the array
``send`` functions of ``src/backend/utils/adt/arrayfuncs.c``.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

import numpy as np

from driftwatch.ingest.validation import PredictionColumns

HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
TRAILER = struct.pack(">h", -1)
NULL = struct.pack(">i", -1)
FLOAT8_OID = 701
TEXT_OID = 25
# Microseconds between the Unix epoch and PostgreSQL's (2000-01-01).
POSTGRES_EPOCH_US = 946_684_800_000_000

# The column order of the stream: fixed-size columns first, so they form one numpy record.
COLUMNS = (
    "model_id",
    "ts",
    "num_values",
    "prediction_id",
    "model_version",
    "prediction_value",
    "prediction_class",
    "cat_values",
)
_pack_int = struct.Struct(">i").pack


def _fixed_part(model_id: int, columns: PredictionColumns) -> tuple[bytes, int]:
    """Field count, model id, timestamp and numerical array of every row, back to back."""
    count, width = columns.num_values.shape
    array_fields: list[tuple[str, str] | tuple[str, list[tuple[str, str]], tuple[int]]] = [
        ("array_len", ">i4"),
        ("ndim", ">i4"),
        ("has_null", ">i4"),
        ("oid", ">i4"),
    ]
    if width:
        array_fields += [
            ("dim", ">i4"),
            ("lower", ">i4"),
            ("items", [("len", ">i4"), ("value", ">f8")], (width,)),
        ]
    layout = np.dtype(
        [
            ("fields", ">i2"),
            ("model_len", ">i4"),
            ("model_id", ">i4"),
            ("ts_len", ">i4"),
            ("ts", ">i8"),
            *array_fields,
        ]
    )
    rows = np.zeros(count, dtype=layout)
    rows["fields"] = len(COLUMNS)
    rows["model_len"] = 4
    rows["model_id"] = model_id
    rows["ts_len"] = 8
    rows["ts"] = columns.timestamps_us - POSTGRES_EPOCH_US
    rows["oid"] = FLOAT8_OID
    if width:
        rows["array_len"] = 20 + 12 * width
        rows["ndim"] = 1
        rows["dim"] = width
        rows["lower"] = 1
        rows["items"]["len"] = 8
        rows["items"]["value"] = columns.num_values
    else:
        rows["array_len"] = 12  # an empty array: no dimensions
    return rows.tobytes(), layout.itemsize


class _TextCache(dict[str | None, bytes]):
    """Length-prefixed UTF-8 of each distinct value (categories and versions repeat a lot)."""

    def __missing__(self, value: str | None) -> bytes:
        encoded = NULL if value is None else _pack_int(len(raw := value.encode())) + raw
        self[value] = encoded
        return encoded


def _text_arrays(cat_values: list[list[str | None]], cache: _TextCache) -> Iterator[bytes]:
    """Each row's categorical values as a ``text[]`` field."""
    width = len(cat_values)
    if width == 0:
        empty = _pack_int(12) + struct.pack(">iii", 0, 0, TEXT_OID)
        while True:
            yield empty
    tail = struct.pack(">iii", TEXT_OID, width, 1)
    for row in zip(*cat_values, strict=True):
        body = b"".join([cache[value] for value in row])
        has_null = 1 if None in row else 0
        # length, ndim 1, has-null flag, element type, size, lower bound 1, elements
        yield _pack_int(20 + len(body)) + _pack_int(1) + _pack_int(has_null) + tail + body


def encode_predictions(model_id: int, columns: PredictionColumns) -> bytes:
    """A complete binary COPY stream of these rows in ``COLUMNS`` order."""
    count = len(columns)
    fixed, size = _fixed_part(model_id, columns)
    values = np.ascontiguousarray(columns.prediction_values)
    value_fields = np.zeros(count, dtype=[("len", ">i4"), ("value", ">f8")])
    value_fields["len"] = 8
    value_fields["value"] = values
    value_bytes = value_fields.tobytes()
    value_missing = np.isnan(values).tolist()
    cache = _TextCache()
    parts: list[bytes | memoryview] = [HEADER]
    append = parts.append
    arrays = _text_arrays(columns.cat_values, cache)
    view = memoryview(fixed)
    for index, (prediction_id, version, label, missing) in enumerate(
        zip(
            columns.prediction_ids,
            columns.model_versions,
            columns.prediction_classes,
            value_missing,
            strict=True,
        )
    ):
        append(view[index * size : (index + 1) * size])
        encoded_id = prediction_id.encode()
        append(_pack_int(len(encoded_id)))
        append(encoded_id)
        append(cache[version])
        append(NULL if missing else value_bytes[index * 12 : index * 12 + 12])
        append(cache[label])
        append(next(arrays))
    append(TRAILER)
    return b"".join(parts)
