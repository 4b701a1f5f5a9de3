"""Prediction chunks: the feature values of one accepted batch, stored column by column.

A chunk keeps, for the rows of one batch: timestamps (int64 microseconds), numerical features
(a float64 matrix, NaN = missing), categorical features (int32 codes into a per-chunk dictionary,
-1 = missing), embedding features (float32 matrices, row by row, a row of NaN = missing; the
dictionary names them and their dimensions), and the predictions (float64 values, class
codes). Every array is stored as its
raw little-endian bytes, so writing a chunk costs a ``tobytes`` and reading a window back costs a
``frombuffer`` per chunk: no per-row parsing on either side. Pure: no database.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from driftwatch.core.time import DAY_US
from driftwatch.storage.columns import PredictionColumns

FLOAT = np.dtype("<f8")
INT64 = np.dtype("<i8")
CODE = np.dtype("<i4")
FLOAT32 = np.dtype("<f4")
Float32Matrix = npt.NDArray[np.float32]


@dataclass(slots=True)
class EncodedChunk:
    rows: int
    ts_min_us: int
    ts_max_us: int
    timestamps: bytes
    num_values: bytes | memoryview  # column-major: feature by feature
    num_width: int
    cat_codes: bytes
    cat_width: int
    prediction_values: bytes
    prediction_classes: bytes
    # {"features": [[category, ...] per categorical feature], "classes": [...]}, and with
    # embedding features "embeddings": [[name, dimensions], ...] (their order in emb_values)
    # per-class probabilities "score_classes": [...] (sorted)
    dictionary: dict[str, Any]
    emb_values: bytes | None = None  # each embedding's (rows, dimensions) float32, in turn
    # a multiclass model's per-class probabilities: float64, column-major (class by class);
    # None for a chunk without them
    prediction_scores: bytes | None = None


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
    dictionary: dict[str, Any] = {
        "features": [categories for _, categories in cat_columns],
        "classes": classes,
    }
    emb_values = None
    if columns.emb_names:
        dictionary["embeddings"] = [
            [name, int(matrix.shape[1])]
            for name, matrix in zip(columns.emb_names, columns.emb_values, strict=True)
        ]
        emb_values = b"".join(
            np.ascontiguousarray(matrix, dtype=FLOAT32).tobytes() for matrix in columns.emb_values
        )
    scores = columns.prediction_scores
    if scores is not None:
        dictionary["score_classes"] = list(columns.score_classes)
    return EncodedChunk(
        rows=rows,
        ts_min_us=int(timestamps.min()),
        ts_max_us=int(timestamps.max()),
        timestamps=timestamps.tobytes(),
        # Column-major: a run reads one feature at a time, and a contiguous column is
        # several times cheaper to scan than a strided one.
        # A view, not a copy: the matrix is the batch's largest buffer (validation builds it
        # column-major, so this transpose is contiguous already).
        num_values=np.ascontiguousarray(columns.num_values.T, dtype=FLOAT).data,
        num_width=columns.num_values.shape[1],
        cat_codes=np.ascontiguousarray(cat_codes.T, dtype=CODE).tobytes(),
        cat_width=len(cat_columns),
        prediction_values=np.ascontiguousarray(columns.prediction_values, dtype=FLOAT).tobytes(),
        prediction_classes=class_codes.tobytes(),
        dictionary=dictionary,
        emb_values=emb_values,
        prediction_scores=None if scores is None else np.ascontiguousarray(
            scores.T, dtype=FLOAT).tobytes(),
    )  # fmt: skip


def split_by_day(stored: dict[str, Any]) -> list[tuple[npt.NDArray[np.int64], dict[str, Any]]]:
    """A stored chunk (its fields as in ``prediction_chunks``) as one chunk per UTC day of its
    rows: each with the positions its rows had in the original. The dictionary is kept whole
    (codes stay valid); the other buffers keep only the day's rows."""
    rows, num_width, cat_width = stored["rows"], stored["num_width"], stored["cat_width"]
    timestamps = np.frombuffer(stored["timestamps"], dtype=INT64)
    num_values = np.frombuffer(stored["num_values"], dtype=FLOAT).reshape(num_width, rows)
    cat_codes = np.frombuffer(stored["cat_codes"], dtype=CODE).reshape(cat_width, rows)
    values = np.frombuffer(stored["prediction_values"], dtype=FLOAT)
    classes = np.frombuffer(stored["prediction_classes"], dtype=CODE)
    embeddings = _embedding_matrices(stored.get("emb_values"), stored["dictionary"], rows)
    scores = _scores(stored.get("prediction_scores"), stored["dictionary"], rows)
    days = timestamps // DAY_US
    pieces = []
    for day in np.unique(days):
        positions = np.flatnonzero(days == day)
        own = timestamps[positions]
        pieces.append((positions, {
            **stored,
            "rows": len(positions),
            "ts_min": from_us(int(own.min())),
            "ts_max": from_us(int(own.max())),
            "timestamps": own.tobytes(),
            "num_values": np.ascontiguousarray(num_values[:, positions]).tobytes(),
            "cat_codes": np.ascontiguousarray(cat_codes[:, positions]).tobytes(),
            "prediction_values": values[positions].tobytes(),
            "prediction_classes": classes[positions].tobytes(),
            "emb_values": b"".join(m[positions].tobytes() for m in embeddings.values())
            if embeddings else stored.get("emb_values"),
            "prediction_scores": None if scores is None else np.ascontiguousarray(
                scores[positions].T).tobytes(),
        }))  # fmt: skip
    return pieces


