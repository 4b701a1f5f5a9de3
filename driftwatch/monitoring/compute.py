"""One monitoring window against a baseline: drift per feature and of the prediction, data
quality and accuracy. Pure: the caller reads the window and the baseline, and stores the result.

Each column costs one test on arrays already in memory: the baseline's sorted values or counts
(prepared once) against the window's values, sorted once here. No DataFrame is built.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from driftwatch.ingest.chunks import WindowColumns
from driftwatch.ingest.validation import FeatureSpec
from driftwatch.monitoring import accuracy
from driftwatch.monitoring.profiles import BaselineProfile, ColumnProfile, prediction_kind
from driftwatch.stats import registry
from driftwatch.stats.samples import CategoricalPair, NumericalPair, Pair


@dataclass(frozen=True, slots=True)
class DriftSettings:
    num_stattest: str | None = None
    cat_stattest: str | None = None
    per_feature: dict[str, dict[str, Any]] | None = None
    drift_share: float = 0.5

    @classmethod
    def from_model(cls, drift: dict[str, Any] | None) -> DriftSettings:
        drift = drift or {}
        return cls(
            num_stattest=drift.get("num_stattest"),
            cat_stattest=drift.get("cat_stattest"),
            per_feature=drift.get("per_feature") or {},
            drift_share=float(drift.get("drift_share") or 0.5),
        )

    def choice(self, name: str | None, kind: str) -> tuple[str | None, float | None]:
        """The test and threshold set for a column: per feature, else per kind, else None
        (Evidently's default rule decides)."""
        own = (self.per_feature or {}).get(name or "", {}) if name is not None else {}
        default = self.num_stattest if kind == "numerical" else self.cat_stattest
        return own.get("stattest") or default, own.get("threshold")


def _pair(
    baseline: ColumnProfile, values: npt.NDArray[Any], names: list[str] | None
) -> tuple[Pair, int]:
    """The test input for one column, and how many of the window's values are missing."""
    if baseline.kind == "numerical":
        current = np.asarray(values, dtype=np.float64)
        finite = np.sort(current[np.isfinite(current)])
        missing = len(current) - len(finite)
        assert baseline.sorted_values is not None
        reference = baseline.sorted_values
        numerical = NumericalPair(
            reference, finite, integer_dtype=_integer_column(baseline, reference, finite, missing)
        )
        return numerical, missing
    codes = np.asarray(values)
    present = codes[codes >= 0]
    current_counts = np.bincount(present, minlength=len(names or []))
    assert baseline.categories is not None
    assert baseline.counts is not None
    index = {name: i for i, name in enumerate(baseline.categories)}
    categories = list(baseline.categories)
    reference_counts: list[int] = baseline.counts.tolist()
    counts: list[int] = [0] * len(categories)
    for code in np.flatnonzero(current_counts).tolist():
        name = (names or [])[code]
        position = index.get(name)
        if position is None:  # a category the baseline never saw
            position = index[name] = len(categories)
            categories.append(name)
            reference_counts.append(0)
            counts.append(0)
        counts[position] = int(current_counts[code])
    pair = CategoricalPair(
        reference_counts=np.asarray(reference_counts, dtype=np.int64),
        current_counts=np.asarray(counts, dtype=np.int64),
        categories=categories,
    )
    return pair, len(codes) - len(present)


def _integer_column(
    baseline: ColumnProfile,
    reference: npt.NDArray[np.float64],
    current: npt.NDArray[np.float64],
    current_missing: int,
) -> bool:
    """Whether pandas would have given this column an integer dtype, as Evidently's binning
    depends on it: whole numbers only, and no missing value on either side (a pandas integer
    column with a missing value is float64)."""
    if baseline.missing or current_missing:
        return False
    return bool(np.all(np.floor(reference) == reference) and np.all(np.floor(current) == current))


def _test(pair: Pair, kind: str, stattest: str | None, threshold: float | None) -> dict[str, Any]:
    empty = (
        len(pair.current) == 0
        if isinstance(pair, NumericalPair)
        else int(pair.current_counts.sum()) == 0
    )
    if empty:  # nothing to compare: no score, and no verdict either way
        chosen = registry.get(stattest) if stattest else None
        return {
            "stattest": chosen.name if chosen else None,
            "score": None,
            "threshold": threshold
            if threshold is not None
            else (chosen.default_threshold if chosen else None),
            "drifted": None,
        }
    result = registry.evaluate(pair, kind=kind, stattest=stattest, threshold=threshold)
    return {
        "stattest": result.stattest,
        "score": float(result.score),
        "threshold": float(result.threshold),
        "drifted": bool(result.drifted),
    }


def _feature_values(
    window: WindowColumns, features: list[FeatureSpec]
) -> list[tuple[npt.NDArray[Any], list[str] | None]]:
    out: list[tuple[npt.NDArray[Any], list[str] | None]] = []
    num_position = cat_position = 0
    for feature in features:
        if feature.kind == "numerical":
            out.append((window.num_values[:, num_position], None))
            num_position += 1
        else:
            out.append((window.cat_codes[:, cat_position], window.categories[cat_position]))
            cat_position += 1
    return out


def _quality_of(pair: Pair) -> tuple[list[str], int]:
    """Categories the baseline never saw, and numbers outside the baseline's range, read off
    the test input (sorted values, aligned counts) at no extra pass over the window."""
    if isinstance(pair, CategoricalPair):
        unseen = (pair.reference_counts == 0) & (pair.current_counts > 0)
        return sorted(pair.categories[i] for i in np.flatnonzero(unseen).tolist()), 0
    reference, current = pair.reference, pair.current
    if len(reference) == 0 or len(current) == 0:
        return [], 0
    below = int(np.searchsorted(current, reference[0], side="left"))
    above = len(current) - int(np.searchsorted(current, reference[-1], side="right"))
    return [], below + above


HISTOGRAM_BINS = 20
TOP_CATEGORIES = 20


def distribution(pair: Pair) -> dict[str, Any] | None:
    """The baseline and the window side by side, for charts: 20 equal bins over the baseline's
    range (and what falls outside it), or the 20 most frequent categories (and the rest).
    Cheap: the values are sorted already, so each count is a binary search."""
    if isinstance(pair, CategoricalPair):
        total = pair.reference_counts + pair.current_counts
        top = np.argsort(-total, kind="stable")[:TOP_CATEGORIES]
        rest = np.ones(len(total), dtype=bool)
        rest[top] = False
        return {
            "categories": [pair.categories[i] for i in top.tolist()],
            "reference": pair.reference_counts[top].tolist(),
            "current": pair.current_counts[top].tolist(),
            "other": [int(pair.reference_counts[rest].sum()), int(pair.current_counts[rest].sum())],
        }
    reference, current = pair.reference, pair.current
    if len(reference) == 0:
        return None
    low, high = float(reference[0]), float(reference[-1])
    if high <= low:
        high = low + 1.0
    edges = np.linspace(low, high, HISTOGRAM_BINS + 1)

    def counts(values: npt.NDArray[np.float64]) -> tuple[list[int], int, int]:
        inner = edges.copy()
        positions = np.searchsorted(values, inner, side="left")
        positions[-1] = np.searchsorted(values, high, side="right")  # the last bin is closed
        below, above = int(positions[0]), len(values) - int(positions[-1])
        return np.diff(positions).tolist(), below, above

    reference_counts, reference_below, reference_above = counts(reference)
    current_counts, current_below, current_above = counts(current)
    return {
        "edges": edges.tolist(),
        "reference": reference_counts,
        "current": current_counts,
        "below": [reference_below, current_below],
        "above": [reference_above, current_above],
    }


def _prediction_drift(
    baseline: BaselineProfile, window: WindowColumns, settings: DriftSettings
) -> dict[str, Any] | None:
    column = baseline.prediction
    kind = prediction_kind(window)
    if column is None or kind is None or kind != column.kind:
        return None
    if kind == "numerical":
        values: npt.NDArray[Any] = window.prediction_values
        names = None
    else:
        values, names = window.class_codes, window.classes
    pair, _missing = _pair(column, values, names)
    stattest, threshold = settings.choice(None, kind)
    return {**_test(pair, kind, stattest, threshold), "distribution": distribution(pair)}


_WORKERS = max(1, min(4, os.cpu_count() or 1))


def _feature(
    item: tuple[FeatureSpec, ColumnProfile, tuple[npt.NDArray[Any], list[str] | None]],
    settings: DriftSettings,
    rows: int,
) -> tuple[dict[str, Any], int, list[str], int]:
    """One feature: its drift entry, missing values, unseen categories, values out of range."""
    feature, column, (values, names) = item
    pair, missing = _pair(column, values, names)
    stattest, threshold = settings.choice(feature.name, feature.kind)
    try:
        entry = _test(pair, feature.kind, stattest, threshold)
    except ValueError as error:  # e.g. a test set that does not apply to this kind
        entry = {"stattest": stattest, "score": None, "threshold": threshold,
                 "drifted": None, "error": str(error)}  # fmt: skip
    entry = {"name": feature.name, "kind": feature.kind, **entry,
             "missing_share": missing / rows if rows else None,
             "distribution": distribution(pair)}  # fmt: skip
    unseen, outside = _quality_of(pair)
    return entry, missing, unseen, outside


def compute(
    *,
    task: str,
    features: list[FeatureSpec],
    settings: DriftSettings,
    baseline: BaselineProfile,
    window: WindowColumns,
    labeled: accuracy.Labeled,
    rejected: int,
) -> dict[str, Any]:
    """The run's numbers, shaped as the runs API returns them (without id, model, window), and
    under ``distributions`` the histograms of each column (stored apart by the caller)."""
    rows = len(window)
    work = list(zip(features, baseline.features, _feature_values(window, features), strict=True))
    with ThreadPoolExecutor(max_workers=_WORKERS) as pool:  # numpy sorts release the GIL
        prediction = pool.submit(_prediction_drift, baseline, window, settings)
        outcomes = list(pool.map(lambda item: _feature(item, settings, rows), work))
        prediction_result = prediction.result()
    feature_results = [entry for entry, _, _, _ in outcomes]
    # distributions are for charts: kept apart from the result, which every API listing carries
    distributions = {
        "features": {entry["name"]: entry.pop("distribution") for entry in feature_results},
        "prediction": prediction_result.pop("distribution") if prediction_result else None,
    }
    new_categories = {
        f.name: unseen for f, (_, _, unseen, _) in zip(features, outcomes, strict=True) if unseen
    }
    out_of_range = {
        f.name: outside / rows
        for f, (_, _, _, outside) in zip(features, outcomes, strict=True)
        if outside
    }
    missing_cells = sum(missing for _, missing, _, _ in outcomes)
    tested = [f for f in feature_results if f["drifted"] is not None]
    drifted = sum(1 for f in tested if f["drifted"])
    share = drifted / len(tested) if tested else None
    return {
        "rows": rows,
        "labeled_rows": len(labeled),
        "features": feature_results,
        "prediction": prediction_result,
        "dataset": {
            "drifted_features": drifted if tested else None,
            "drifted_share": share,
            "drifted": None if share is None else share >= settings.drift_share,
        },
        "accuracy": accuracy.compute(task, labeled),
        "quality": {
            "missing_share": (
                missing_cells / (rows * len(features)) if rows and features else None
            ),
            "new_categories": new_categories,
            "out_of_range": out_of_range,
            "rejected": rejected,
        },
        "distributions": distributions,
    }


def flat_metrics(result: dict[str, Any]) -> dict[str, float | None]:
    """The run's numbers under the names rules use (``dataset.drifted_share``, ...)."""
    flat: dict[str, float | None] = {
        "rows": result["rows"],
        "labeled_rows": result["labeled_rows"],
        "dataset.drifted_share": result["dataset"]["drifted_share"],
        "dataset.drifted_features": result["dataset"]["drifted_features"],
        "quality.missing_share": result["quality"]["missing_share"],
        "quality.rejected": result["quality"]["rejected"],
    }
    for feature in result["features"]:
        prefix = f"feature.{feature['name']}"
        flat[f"{prefix}.score"] = feature["score"]
        flat[f"{prefix}.drifted"] = (
            None if feature["drifted"] is None else float(feature["drifted"])
        )
        flat[f"{prefix}.missing_share"] = feature["missing_share"]
    if result["prediction"] is not None:
        flat["prediction.score"] = result["prediction"]["score"]
        drifted = result["prediction"]["drifted"]
        flat["prediction.drifted"] = None if drifted is None else float(drifted)
    for name, value in (result["accuracy"] or {}).items():
        flat[f"accuracy.{name}"] = value
    return flat
