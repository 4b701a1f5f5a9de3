"""Baseline profiles: a baseline prepared once, when it is stored, so that runs never redo it.

Per numerical column the finite values, sorted (what exact tests such as KS and Wasserstein
need, and from which bins and ranges follow); per categorical column the count of each
category. Pure: no database.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from driftwatch.core.specs import EmbeddingSpec, FeatureSpec
from driftwatch.monitoring import multivariate
from driftwatch.monitoring.estimation import LabeledScores
from driftwatch.monitoring.estimation_multiclass import LabeledProbabilities
from driftwatch.monitoring.estimation_regression import LabeledRegression
from driftwatch.stats.summaries import ColumnSummary
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
    # drift.cluster_by: the cluster of each value. Numerical: aligned with ``sorted_values``;
    # categorical: two rows, each present value's category (an index into ``categories``) and
    # its cluster. None: the model had no cluster key when the baseline was made.
    cluster_units: npt.NDArray[np.int64] | None = None
    # A trailing or lag baseline's column known only by its span's merged summary (its
    # values not counted exactly: see ``monitoring.moving``); None for every other column.
    summary: ColumnSummary | None = None

    @property
    def nbytes(self) -> int:
        arrays = (self.sorted_values, self.counts, self.cluster_units)
        return sum(a.nbytes for a in arrays if a is not None)


# Vectors of an embedding baseline kept (a uniform sample): the most any method reads a side.
EMBEDDING_SAMPLE_ROWS = 5_000
EMBEDDING_SEED = 1811


@dataclass(slots=True)
class EmbeddingProfile:
    """An embedding feature of a baseline (CONTRACT section 11): a uniform sample of its
    present vectors (float32, at most ``EMBEDDING_SAMPLE_ROWS``), and the mean of all of them
    (what ``distance`` compares the window's mean with)."""

    name: str
    rows: int  # values, missing ones included
    missing: int
    sample: npt.NDArray[np.float32]
    mean: npt.NDArray[np.float64]

    @property
    def dimensions(self) -> int:
        return int(self.mean.shape[0])

    @property
    def present(self) -> int:
        return self.rows - self.missing

    @property
    def nbytes(self) -> int:
        return int(self.sample.nbytes + self.mean.nbytes)


def present_vectors(matrix: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """The rows that hold a vector (a missing value is a row of NaN)."""
    kept: npt.NDArray[np.float32] = matrix[~np.isnan(matrix).any(axis=1)]
    return kept


def embedding_profile(
    name: str, dimensions: int, matrix: npt.NDArray[np.float32] | None
) -> EmbeddingProfile:
    """A baseline's embedding column (``matrix`` None: the data lacks the feature)."""
    if matrix is None:
        matrix = np.empty((0, dimensions), dtype=np.float32)
    present = present_vectors(matrix)
    rng = np.random.default_rng([EMBEDDING_SEED, len(present)])
    sample = present
    if len(present) > EMBEDDING_SAMPLE_ROWS:
        chosen = np.sort(rng.choice(len(present), EMBEDDING_SAMPLE_ROWS, replace=False))
        sample = present[chosen]
    mean = (present.mean(axis=0, dtype=np.float64) if len(present)
            else np.full(dimensions, np.nan))  # fmt: skip
    return EmbeddingProfile(
        name, rows=len(matrix), missing=len(matrix) - len(present),
        sample=np.ascontiguousarray(sample, dtype=np.float32), mean=mean,
    )  # fmt: skip


@dataclass(slots=True)
class BaselineProfile:
    rows: int
    features: list[ColumnProfile]  # in the model's feature order
    prediction: ColumnProfile | None
    # binary classification: the labeled (score, label) pairs performance estimates read
    # (CONTRACT section 9); multiclass: the labeled rows' per-class probabilities; regression:
    # the labeled rows' features, predictions and labels; None for baselines made before
    labeled: LabeledScores | LabeledProbabilities | LabeledRegression | None = None
    embeddings: list[EmbeddingProfile] = field(default_factory=list)  # CONTRACT section 11
    # CONTRACT section 11: a sample of its rows, row by row, for the multivariate detectors;
    # None with fewer than two features to compare, and for baselines made before
    joint: multivariate.JointProfile | None = None

    @property
    def nbytes(self) -> int:
        columns = [*self.features, *([self.prediction] if self.prediction else [])]
        return (
            sum(c.nbytes for c in columns)
            + (self.labeled.nbytes if self.labeled else 0)
            + sum(e.nbytes for e in self.embeddings)
            + (self.joint.nbytes if self.joint else 0)
        )

    def categories(self) -> dict[str, list[str]]:
        """Each categorical feature's categories (what the joint profile's codes index)."""
        return {c.name: c.categories for c in self.features
                if c.name is not None and c.categories is not None}  # fmt: skip

    def category_counts(self) -> dict[str, npt.NDArray[np.int64]]:
        return {c.name: c.counts for c in self.features
                if c.name is not None and c.counts is not None}  # fmt: skip


def numerical(
    name: str | None, values: npt.NDArray[np.float64], units: npt.NDArray[np.int64] | None = None
) -> ColumnProfile:
    finite = np.isfinite(values)
    present = values[finite]
    order = np.argsort(present, kind="stable") if units is not None else None
    return ColumnProfile(
        name, "numerical", rows=len(values), missing=len(values) - len(present),
        sorted_values=(np.sort(present) if order is None else present[order]).astype(FLOAT),
        cluster_units=None if units is None or order is None else units[finite][order],
    )  # fmt: skip


def categorical(
    name: str | None, codes: npt.NDArray[np.int32], names: list[str],
    units: npt.NDArray[np.int64] | None = None,
) -> ColumnProfile:  # fmt: skip
    present = codes[codes >= 0]
    counts = np.bincount(present, minlength=len(names)).astype(COUNT)
    seen = np.flatnonzero(counts)
    clustered = None
    if units is not None:
        position = np.full(len(names), -1, dtype=np.int64)
        position[seen] = np.arange(seen.size)
        clustered = np.stack((position[present], units[codes >= 0])).astype(np.int64)
    return ColumnProfile(
        name, "categorical", rows=len(codes), missing=len(codes) - len(present),
        categories=[names[i] for i in seen], counts=counts[seen], cluster_units=clustered,
    )  # fmt: skip


def cluster_units(
    window: WindowColumns, features: list[FeatureSpec], cluster_by: str | None
) -> npt.NDArray[np.int64] | None:
    """The cluster of each row of ``window`` (drift.cluster_by names the feature holding it):
    rows with the same key share a number; a row without one is a cluster of its own. None
    without a key, or when the window lacks the feature."""
    if cluster_by is None:
        return None
    num_position = cat_position = 0
    for feature in features:
        if feature.name == cluster_by:
            if feature.kind == "numerical":
                return _units(window.num_values[:, num_position], np.isfinite)
            return _units(window.cat_codes[:, cat_position].astype(np.int64), lambda c: c >= 0)
        if feature.kind == "numerical":
            num_position += 1
        else:
            cat_position += 1
    return None


def _units(keys: npt.NDArray[Any], present: Any) -> npt.NDArray[np.int64]:
    has_key = present(keys)
    units = np.empty(len(keys), dtype=np.int64)
    _, inverse = np.unique(keys[has_key], return_inverse=True)
    units[has_key] = inverse
    start = int(inverse.max()) + 1 if inverse.size else 0
    units[~has_key] = np.arange(start, start + int(np.count_nonzero(~has_key)))
    return units


def prediction_kind(window: WindowColumns) -> str | None:
    """Numeric predictions (scores, probabilities, values) are numerical, class names
    categorical; None when the window has no predictions at all."""
    classes = int(np.count_nonzero(window.class_codes >= 0))
    numbers = int(np.count_nonzero(np.isfinite(window.prediction_values)))
    if classes == numbers == 0:
        return None
    return "categorical" if classes > numbers else "numerical"


def prediction_profile(
    window: WindowColumns, kind: str | None, units: npt.NDArray[np.int64] | None = None
) -> ColumnProfile | None:
    if kind == "numerical":
        return numerical(None, window.prediction_values, units)
    if kind == "categorical":
        return categorical(None, window.class_codes, window.classes, units)
    return None


def profile(
    window: WindowColumns, features: list[FeatureSpec], cluster_by: str | None = None,
    embeddings: Sequence[EmbeddingSpec] = (),
) -> BaselineProfile:  # fmt: skip
    """The baseline's profile; with ``cluster_by`` (drift.cluster_by) each value also keeps
    its cluster, for the calibrated verdict's cluster permutation null. ``embeddings``: the
    model's embedding features the data holds."""
    units = cluster_units(window, features, cluster_by)
    columns: list[ColumnProfile] = []
    num_position = cat_position = 0
    for feature in features:
        own = None if feature.name == cluster_by else units  # the key itself is not tested
        if feature.kind == "numerical":
            columns.append(numerical(feature.name, window.num_values[:, num_position], own))
            num_position += 1
        else:
            columns.append(
                categorical(
                    feature.name, window.cat_codes[:, cat_position],
                    window.categories[cat_position], own,
                )
            )  # fmt: skip
            cat_position += 1
    made = BaselineProfile(
        rows=len(window),
        features=columns,
        prediction=prediction_profile(window, prediction_kind(window), units),
        embeddings=[
            embedding_profile(e.name, e.dimensions, window.embeddings.get(e.name))
            for e in embeddings
        ],
    )
    made.joint = multivariate.joint_profile(
        window, features, cluster_by, made.categories(), made.category_counts()
    )
    return made