def _embedding_matrices(
    emb_values: bytes | memoryview | None, dictionary: dict[str, Any], rows: int
) -> dict[str, Float32Matrix]:
    """A chunk's embedding matrices by feature name (none for a chunk stored without any)."""
    named = dictionary.get("embeddings") or []
    if emb_values is None or not named:
        return {}
    flat = np.frombuffer(emb_values, dtype=FLOAT32)
    out: dict[str, Float32Matrix] = {}
    offset = 0
    for name, dimensions in named:
        size = rows * int(dimensions)
        out[str(name)] = flat[offset : offset + size].reshape(rows, int(dimensions))
        offset += size
    return out


def _scores(
    buffer: bytes | memoryview | None, dictionary: dict[str, Any], rows: int
) -> npt.NDArray[np.float64] | None:
    """A chunk's per-class probabilities as (rows, classes), or None."""
    if buffer is None:
        return None
    width = len(dictionary.get("score_classes") or ())
    return np.frombuffer(buffer, dtype=FLOAT).reshape(width, rows).T


def from_us(micros: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)


@dataclass(slots=True)
class DecodedChunk:
    timestamps_us: npt.NDArray[np.int64]
    num_values: npt.NDArray[np.float64]  # (rows, numerical features stored in this chunk)
    cat_codes: npt.NDArray[np.int32]  # (rows, categorical features stored in this chunk)
    categories: list[list[str]]
    prediction_values: npt.NDArray[np.float64]
    class_codes: npt.NDArray[np.int32]
    classes: list[str]
    embeddings: dict[str, Float32Matrix] = field(default_factory=dict)
    prediction_scores: npt.NDArray[np.float64] | None = None  # (rows, score classes)
    score_classes: list[str] | None = None


