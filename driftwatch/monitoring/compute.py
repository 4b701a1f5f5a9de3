"""One monitoring window against a baseline: drift per feature and of the prediction, data
quality and accuracy. Pure: the caller reads the window and the baseline, and stores the result.

Each column costs one test on arrays already in memory: the baseline's sorted values or counts
(prepared once) against the window's values, sorted once here. No DataFrame is built.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import numpy.typing as npt

from driftwatch.core.result import (
    ColumnDrift,
    DatasetDrift,
    Estimate,
    FeatureDrift,
    Labels,
    Quality,
    RunResult,
)
from driftwatch.core.settings import DriftSettings, PerformanceSettings
from driftwatch.core.specs import EmbeddingSpec, FeatureSpec
from driftwatch.ingest.validation import BINARY, MULTICLASS, REGRESSION
from driftwatch.monitoring import (
    accuracy,
    embedding_drift,
    estimation,
    estimation_multiclass,
    estimation_regression,
    intervals,
    multivariate,
)
from driftwatch.monitoring.profiles import (
    BaselineProfile,
    ColumnProfile,
    cluster_units,
    prediction_kind,
)
from driftwatch.stats import calibration, registry
from driftwatch.stats.samples import CategoricalPair, NumericalPair, Pair
from driftwatch.storage.chunks import WindowColumns


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


def _test(pair: Pair, kind: str, stattest: str | None, threshold: float | None) -> ColumnDrift:
    """The column's test; a window without a value of the column has no score and no verdict,
    and a test that cannot run on this column says why instead of failing the run."""
    empty = (
        len(pair.current) == 0
        if isinstance(pair, NumericalPair)
        else int(pair.current_counts.sum()) == 0
    )
    try:
        if empty:  # nothing to compare: no score, and no verdict either way
            chosen = registry.get(stattest) if stattest else None
            return ColumnDrift(
                stattest=chosen.name if chosen else None, score=None,
                threshold=threshold if threshold is not None
                else (chosen.default_threshold if chosen else None),
                drifted=None,
            )  # fmt: skip
        result = registry.evaluate(pair, kind=kind, stattest=stattest, threshold=threshold)
    except (ValueError, ArithmeticError) as error:  # a test that does not apply to this column
        return ColumnDrift(stattest=stattest, score=None, threshold=threshold, drifted=None,
                           error=str(error))  # fmt: skip
    return ColumnDrift(
        stattest=result.stattest, score=float(result.score), threshold=float(result.threshold),
        drifted=bool(result.drifted),
    )  # fmt: skip


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


# Unseen categories a run names per feature (the most frequent); it counts them all. A window
# of a million distinct unseen values would otherwise be a result of tens of megabytes, read
# by every listing, rule and scrape.
NEW_CATEGORIES_KEPT = 20


def _quality_of(pair: Pair) -> tuple[list[str], int, int]:
    """The most frequent categories the baseline never saw (most frequent first, then by
    name), how many it never saw, and numbers outside the baseline's range, read off the test
    input (sorted values, aligned counts) at no extra pass over the window."""
    if isinstance(pair, CategoricalPair):
        unseen = np.flatnonzero((pair.reference_counts == 0) & (pair.current_counts > 0))
        counts = pair.current_counts[unseen]
        names = [pair.categories[i] for i in unseen.tolist()]
        if len(unseen) > NEW_CATEGORIES_KEPT:  # the ones that can make the top, by count
            keep = np.argpartition(-counts, NEW_CATEGORIES_KEPT - 1)[:NEW_CATEGORIES_KEPT]
            floor = counts[keep].min()
            candidates = np.flatnonzero(counts >= floor).tolist()
        else:
            candidates = list(range(len(unseen)))
        top = sorted(candidates, key=lambda i: (-int(counts[i]), names[i]))
        return [names[i] for i in top[:NEW_CATEGORIES_KEPT]], len(unseen), 0
    reference, current = pair.reference, pair.current
    if len(reference) == 0 or len(current) == 0:
        return [], 0, 0
    below = int(np.searchsorted(current, reference[0], side="left"))
    above = len(current) - int(np.searchsorted(current, reference[-1], side="right"))
    return [], 0, below + above


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


def _clusters(
    baseline: ColumnProfile, pair: Pair, values: npt.NDArray[Any], names: list[str] | None,
    units: npt.NDArray[np.int64] | None,
) -> calibration.Clusters | None:  # fmt: skip
    """The cluster of each value of the column's pair (drift.cluster_by), or None when the
    window or the baseline has no cluster key."""
    if units is None or baseline.cluster_units is None:
        return None
    if isinstance(pair, NumericalPair):
        current = np.asarray(values, dtype=np.float64)
        finite = np.isfinite(current)
        order = np.argsort(current[finite], kind="stable")  # as the pair's sorted values
        return calibration.Clusters(reference=baseline.cluster_units,
                                    current=units[finite][order])  # fmt: skip
    codes = np.asarray(values)
    present = codes >= 0
    position = {name: i for i, name in enumerate(pair.categories)}
    lookup = np.array([position.get(name, -1) for name in names or []], dtype=np.int64)
    return calibration.Clusters(
        reference=baseline.cluster_units[1], current=units[present],
        reference_categories=baseline.cluster_units[0], current_categories=lookup[codes[present]],
    )  # fmt: skip


def _evidence(
    pair: Pair, tested: ColumnDrift, settings: DriftSettings,
    clusters: calibration.Clusters | None = None,
) -> calibration.ColumnEvidence | None:  # fmt: skip
    """Under the calibrated verdict, a tested column's p-value at the window's sizes and what
    its verdict needs (None: untested, or Evidently's rule); with ``clusters``, from whole
    clusters permuted."""
    if not settings.calibrated or tested.score is None or tested.drifted is None:
        return None
    assert tested.stattest is not None
    assert tested.threshold is not None
    test = registry.get(tested.stattest)
    if clusters is not None:
        return calibration.cluster_evidence(pair, test, tested.score, tested.threshold, clusters)
    return calibration.evidence(pair, test, tested.score, tested.threshold)


def _prediction_drift(
    baseline: BaselineProfile,
    window: WindowColumns,
    settings: DriftSettings,
    units: npt.NDArray[np.int64] | None,
) -> tuple[ColumnDrift, dict[str, Any] | None, calibration.ColumnEvidence | None] | None:
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
    tested = _test(pair, kind, stattest, threshold)
    clusters = _clusters(column, pair, values, names, units) if settings.calibrated else None
    return tested, distribution(pair), _evidence(pair, tested, settings, clusters)


def column_drift(
    column: ColumnProfile, values: npt.NDArray[Any], names: list[str] | None, kind: str,
    settings: DriftSettings,
) -> ColumnDrift:  # fmt: skip
    """One column alone against its baseline column, under the model's verdict (calibrated:
    the column is its own family, at the window's level): a slice's prediction drift."""
    pair, _missing = _pair(column, values, names)
    stattest, threshold = settings.choice(None, kind)
    tested = _test(pair, kind, stattest, threshold)
    evidence = _evidence(pair, tested, settings)
    if evidence is None:
        return tested
    (verdict,) = calibration.verdicts([evidence], settings.alpha_per_window)
    return tested.model_copy(update={
        "drifted": verdict.drifted, "verdict": verdict.verdict, "p_value": evidence.p_value,
        "detectable": verdict.detectable, "effect_interval": evidence.effect_interval,
    })  # fmt: skip


_WORKERS = max(1, min(4, os.cpu_count() or 1))
CLUSTER_KEY_UNTESTED = "the cluster key (drift.cluster_by): not tested for drift"


def _feature(
    item: tuple[FeatureSpec, ColumnProfile, tuple[npt.NDArray[Any], list[str] | None]],
    settings: DriftSettings,
    rows: int,
    units: npt.NDArray[np.int64] | None,
) -> tuple[
    FeatureDrift,
    dict[str, Any] | None,
    int,
    tuple[list[str], int],
    int,
    calibration.ColumnEvidence | None,
]:
    """One feature: its drift entry, its distribution for charts, missing values, unseen
    categories (the most frequent, and how many), values out of range, and its evidence under
    the calibrated verdict."""
    feature, column, (values, names) = item
    pair, missing = _pair(column, values, names)
    stattest, threshold = settings.choice(feature.name, feature.kind)
    if feature.name == settings.cluster_by:  # an identifier: new ones every window, by nature
        tested = ColumnDrift(stattest=None, score=None, threshold=None, drifted=None,
                             error=CLUSTER_KEY_UNTESTED)  # fmt: skip
    else:
        tested = _test(pair, feature.kind, stattest, threshold)
    entry = FeatureDrift(name=feature.name, kind=feature.kind, **tested.model_dump(),
                         missing_share=missing / rows if rows else None)  # fmt: skip
    unseen, unseen_count, outside = _quality_of(pair)
    clusters = _clusters(column, pair, values, names, units) if settings.calibrated else None
    evidence = _evidence(pair, tested, settings, clusters)
    return entry, distribution(pair), missing, (unseen, unseen_count), outside, evidence


def _calibrated(
    features: list[FeatureDrift],
    features_evidence: list[calibration.ColumnEvidence | None],
    prediction: ColumnDrift | None,
    prediction_evidence: calibration.ColumnEvidence | None,
    alpha: float,
) -> tuple[list[FeatureDrift], ColumnDrift | None]:
    """The calibrated verdicts of the window's tested columns (features and prediction),
    Benjamini-Hochberg across all of them at the window's level."""
    columns: list[tuple[str | None, calibration.ColumnEvidence]] = [
        (f.name, e) for f, e in zip(features, features_evidence, strict=True) if e is not None
    ]
    if prediction_evidence is not None:
        columns.append((None, prediction_evidence))
    decided = calibration.verdicts([e for _, e in columns], alpha)
    updates: dict[str | None, dict[str, Any]] = {
        name: {
            "drifted": verdict.drifted, "verdict": verdict.verdict, "p_value": e.p_value,
            "detectable": verdict.detectable, "effect_interval": e.effect_interval,
        }
        for (name, e), verdict in zip(columns, decided, strict=True)
    }  # fmt: skip
    new_features = [f.model_copy(update=updates[f.name]) if f.name in updates else f
                    for f in features]  # fmt: skip
    if prediction is not None and None in updates:
        prediction = prediction.model_copy(update=updates[None])
    return new_features, prediction


def _window_units(
    window: WindowColumns, features: list[FeatureSpec], settings: DriftSettings,
    baseline: BaselineProfile,
) -> npt.NDArray[np.int64] | None:  # fmt: skip
    """The cluster of each window row, when the calibrated verdict permutes clusters: the
    model names a key and the baseline kept its clusters."""
    if not settings.calibrated or not clustered(baseline, settings):
        return None
    return cluster_units(window, features, settings.cluster_by)


def clustered(baseline: BaselineProfile, settings: DriftSettings) -> bool:
    """Whether runs against ``baseline`` permute clusters: the model names a cluster key and
    the baseline was made with it (a baseline made before keeps row-level nulls)."""
    if settings.cluster_by is None:
        return False
    columns = [*baseline.features, *([baseline.prediction] if baseline.prediction else [])]
    return any(c.cluster_units is not None for c in columns)


def labels_of(
    rows: int, labeled_rows: int, performance: PerformanceSettings, past_horizon: bool
) -> Labels:
    """The window's label coverage, and whether it is mature: coverage reached the model's
    ``label_coverage_min``, or the window is older than the label horizon (``past_horizon``:
    no label that comes now makes it be computed again)."""
    coverage = labeled_rows / rows if rows else None
    reached = coverage is not None and coverage >= performance.label_coverage_min
    return Labels(coverage=coverage, mature=reached or past_horizon)


def realized(
    task: str, labeled: accuracy.Labeled, performance: PerformanceSettings, *, rows: int,
    past_horizon: bool,
) -> dict[str, Any]:  # fmt: skip
    """The run's fields from its labeled predictions: the metrics (at the model's decision
    threshold), their 95% intervals, and label coverage and maturity."""
    evaluated = accuracy.evaluate(task, labeled, performance.decision_threshold)
    return {
        "accuracy": None if evaluated is None else evaluated[0],
        "accuracy_intervals": (
            None if evaluated is None else intervals.intervals(evaluated[1], evaluated[0])
        ),
        "labels": labels_of(rows, len(labeled), performance, past_horizon),
    }


def dataset_drift(
    features: list[FeatureDrift], settings: DriftSettings,
    units: npt.NDArray[np.int64] | None = None,
) -> DatasetDrift:  # fmt: skip
    """The window's dataset verdict from its features' entries: drifted features over tested
    ones against the model's drift_share, the calibrated verdict's share of insufficient
    ones, and the clusters the nulls moved (``units``: each window row's cluster)."""
    tested = [f for f in features if f.drifted is not None]
    drifted = sum(1 for f in tested if f.drifted)
    share = drifted / len(tested) if tested else None
    insufficient = sum(1 for f in tested if f.verdict == "insufficient")
    return DatasetDrift(
        drifted_features=drifted if tested else None,
        drifted_share=share,
        drifted=None if share is None else share >= settings.drift_share,
        insufficient_share=insufficient / len(tested) if tested and settings.calibrated else None,
        cluster_by=settings.cluster_by if units is not None else None,
        clusters=int(units.max()) + 1 if units is not None and units.size else None,
    )


def _estimated(
    task: str,
    window: WindowColumns,
    baseline: BaselineProfile,
    performance: PerformanceSettings,
    features: list[FeatureSpec],
) -> tuple[dict[str, Estimate] | None, str | None]:
    """CBPE of the window (binary, or multiclass from per-class probabilities), direct loss
    estimation of a regression's, or why not."""
    labeled = baseline.labeled
    if task == REGRESSION:
        rows = labeled if isinstance(labeled, estimation_regression.LabeledRegression) else None
        return estimation_regression.estimate(window, features, rows)
    if task == BINARY:
        scores = labeled if isinstance(labeled, estimation.LabeledScores) else None
        return estimation.estimate(window.prediction_values, scores,
                                   performance.decision_threshold)  # fmt: skip
    if task == MULTICLASS:
        probabilities = (
            labeled if isinstance(labeled, estimation_multiclass.LabeledProbabilities) else None
        )
        return estimation_multiclass.estimate(
            window.prediction_scores, window.score_classes, probabilities
        )
    return None, estimation.UNSUPPORTED_TASK


def compute(
    *,
    task: str,
    features: list[FeatureSpec],
    settings: DriftSettings,
    baseline: BaselineProfile,
    window: WindowColumns,
    labeled: accuracy.Labeled,
    rejected: int,
    performance: PerformanceSettings | None = None,
    past_horizon: bool = False,
    embeddings: Sequence[EmbeddingSpec] = (),
) -> tuple[RunResult, dict[str, Any]]:
    """The run's result, and the histograms of each column for charts (stored apart by the
    caller: every API listing carries the result, only charts read the histograms).
    ``past_horizon``: the window is older than the label horizon. ``embeddings``: the model's
    embedding features (CONTRACT section 11), entries after the tabular features'."""
    performance = performance or PerformanceSettings()
    rows = len(window)
    work = list(zip(features, baseline.features, _feature_values(window, features), strict=True))
    units = _window_units(window, features, settings, baseline)
    with ThreadPoolExecutor(max_workers=_WORKERS) as pool:  # numpy sorts release the GIL
        # first: the classifier's fits are the longest task, the columns' tests fill around it
        joint_future = pool.submit(multivariate.drift, baseline.joint, window, features,
                                   settings, baseline.categories())  # fmt: skip
        prediction_future = pool.submit(_prediction_drift, baseline, window, settings, units)
        outcomes = list(pool.map(lambda item: _feature(item, settings, rows, units), work))
        prediction = prediction_future.result()
        joint = joint_future.result()
    embedded = embedding_drift.embedding_outcomes(embeddings, baseline.embeddings, window,
                                                  settings)  # fmt: skip
    feature_results = [entry for entry, *_ in outcomes] + [e.entry for e in embedded]
    prediction_result = prediction[0] if prediction else None
    if settings.calibrated:
        feature_results, prediction_result = _calibrated(
            feature_results, [outcome[5] for outcome in outcomes] + [e.evidence for e in embedded],
            prediction_result, prediction[2] if prediction else None, settings.alpha_per_window,
        )  # fmt: skip
    distributions = {
        "features": {entry.name: shown for entry, shown, *_ in outcomes}
        | {e.entry.name: e.distribution for e in embedded},
        "prediction": prediction[1] if prediction else None,
    }
    missing_cells = sum(outcome[2] for outcome in outcomes)
    estimated, estimated_reason = _estimated(task, window, baseline, performance, features)
    result = RunResult(
        rows=rows,
        labeled_rows=len(labeled),
        features=feature_results,
        prediction=prediction_result,
        dataset=dataset_drift(feature_results, settings, units),
        **realized(task, labeled, performance, rows=rows, past_horizon=past_horizon),
        estimated=estimated,
        estimated_reason=estimated_reason,
        quality=Quality(
            missing_share=missing_cells / (rows * len(features)) if rows and features else None,
            new_categories={f.name: unseen for f, (*_, (unseen, _), _, _) in zip(
                features, outcomes, strict=True) if unseen},
            new_categories_total={f.name: total for f, (*_, (_, total), _, _) in zip(
                features, outcomes, strict=True) if total},
            out_of_range={f.name: outside / rows for f, (*_, outside, _) in zip(
                features, outcomes, strict=True) if outside},
            rejected=rejected,
        ),
        multivariate=joint,
    )  # fmt: skip
    return result, distributions
