"""Prediction chunks: the feature values of one accepted batch, stored column by column.

A chunk keeps, for the rows of one batch: timestamps (int64 microseconds), numerical features
(a float64 matrix, NaN = missing), categorical features (int32 codes into a per-chunk dictionary,
-1 = missing), and the predictions (float64 values, class codes). Every array is stored as its
raw little-endian bytes, so writing a chunk costs a ``tobytes`` and reading a window back costs a
``frombuffer`` per chunk: no per-row parsing on either side. Pure: no database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from driftwatch.ingest.validation import PredictionColumns

FLOAT = np.dtype("<f8")
INT64 = np.dtype("<i8")
CODE = np.dtype("<i4")


@dataclass(slots=True)
class EncodedChunk:
    rows: int
    ts_min_us: int
    ts_max_us: int
    timestamps: bytes
    num_values: bytes
    num_width: int
    cat_codes: bytes
    cat_width: int
    prediction_values: bytes
    prediction_classes: bytes
    # {"features": [[category, ...] per categorical feature], "classes": [...]}
    dictionary: dict[str, Any]


def _codes(values: list[str | None]) -> tuple[npt.NDArray[np.int32], list[str]]:
    """Dictionary-encode one column: codes in order of first appearance, -1 for missing."""
    codes, categories = pd.factorize(np.array(values, dtype=object), use_na_sentinel=True)
    return codes.astype(CODE), [str(category) for category in categories]


def encode(columns: PredictionColumns) -> EncodedChunk:
    rows = len(columns)
    cat_columns = [_codes(values) for values in columns.cat_values]
    cat_codes = (
        np.column_stack([codes for codes, _ in cat_columns])
        if cat_columns
        else np.empty((rows, 0), dtype=CODE)
    )
    class_codes, classes = _codes(columns.prediction_classes)
    timestamps = np.ascontiguousarray(columns.timestamps_us, dtype=INT64)
    return EncodedChunk(
        rows=rows,
        ts_min_us=int(timestamps.min()),
        ts_max_us=int(timestamps.max()),
        timestamps=timestamps.tobytes(),
        num_values=np.ascontiguousarray(columns.num_values, dtype=FLOAT).tobytes(),
        num_width=columns.num_values.shape[1],
        cat_codes=np.ascontiguousarray(cat_codes, dtype=CODE).tobytes(),
        cat_width=len(cat_columns),
        prediction_values=np.ascontiguousarray(columns.prediction_values, dtype=FLOAT).tobytes(),
        prediction_classes=class_codes.tobytes(),
        dictionary={"features": [categories for _, categories in cat_columns], "classes": classes},
    )


@dataclass(slots=True)
class DecodedChunk:
    timestamps_us: npt.NDArray[np.int64]
    num_values: npt.NDArray[np.float64]  # (rows, numerical features stored in this chunk)
    cat_codes: npt.NDArray[np.int32]  # (rows, categorical features stored in this chunk)
    categories: list[list[str]]
    prediction_values: npt.NDArray[np.float64]
    class_codes: npt.NDArray[np.int32]
    classes: list[str]


def decode(
    *,
    rows: int,
    timestamps: bytes,
    num_values: bytes,
    num_width: int,
    cat_codes: bytes,
    cat_width: int,
    prediction_values: bytes,
    prediction_classes: bytes,
    dictionary: dict[str, Any],
) -> DecodedChunk:
    return DecodedChunk(
        timestamps_us=np.frombuffer(timestamps, dtype=INT64),
        num_values=np.frombuffer(num_values, dtype=FLOAT).reshape(rows, num_width),
        cat_codes=np.frombuffer(cat_codes, dtype=CODE).reshape(rows, cat_width),
        categories=dictionary["features"],
        prediction_values=np.frombuffer(prediction_values, dtype=FLOAT),
        class_codes=np.frombuffer(prediction_classes, dtype=CODE),
        classes=dictionary["classes"],
    )


def to_us(moment: datetime) -> int:
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


@dataclass(slots=True)
class WindowColumns:
    """The stored predictions of a time window, column by column, in storage order."""

    timestamps_us: npt.NDArray[np.int64]
    num_values: npt.NDArray[np.float64]  # (rows, numerical features), NaN = missing
    cat_codes: npt.NDArray[np.int32]  # (rows, categorical features), -1 = missing
    categories: list[list[str]]  # per categorical feature: the names its codes point to
    prediction_values: npt.NDArray[np.float64]  # NaN where the prediction is a class
    class_codes: npt.NDArray[np.int32]  # -1 where the prediction is a number
    classes: list[str]

    def __len__(self) -> int:
        return len(self.timestamps_us)

    def category_values(self, position: int) -> list[str | None]:
        """The values of one categorical feature as text (None = missing)."""
        names: list[str | None] = [*self.categories[position], None]
        return [names[code] for code in self.cat_codes[:, position].tolist()]


def _remap(
    codes: npt.NDArray[np.int32], names: list[str], merged: dict[str, int]
) -> npt.NDArray[np.int32]:
    """Codes of one chunk's dictionary translated into the merged dictionary's codes."""
    table = np.empty(len(names) + 1, dtype=CODE)
    for code, name in enumerate(names):
        table[code] = merged.setdefault(name, len(merged))
    table[-1] = -1  # index -1 (missing) stays missing
    return table[codes]


def merge(
    decoded: list[DecodedChunk], *, num_width: int, cat_width: int, start_us: int, end_us: int
) -> WindowColumns:
    """Concatenate chunks, keeping rows inside [start, end) and widening older chunks (stored
    before features were added) with missing values."""
    merged_categories: list[dict[str, int]] = [{} for _ in range(cat_width)]
    merged_classes: dict[str, int] = {}
    parts: dict[str, list[Any]] = {k: [] for k in ("ts", "num", "cat", "value", "cls")}
    for chunk in decoded:
        inside = (chunk.timestamps_us >= start_us) & (chunk.timestamps_us < end_us)
        if not inside.any():
            continue
        rows = int(inside.sum())
        num = np.full((rows, num_width), np.nan)
        width = min(num_width, chunk.num_values.shape[1])
        num[:, :width] = chunk.num_values[inside, :width]
        cat = np.full((rows, cat_width), -1, dtype=CODE)
        for position in range(min(cat_width, chunk.cat_codes.shape[1])):
            cat[:, position] = _remap(
                chunk.cat_codes[inside, position],
                chunk.categories[position],
                merged_categories[position],
            )
        parts["ts"].append(chunk.timestamps_us[inside])
        parts["num"].append(num)
        parts["cat"].append(cat)
        parts["value"].append(chunk.prediction_values[inside])
        parts["cls"].append(_remap(chunk.class_codes[inside], chunk.classes, merged_classes))
    if not parts["ts"]:
        return WindowColumns(
            timestamps_us=np.empty(0, dtype=INT64),
            num_values=np.empty((0, num_width)),
            cat_codes=np.empty((0, cat_width), dtype=CODE),
            categories=[[] for _ in range(cat_width)],
            prediction_values=np.empty(0),
            class_codes=np.empty(0, dtype=CODE),
            classes=[],
        )
    return WindowColumns(
        timestamps_us=np.concatenate(parts["ts"]),
        num_values=np.concatenate(parts["num"]),
        cat_codes=np.concatenate(parts["cat"]),
        categories=[list(categories) for categories in merged_categories],
        prediction_values=np.concatenate(parts["value"]),
        class_codes=np.concatenate(parts["cls"]),
        classes=list(merged_classes),
    )