def decode(
    *,
    rows: int,
    timestamps: bytes,
    num_values: bytes | memoryview,
    num_width: int,
    cat_codes: bytes,
    cat_width: int,
    prediction_values: bytes,
    prediction_classes: bytes,
    dictionary: dict[str, Any],
    emb_values: bytes | memoryview | None = None,
    prediction_scores: bytes | memoryview | None = None,
) -> DecodedChunk:
    return DecodedChunk(
        timestamps_us=np.frombuffer(timestamps, dtype=INT64),
        num_values=np.frombuffer(num_values, dtype=FLOAT).reshape(num_width, rows).T,
        cat_codes=np.frombuffer(cat_codes, dtype=CODE).reshape(cat_width, rows).T,
        categories=dictionary["features"],
        prediction_values=np.frombuffer(prediction_values, dtype=FLOAT),
        class_codes=np.frombuffer(prediction_classes, dtype=CODE),
        classes=dictionary["classes"],
        embeddings=_embedding_matrices(emb_values, dictionary, rows),
        prediction_scores=_scores(prediction_scores, dictionary, rows),
        score_classes=dictionary.get("score_classes"),
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
    # Where each stored chunk's rows landed (read from the database only): chunk id, its
    # first row in the window, and the chunk rows kept (None: all of them, in order). What
    # joins a prediction row (chunk_id, chunk_row) to its features, e.g. a label's segment.
    chunk_spans: list[tuple[int, int, npt.NDArray[np.int64] | None]] | None = None
    # embedding features read (CONTRACT section 11): (rows, dimensions) float32, NaN = missing
    embeddings: dict[str, Float32Matrix] = field(default_factory=dict)
    # a multiclass model's per-class probabilities, (rows, score_classes), NaN on rows that
    # have none; None when no row has them
    prediction_scores: npt.NDArray[np.float64] | None = None
    score_classes: list[str] | None = None

    def __len__(self) -> int:
        return len(self.timestamps_us)

    def rows_at(
        self, chunk_ids: npt.NDArray[np.int64], chunk_rows: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.int64]:
        """The window row of each (chunk id, row in that chunk); -1 where it is not in the
        window (or the window was not read with its chunk spans)."""
        out = np.full(len(chunk_ids), -1, dtype=np.int64)
        for chunk_id, first, kept in self.chunk_spans or []:
            mine = np.flatnonzero(chunk_ids == chunk_id)
            if not mine.size:
                continue
            rows = chunk_rows[mine]
            if kept is None:
                out[mine] = first + rows
                continue
            at = np.searchsorted(kept, rows)
            found = (at < len(kept)) & (kept[np.minimum(at, len(kept) - 1)] == rows)
            out[mine[found]] = first + at[found]
        return out

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


class WindowBuilder:
    """Chunks copied one by one into arrays allocated once for the whole window, so reading a
    window costs one copy of it (and one chunk in flight), not a list of parts concatenated."""

    def __init__(
        self, capacity: int, *, num_width: int, cat_width: int,
        embeddings: Sequence[tuple[str, int]] = (),
    ) -> None:  # fmt: skip
        self.num_width, self.cat_width = num_width, cat_width
        self.embeddings = {
            name: np.empty((capacity, dimensions), dtype=FLOAT32) for name, dimensions in embeddings
        }
        self.timestamps = np.empty(capacity, dtype=INT64)
        # Not pre-filled: every row is written by ``add`` (filling 200 MB with NaN up front
        # cost a third of reading a 1M-row window).
        self.num_values = np.empty((capacity, num_width), order="F")
        self.cat_codes = np.empty((capacity, cat_width), dtype=CODE, order="F")
        self.prediction_values = np.empty(capacity)
        self.class_codes = np.empty(capacity, dtype=CODE)
        self.categories: list[dict[str, int]] = [{} for _ in range(cat_width)]
        self.classes: dict[str, int] = {}
        self.rows = 0
        self.spans: list[tuple[int, int, npt.NDArray[np.int64] | None]] = []
        self.capacity = capacity
        # per-class probabilities: allocated at the first chunk that has them, whose classes
        # they follow (a model's classes do not change; a chunk naming others has none here)
        self.scores: npt.NDArray[np.float64] | None = None
        self.score_classes: list[str] | None = None

    def add(
        self, chunk: DecodedChunk, *, start_us: int, end_us: int, chunk_id: int | None = None
    ) -> None:
        """Rows of the chunk inside [start, end); an older chunk stored before features were
        added leaves them missing. ``chunk_id``: its id, to find its rows again."""
        inside = (chunk.timestamps_us >= start_us) & (chunk.timestamps_us < end_us)
        count = int(np.count_nonzero(inside))
        if count == 0:
            return
        whole = count == len(inside)
        if chunk_id is not None:
            kept = None if whole else np.flatnonzero(inside).astype(np.int64)
            self.spans.append((chunk_id, self.rows, kept))
        rows = slice(self.rows, self.rows + count)

        def pick(values: npt.NDArray[Any]) -> npt.NDArray[Any]:
            return values if whole else values[inside]

        self.timestamps[rows] = pick(chunk.timestamps_us)
        width = min(self.num_width, chunk.num_values.shape[1])
        self.num_values[rows, :width] = pick(chunk.num_values[:, :width])
        self.num_values[rows, width:] = np.nan  # features added after this chunk was stored
        cat_width = min(self.cat_width, chunk.cat_codes.shape[1])
        self.cat_codes[rows, cat_width:] = -1
        for position in range(cat_width):
            self.cat_codes[rows, position] = _remap(
                pick(chunk.cat_codes[:, position]), chunk.categories[position],
                self.categories[position],
            )  # fmt: skip
        for name, matrix in self.embeddings.items():
            given = chunk.embeddings.get(name)
            if given is None or given.shape[1] != matrix.shape[1]:
                matrix[rows] = np.nan  # a chunk stored before the feature was added
            else:
                matrix[rows] = pick(given)
        self.prediction_values[rows] = pick(chunk.prediction_values)
        self.class_codes[rows] = _remap(pick(chunk.class_codes), chunk.classes, self.classes)
        self._add_scores(chunk, rows, pick)
        self.rows += count

    def _add_scores(
        self, chunk: DecodedChunk, rows: slice, pick: Callable[[npt.NDArray[Any]], npt.NDArray[Any]]
    ) -> None:
        if chunk.prediction_scores is not None and self.scores is None:
            self.score_classes = list(chunk.score_classes or ())
            self.scores = np.full((self.capacity, len(self.score_classes)), np.nan)
        if self.scores is None:
            return
        if chunk.prediction_scores is not None and chunk.score_classes == self.score_classes:
            self.scores[rows] = pick(chunk.prediction_scores)
        else:
            self.scores[rows] = np.nan

    def finish(self) -> WindowColumns:
        rows = slice(0, self.rows)
        return WindowColumns(
            timestamps_us=self.timestamps[rows],
            num_values=self.num_values[rows],
            cat_codes=self.cat_codes[rows],
            categories=[list(categories) for categories in self.categories],
            prediction_values=self.prediction_values[rows],
            class_codes=self.class_codes[rows],
            classes=list(self.classes),
            chunk_spans=self.spans or None,
            embeddings={name: matrix[rows] for name, matrix in self.embeddings.items()},
            prediction_scores=None if self.scores is None else self.scores[rows],
            score_classes=self.score_classes,
        )


def merge(
    decoded: list[DecodedChunk], *, num_width: int, cat_width: int, start_us: int, end_us: int,
    embeddings: Sequence[tuple[str, int]] = (),
) -> WindowColumns:  # fmt: skip
    """Concatenate chunks, keeping rows inside [start, end)."""
    builder = WindowBuilder(
        sum(len(c.timestamps_us) for c in decoded), num_width=num_width, cat_width=cat_width,
        embeddings=embeddings,
    )  # fmt: skip
    for chunk in decoded:
        builder.add(chunk, start_us=start_us, end_us=end_us)
    return builder.finish()


def window_of(columns: PredictionColumns) -> WindowColumns:
    """Validated columns in the form a window is read back in (for baselines from records)."""
    embeddings = [
        (name, int(matrix.shape[1]))
        for name, matrix in zip(columns.emb_names, columns.emb_values, strict=True)
    ]
    if len(columns) == 0:
        return merge([], num_width=columns.num_values.shape[1],
                     cat_width=len(columns.cat_values), start_us=0, end_us=0,
                     embeddings=embeddings)  # fmt: skip
    encoded = encode(columns)
    decoded = decode(
        rows=encoded.rows, timestamps=encoded.timestamps, num_values=encoded.num_values,
        num_width=encoded.num_width, cat_codes=encoded.cat_codes, cat_width=encoded.cat_width,
        prediction_values=encoded.prediction_values,
        prediction_classes=encoded.prediction_classes, dictionary=encoded.dictionary,
        emb_values=encoded.emb_values,
        prediction_scores=encoded.prediction_scores,
    )  # fmt: skip
    return merge(
        [decoded], num_width=encoded.num_width, cat_width=encoded.cat_width,
        start_us=encoded.ts_min_us, end_us=encoded.ts_max_us + 1, embeddings=embeddings,
    )  # fmt: skip
