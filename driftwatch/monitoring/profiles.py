"""Baseline profiles: a baseline prepared once, when it is stored, so that runs never redo it.

Per numerical column the finite values, sorted (what exact tests such as KS and Wasserstein
need, and from which bins and ranges follow); per categorical column the count of each
category. Pure: no database.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from driftwatch.core.specs import FeatureSpec
from driftwatch.storage.chunks import WindowColumns

FLOAT = np.dtype("<f8")
COUNT = np.dtype("<i8")


@dataclass(slots=True)
class ColumnProfile:
    name: str | None  # None: the prediction
    kind: str  # "numerical" or "categorical"
    rows: int
    missing: int
    sorted_values: npt.NDArray[np.float64] | None = None
    categories: list[str] | None = None
    counts: npt.NDArray[np.int64] | None = None

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.sorted_values, self.counts) if a is not None)


@dataclass(slots=True)
class BaselineProfile:
    rows: int
    features: list[ColumnProfile]  # in the model's feature order
    prediction: ColumnProfile | None

    @property
    def nbytes(self) -> int:
        columns = [*self.features, *([self.prediction] if self.prediction else [])]
        return sum(c.nbytes for c in columns)


def numerical(name: str | None, values: npt.NDArray[np.float64]) -> ColumnProfile:
    finite = values[np.isfinite(values)]
    return ColumnProfile(
        name, "numerical", rows=len(values), missing=len(values) - len(finite),
        sorted_values=np.sort(finite).astype(FLOAT),
    )  # fmt: skip


def categorical(name: str | None, codes: npt.NDArray[np.int32], names: list[str]) -> ColumnProfile:
    present = codes[codes >= 0]
    counts = np.bincount(present, minlength=len(names)).astype(COUNT)
    seen = np.flatnonzero(counts)
    return ColumnProfile(
        name, "categorical", rows=len(codes), missing=len(codes) - len(present),
        categories=[names[i] for i in seen], counts=counts[seen],
    )  # fmt: skip


def prediction_kind(window: WindowColumns) -> str | None:
    """Numeric predictions (scores, probabilities, values) are numerical, class names
    categorical; None when the window has no predictions at all."""
    classes = int(np.count_nonzero(window.class_codes >= 0))
    numbers = int(np.count_nonzero(np.isfinite(window.prediction_values)))
    if classes == numbers == 0:
        return None
    return "categorical" if classes > numbers else "numerical"


def prediction_profile(window: WindowColumns, kind: str | None) -> ColumnProfile | None:
    if kind == "numerical":
        return numerical(None, window.prediction_values)
    if kind == "categorical":
        return categorical(None, window.class_codes, window.classes)
    return None


def profile(window: WindowColumns, features: list[FeatureSpec]) -> BaselineProfile:
    columns: list[ColumnProfile] = []
    num_position = cat_position = 0
    for feature in features:
        if feature.kind == "numerical":
            columns.append(numerical(feature.name, window.num_values[:, num_position]))
            num_position += 1
        else:
            columns.append(
                categorical(
                    feature.name, window.cat_codes[:, cat_position],
                    window.categories[cat_position],
                )
            )  # fmt: skip
            cat_position += 1
    return BaselineProfile(
        rows=len(window),
        features=columns,
        prediction=prediction_profile(window, prediction_kind(window)),
    )
