"""Baseline files (CSV or Parquet) read into raw columns, with errors that name the line."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from driftwatch.errors import InvalidPayload, PayloadTooLarge
from driftwatch.ingest.validation import RawColumns
from driftwatch.monitoring.columns import ColumnUse

PARQUET_MAGIC = b"PAR1"


def _column(frame: pd.DataFrame, name: str, numerical: bool = False) -> list[Any]:
    series = frame[name]
    if isinstance(series.dtype, pd.CategoricalDtype):  # a Parquet text column (see read_table)
        series = series.astype(object)
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


def _vector(value: Any) -> Any:
    """A CSV cell of an embedding feature: a JSON array of numbers (a cell that is not JSON
    stays text, and validation rejects its line); a Parquet list cell is an array already."""
    if isinstance(value, str):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
    return value


def _embedding_column(frame: pd.DataFrame, name: str) -> list[Any]:
    return [_vector(v) for v in _column(frame, name)]


def frame_to_raw(
    frame: pd.DataFrame, use: ColumnUse, numerical: frozenset[str] = frozenset(),
    embeddings: frozenset[str] = frozenset(),
) -> RawColumns:  # fmt: skip
    """The columns of a table that ``use`` chose: its features, prediction and label.
    ``embeddings``: features whose cells are arrays (CONTRACT section 11): in a CSV file a
    JSON array of numbers per cell, in a Parquet file a list column."""
    columns = [str(c) for c in frame.columns]
    count = len(frame)
    missing = [None] * count
    return RawColumns(
        count=count,
        prediction_id=missing,
        timestamp=missing,
        prediction=_column(frame, use.prediction, True) if use.prediction else missing,
        model_version=missing,
        features={
            name: _embedding_column(frame, name)
            if name in embeddings
            else _column(frame, name, name in numerical)
            for name in use.features
        },
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


@dataclass(frozen=True, slots=True)
class TableLimits:
    """How large a baseline file may be once decoded (``DRIFTWATCH_MAX_BASELINE_CELLS`` and
    ``DRIFTWATCH_MAX_BASELINE_DECODED_BYTES``): a compressed file can expand a thousandfold."""

    cells: int
    decoded_bytes: int


def read_table(handle: IO[bytes], filename: str | None, limits: TableLimits | None = None) -> Table:
    head = handle.read(4)
    handle.seek(0)
    if not head:
        raise InvalidPayload(EMPTY_FILE)
    is_parquet = head == PARQUET_MAGIC or (filename or "").lower().endswith(".parquet")
    try:
        if is_parquet:
            return Table(_read_parquet(io.BytesIO(handle.read()), limits), "Parquet", parquet_row)
        return Table(_read_csv(handle, limits), "CSV", csv_line)
    except (ValueError, pd.errors.ParserError, OSError, pa.ArrowException) as error:
        kind = "Parquet" if is_parquet else "CSV"
        raise InvalidPayload(f"file: not a readable {kind} file ({error})") from None


def _read_parquet(data: io.BytesIO, limits: TableLimits | None) -> pd.DataFrame:
    """The file's table, its size checked from its metadata before anything is decoded."""
    parquet = pq.ParquetFile(data)
    meta = parquet.metadata
    if limits is not None:
        groups, columns = range(meta.num_row_groups), range(meta.num_columns)
        values = sum(meta.row_group(g).column(c).num_values for g in groups for c in columns)
        cells = max(meta.num_rows * meta.num_columns, values)
        if cells > limits.cells:
            raise PayloadTooLarge(
                f"file: the Parquet file holds {meta.num_rows:,} rows x {meta.num_columns} "
                f"columns ({cells:,} values); the limit is {limits.cells:,} "
                "(DRIFTWATCH_MAX_BASELINE_CELLS)"
            )
        decoded = sum(meta.row_group(g).total_byte_size for g in range(meta.num_row_groups))
        if decoded > limits.decoded_bytes:
            raise PayloadTooLarge(
                f"file: the Parquet file decodes to {decoded:,} bytes; the limit is "
                f"{limits.decoded_bytes:,} (DRIFTWATCH_MAX_BASELINE_DECODED_BYTES)"
            )
    # Text columns stay dictionary-encoded (pandas categories): a short dictionary repeated
    # over many rows is not expanded into a copy of its text per row.
    text = [field.name for field in parquet.schema_arrow
            if pa.types.is_string(field.type) or pa.types.is_large_string(field.type)]  # fmt: skip
    data.seek(0)
    frame: pd.DataFrame = pq.read_table(data, read_dictionary=text).to_pandas()
    return frame


def _read_csv(handle: IO[bytes], limits: TableLimits | None) -> pd.DataFrame:
    """The file's table; with ``limits``, at most as many rows as its columns leave room for."""
    if limits is None:
        return pd.read_csv(handle)
    columns = len(pd.read_csv(handle, nrows=0).columns)
    handle.seek(0)
    rows = max(limits.cells // max(columns, 1), 1)
    frame = pd.read_csv(handle, nrows=rows + 1)
    if len(frame) > rows:
        raise PayloadTooLarge(
            f"file: the CSV file has more than {rows:,} rows of {columns} columns; the limit is "
            f"{limits.cells:,} values (DRIFTWATCH_MAX_BASELINE_CELLS)"
        )
    return frame


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
