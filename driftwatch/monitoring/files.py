"""Baseline files (CSV or Parquet) read into raw columns, with errors that name the line."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import pandas as pd

from driftwatch.errors import InvalidPayload
from driftwatch.ingest.validation import RawColumns

RESERVED = ("prediction", "label", "prediction_id", "timestamp", "model_version")
PARQUET_MAGIC = b"PAR1"


def _column(frame: pd.DataFrame, name: str, numerical: bool = False) -> list[Any]:
    series = frame[name]
    # Missing cells are None whatever the column's dtype (NaN in an object column is text "nan"
    # to anything that reads it as a category).
    values: list[Any] = series.astype(object).where(series.notna(), None).tolist()
    if numerical and series.dtype == object:
        # One bad cell makes pandas read the whole column as text: the numbers in it are numbers
        # still, so that only the bad cell is reported (with its line).
        values = [_number(v) for v in values]
    return values


def _number(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def frame_to_raw(
    frame: pd.DataFrame, feature_names: list[str] | None, numerical: frozenset[str] = frozenset()
) -> RawColumns:
    """A table of baseline rows: a column per feature, optional ``prediction``/``label``.

    With known features, other columns are ignored and a missing one is an error; without,
    every column but the reserved ones is a feature.
    """
    columns = [str(c) for c in frame.columns]
    frame.columns = columns
    if feature_names:
        absent = [name for name in feature_names if name not in columns]
        if absent:
            raise InvalidPayload(
                f"the file has no column {absent[0]!r} (the model's features: "
                f"{', '.join(feature_names)})"
            )
        names = feature_names
    else:
        names = [c for c in columns if c not in RESERVED]
    count = len(frame)
    missing = [None] * count
    raw = RawColumns(
        count=count,
        prediction_id=missing,
        timestamp=missing,
        prediction=_column(frame, "prediction", True) if "prediction" in columns else missing,
        model_version=missing,
        features={name: _column(frame, name, name in numerical) for name in names},
        record=lambda i: dict(zip(columns, frame.iloc[i].tolist(), strict=True)),
        label=_column(frame, "label") if "label" in columns else None,
    )
    return raw


def read_table(
    handle: IO[bytes], filename: str | None
) -> tuple[pd.DataFrame, Callable[[int], str]]:
    """The file as a DataFrame, and how its records are named in errors: the line of a CSV
    (record i is on line i + 2, after the header), the row of a Parquet file."""
    head = handle.read(4)
    handle.seek(0)
    is_parquet = head == PARQUET_MAGIC or (filename or "").lower().endswith(".parquet")
    try:
        if is_parquet:
            return pd.read_parquet(io.BytesIO(handle.read())), parquet_row
        return pd.read_csv(handle), csv_line
    except (ValueError, pd.errors.ParserError, OSError) as error:
        kind = "Parquet" if is_parquet else "CSV"
        raise InvalidPayload(f"file: not a readable {kind} file ({error})") from None


def csv_line(index: int) -> str:
    return f"line {index + 2}"


def parquet_row(index: int) -> str:
    return f"row {index}"


def read_in_chunks(path: Path, chunk_rows: int = 100_000) -> Iterator[tuple[pd.DataFrame, float]]:
    """A large CSV a chunk at a time, with the share of the file read so far (for progress)."""
    size = max(path.stat().st_size, 1)
    with path.open("rb") as handle:
        for frame in pd.read_csv(handle, chunksize=chunk_rows):
            yield frame, min(handle.tell() / size, 1.0)
