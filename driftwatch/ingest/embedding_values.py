"""Embedding feature values (CONTRACT section 11): arrays of a fixed number of finite numbers,
checked per record and stored as float32. Pure: no database.

A batch gives an embedding column either as JSON (a list holding, per record, an array of
numbers or null) or, from the SDK, as ``{"f4": base64, "dims": d, "missing": [index, ...]}``:
the records' arrays as one little-endian float32 matrix, row by row (``missing``: the records
that give none). Either way the column becomes a float32 matrix of the batch's records, a row
of NaN where a record gives no value.
"""

from __future__ import annotations

import base64
import binascii
import math
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np
import numpy.typing as npt

Float32Matrix = npt.NDArray[np.float32]
FLOAT32 = np.dtype("<f4")
FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclass(slots=True)
class EmbeddingColumn:
    """An embedding column as the SDK sends it: the matrix (NaN rows where ``missing``)."""

    matrix: Float32Matrix
    missing: list[int]

    def __len__(self) -> int:
        return int(self.matrix.shape[0])

    def value(self, index: int) -> list[float] | None:
        if index in self.missing:
            return None
        return [float(v) for v in self.matrix[index].tolist()]

    def values(self) -> list[list[float] | None]:
        absent = set(self.missing)
        return [None if i in absent else row for i, row in enumerate(self.matrix.tolist())]


def from_body(name: str, values: dict[str, Any], count: int) -> EmbeddingColumn | str:
    """The SDK's ``{"f4", "dims", "missing"}`` column, or what is wrong with it."""
    dims, missing = values.get("dims"), values.get("missing", [])
    if not isinstance(dims, int) or isinstance(dims, bool) or dims < 1:
        return f"columns.features.{name}: 'dims' must be a positive integer"
    if not isinstance(missing, list) or not all(
        isinstance(i, int) and not isinstance(i, bool) and 0 <= i < count for i in missing
    ):
        return f"columns.features.{name}: 'missing' must list record positions"
    try:
        flat = np.frombuffer(base64.b64decode(values["f4"], validate=True), dtype=FLOAT32)
    except (binascii.Error, ValueError, TypeError):
        return f"columns.features.{name}: 'f4' is not base64 float32"
    if flat.size != count * dims:
        return f"columns.features.{name}: expected {count} arrays of {dims} float32 values"
    return EmbeddingColumn(flat.reshape(count, dims), sorted(set(missing)))


def _expected(name: str, dimensions: int) -> str:
    return f"feature {name!r}: expected an array of {dimensions} finite numbers"


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def one_value(name: str, dimensions: int, value: Any) -> npt.NDArray[np.float64] | str:
    """One record's value as float64 (checked: its length, and every entry a finite number
    that float32 holds), or the error naming the feature and the expected length."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if not isinstance(value, list | tuple):
        return f"{_expected(name, dimensions)}, got {_describe(value)}"
    if len(value) != dimensions:
        return f"{_expected(name, dimensions)}, got {len(value)} values"
    for position, entry in enumerate(value):
        if not isinstance(entry, int | float) or isinstance(entry, bool):
            return f"{_expected(name, dimensions)}; entry {position} is {_describe(entry)}"
        if not math.isfinite(entry) or abs(entry) > FLOAT32_MAX:
            return f"{_expected(name, dimensions)}; entry {position} is {entry!r}" + (
                "" if not math.isfinite(entry) else " (beyond float32's range)"
            )
    return np.asarray(value, dtype=np.float64)


def check_column(
    name: str, dimensions: int, values: list[Any] | EmbeddingColumn, errors: dict[int, str]
) -> Float32Matrix:
    """The column as a (records, dimensions) float32 matrix, NaN rows where a record gives no
    value or an invalid one (whose error goes into ``errors``, keyed by record)."""
    if isinstance(values, EmbeddingColumn):
        return _check_matrix(name, dimensions, values, errors)
    count = len(values)
    matrix = np.full((count, dimensions), np.nan, dtype=FLOAT32)
    present = [i for i, v in enumerate(values) if v is not None]
    if not present:
        return matrix
    try:  # the fast path: every present value a list of the right length of plain numbers
        block = np.asarray([values[i] for i in present], dtype=np.float64)
        clean = block.shape == (len(present), dimensions) and bool(
            np.isfinite(block).all() and (np.abs(block) <= FLOAT32_MAX).all()
        )
        # bools and numeric text convert too: only a column of plain numbers takes this path
        # (``map(type, ...)`` over the chained entries runs at C speed)
        clean = clean and set(map(type, chain.from_iterable(values[i] for i in present))) <= {
            int, float,
        }  # fmt: skip
    except (ValueError, TypeError, OverflowError):
        clean = False
    if clean:
        matrix[present] = block.astype(FLOAT32)
        return matrix
    for index in present:
        checked = one_value(name, dimensions, values[index])
        if isinstance(checked, str):
            errors.setdefault(index, checked)
        else:
            matrix[index] = checked.astype(FLOAT32)
    return matrix


def _check_matrix(
    name: str, dimensions: int, column: EmbeddingColumn, errors: dict[int, str]
) -> Float32Matrix:
    matrix = np.array(column.matrix, dtype=FLOAT32)  # a copy: the buffer is read-only
    if matrix.shape[1] != dimensions:
        for index in range(matrix.shape[0]):
            if index not in column.missing:
                errors.setdefault(
                    index, f"{_expected(name, dimensions)}, got {matrix.shape[1]} values"
                )
        return np.full((matrix.shape[0], dimensions), np.nan, dtype=FLOAT32)
    absent = np.zeros(matrix.shape[0], dtype=bool)
    absent[column.missing] = True
    bad = ~np.isfinite(matrix).all(axis=1) & ~absent
    for index in np.flatnonzero(bad).tolist():
        position = int(np.flatnonzero(~np.isfinite(matrix[index]))[0])
        entry = float(matrix[index, position])
        errors.setdefault(index, f"{_expected(name, dimensions)}; entry {position} is {entry!r}")
    matrix[absent | bad] = np.nan
    return matrix
