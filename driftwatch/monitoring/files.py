"""Baseline files (CSV or Parquet) read into raw columns, with errors that name the line."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pandas as pd

from driftwatch.errors import InvalidPayload
from driftwatch.ingest.validation import RawColumns
from driftwatch.monitoring.columns import ColumnUse

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
    frame: pd.DataFrame, use: ColumnUse, numerical: frozenset[str] = frozenset()
) -> RawColumns:
    """The columns of a table that ``use`` chose: its features, prediction and label."""
    columns = [str(c) for c in frame.columns]
    count = len(frame)
    missing = [None] * count
    return RawColumns(
        count=count,
        prediction_id=missing,
        timestamp=missing,
        prediction=_column(frame, use.prediction, True) if use.prediction else missing,
        model_version=missing,
        features={name: _column(frame, name, name in numerical) for name in use.features},
        record=lambda i: dict(zip(columns, frame.iloc[i].tolist(), strict=True)),
        label=_column(frame, use.label) if use.label else None,
    )


@dataclass(frozen=True, slots=True)
class Table:
    """A baseline file read, and how its records are named in errors: the line of a CSV
    (record i is on line i + 2, after the header), the row of a Parquet file."""

    frame: pd.DataFrame
    kind: str  # "CSV" or "Parquet"
    where: Callable[[int], str]


EMPTY_FILE = "file: empty (a CSV needs a header line, then a line per record)"


def read_table(handle: IO[bytes], filename: str | None) -> Table:
    head = handle.read(4)
    handle.seek(0)
    if not head:
        raise InvalidPayload(EMPTY_FILE)
    is_parquet = head == PARQUET_MAGIC or (filename or "").lower().endswith(".parquet")
    try:
        if is_parquet:
            return Table(pd.read_parquet(io.BytesIO(handle.read())), "Parquet", parquet_row)
        return Table(pd.read_csv(handle), "CSV", csv_line)
    except (ValueError, pd.errors.ParserError, OSError) as error:
        kind = "Parquet" if is_parquet else "CSV"
        raise InvalidPayload(f"file: not a readable {kind} file ({error})") from None


def csv_line(index: int) -> str:
    return f"line {index + 2}"


def parquet_row(index: int) -> str:
    return f"row {index}"


def read_in_chunks(path: Path, chunk_rows: int = 100_000) -> Iterator[tuple[pd.DataFrame, float]]:
    """A large CSV a chunk at a time, with the share of the file read so far (for progress)."""
    size = path.stat().st_size
    if size == 0:
        raise InvalidPayload(EMPTY_FILE)
    with path.open("rb") as handle:
        try:
            for frame in pd.read_csv(handle, chunksize=chunk_rows):
                yield frame, min(handle.tell() / size, 1.0)
        except ValueError as error:  # pandas' ParserError among them
            raise InvalidPayload(f"file: not a readable CSV file ({error})") from None
