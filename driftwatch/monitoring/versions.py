"""The window split by model version (CONTRACT section 10): each served version's rows,
accuracy and prediction drift, so that a rollout is visible. Pure.

Only a window that holds two versions or more is read again (its versions, values and classes
of the narrow prediction rows); a window of one version is that version: its slice repeats the
run's own prediction drift and accuracy."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from driftwatch.core.result import ColumnDrift, RunResult, VersionSlice
from driftwatch.core.settings import DriftSettings
from driftwatch.monitoring import accuracy, compute
from driftwatch.monitoring.profiles import BaselineProfile

MAX_VERSIONS = 20  # served versions a run describes (the largest); the rest are counted


def _prediction(
    baseline: BaselineProfile, values: Sequence[float | None], classes: Sequence[str | None],
    settings: DriftSettings,
) -> ColumnDrift | None:  # fmt: skip
    column = baseline.prediction
    if column is None or not values:
        return None
    if column.kind == "numerical":
        numbers = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
        if not np.isfinite(numbers).any():
            return None
        return compute.column_drift(column, numbers, None, "numerical", settings)
    names = sorted({c for c in classes if c is not None})
    if not names:
        return None
    code = {name: i for i, name in enumerate(names)}
    codes = np.array([code.get(c, -1) if c is not None else -1 for c in classes], dtype=np.int32)
    return compute.column_drift(column, codes, names, "categorical", settings)


def slices(
    result: RunResult, *, task: str, counts: dict[str | None, int], labeled: accuracy.Labeled,
    baseline: BaselineProfile, settings: DriftSettings,
    predictions: tuple[list[str | None], list[float | None], list[str | None]] | None,
) -> list[VersionSlice]:  # fmt: skip
    """The served versions of the window, largest first (at most ``MAX_VERSIONS``).
    ``predictions``: every row's version, value and class, when ``counts`` has several."""
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0] or ""))[:MAX_VERSIONS]
    if len(ordered) == 1:
        version, rows = ordered[0]
        return [VersionSlice(model_version=version, rows=rows, labeled_rows=result.labeled_rows,
                             accuracy=result.accuracy, prediction=result.prediction)]  # fmt: skip
    assert predictions is not None
    versions, values, classes = predictions
    rows_of: dict[str | None, list[int]] = {}
    for index, version in enumerate(versions):  # one pass over the window's rows
        rows_of.setdefault(version, []).append(index)
    out = []
    for version, rows in ordered:
        keep = rows_of.get(version, [])
        own = labeled.of_version(version)
        out.append(VersionSlice(
            model_version=version, rows=rows, labeled_rows=len(own),
            accuracy=accuracy.compute(task, own) if len(own) else None,
            prediction=_prediction(baseline, [values[i] for i in keep],
                                   [classes[i] for i in keep], settings),
        ))  # fmt: skip
    return out
