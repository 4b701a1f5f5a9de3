"""A run computed from the window's summaries (CONTRACT section 8) instead of its raw rows:
each column against the baseline's exact profile, with a bound on each score's error.

- A categorical column with exact counts, and a numerical one whose summary counts its values
  exactly (at most 32 distinct), are the same test input as rows give: every test and verdict
  is the one on rows, ``max_error`` 0.
- Any other numerical column: ks, wasserstein, jensenshannon, psi and kl_div from the fine bins
  (``stats.from_summary``); another test, or a categorical column past 1000 categories, needs
  the raw rows: ``NeedsRows`` when they exist (the caller reads them), else the column is
  reported untested with the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from driftwatch.core.result import ColumnDrift, FeatureDrift, Quality, RunResult
from driftwatch.core.settings import DriftSettings, PerformanceSettings
from driftwatch.core.specs import FeatureSpec
from driftwatch.monitoring import accuracy, compute, estimation, multivariate
from driftwatch.monitoring.profiles import BaselineProfile, ColumnProfile
from driftwatch.stats import calibration, from_summary, registry, summaries
from driftwatch.stats.from_summary import NeedsRows
from driftwatch.stats.samples import CategoricalPair, NumericalPair, Pair
from driftwatch.summaries.service import FEATURE, PREDICTION, SpanSummary

Outcome = tuple[
    ColumnDrift, dict[str, Any] | None, int, tuple[list[str], int], int,
    calibration.ColumnEvidence | None,
]  # fmt: skip


def _categorical_pair(profile: ColumnProfile, counted: dict[str, int]) -> CategoricalPair:
    """The test input ``compute._pair`` builds from rows, from the window's exact counts."""
    assert profile.categories is not None
    assert profile.counts is not None
    categories = list(profile.categories)
    index = {name: i for i, name in enumerate(categories)}
    reference: list[int] = profile.counts.tolist()
    current = [0] * len(categories)
    for name, count in counted.items():
        position = index.get(name)
        if position is None:
            position = index[name] = len(categories)
            categories.append(name)
            reference.append(0)
            current.append(0)
        current[position] = int(count)
    return CategoricalPair(
        reference_counts=np.asarray(reference, dtype=np.int64),
        current_counts=np.asarray(current, dtype=np.int64),
        categories=categories,
    )


def _exact_pair(profile: ColumnProfile, summary: summaries.ColumnSummary) -> Pair | None:
    if isinstance(summary, summaries.CategoricalSummary):
        return None if summary.counts is None else _categorical_pair(profile, summary.counts)
    values = from_summary.exact_values(summary)
    if values is None:
        return None
    assert profile.sorted_values is not None
    reference = profile.sorted_values
    integer = compute._integer_column(profile, reference, values, summary.missing)
    return NumericalPair(reference, values, integer_dtype=integer)


def _untested(stattest: str | None, threshold: float | None, error: str) -> ColumnDrift:
    return ColumnDrift(stattest=stattest, score=None, threshold=threshold, drifted=None,
                       error=error)  # fmt: skip


def _bounded_evidence(
    test: registry.StatTest, bounded: from_summary.Bounded, threshold: float,
    reference: np.ndarray, summary: summaries.NumericalSummary,
) -> calibration.ColumnEvidence:  # fmt: skip
    """The calibrated p-value of the estimated score at the window's sizes (ks: of D - bound,
    conservative); no effect interval for wasserstein (it needs the window's values)."""
    n, m = len(reference), summary.count
    n_eff = n * m / (n + m)
    if test.pvalue:
        return calibration.ColumnEvidence(test, bounded.score, threshold, bounded.conservative,
                                          None, n_eff, None)  # fmt: skip
    if test.name in calibration.BINNED:
        reference_counts, estimate, _low, _high = from_summary.binned_counts(reference, summary)
        current = np.rint(estimate).astype(np.int64)
        null = calibration._permutation_null(test, reference_counts, current)
        effect = calibration._binned_interval(test, reference_counts, current)
    else:
        n_sim, m_sim = calibration._size_class(n), calibration._size_class(m)
        null = calibration.NULL_CACHE.get(reference, test, n_sim, m_sim)
        null = null.scaled(calibration._rate(n, m) / calibration._rate(n_sim, m_sim))
        effect = None
    return calibration.ColumnEvidence(test, bounded.score, threshold, null.p_value(bounded.score),
                                      null, n_eff, effect)  # fmt: skip


def _distribution(reference: np.ndarray, summary: summaries.NumericalSummary) -> dict[str, Any]:
    """``compute.distribution`` with the window's counts estimated from its bins."""
    low, high = float(reference[0]), float(reference[-1])
    if high <= low:
        high = low + 1.0
    edges = np.linspace(low, high, compute.HISTOGRAM_BINS + 1)
    reference_counts = np.diff(np.concatenate((
        np.searchsorted(reference, edges[:-1], side="left"),
        np.searchsorted(reference, edges[-1:], side="right"),
    ))).tolist()  # fmt: skip
    below_ref = int(np.searchsorted(reference, edges[0], side="left"))
    above_ref = len(reference) - int(np.searchsorted(reference, high, side="right"))
    current, below, above = from_summary.window_histogram(summary, edges)
    return {"edges": edges.tolist(), "reference": reference_counts, "current": current,
            "below": [below_ref, below], "above": [above_ref, above]}  # fmt: skip


def _frequent(
    profile: ColumnProfile, summary: summaries.CategoricalSummary, stattest: str | None,
    threshold: float | None, settings: DriftSettings, *, rows_exist: bool,
) -> Outcome:  # fmt: skip
    """A categorical window past the category limit: jensenshannon (Evidently's choice above
    1000 baseline rows) from its frequent items; another test needs the rows."""
    assert profile.categories is not None
    assert profile.counts is not None
    test = (
        registry.get(stattest)
        if stattest
        else registry.default_stattest("categorical", int(profile.counts.sum()), 3)
    )
    limit = test.default_threshold if threshold is None else float(threshold)
    if test.name != "jensenshannon" or not profile.categories:
        reason = (f"more than {summaries.CATEGORY_LIMIT} categories in the window: "
                  f"{test.name!r} needs the raw rows (from summaries: jensenshannon)")  # fmt: skip
        if rows_exist:
            raise NeedsRows(reason)
        return _untested(test.name, limit, reason), None, summary.missing, ([], 0), 0, None
    bounded = from_summary.categorical_jensenshannon(profile.categories, profile.counts, summary)
    tested = ColumnDrift(stattest=test.name, score=bounded.score, threshold=limit,
                         drifted=test.is_drift(bounded.score, limit),
                         max_error=bounded.max_error)  # fmt: skip
    estimate, _low, _high, unseen = from_summary.frequent_counts(profile.categories, summary)
    top = sorted(unseen, key=lambda name: (-unseen[name], name))[: compute.NEW_CATEGORIES_KEPT]
    evidence = None
    if settings.calibrated:
        reference = np.append(profile.counts, 0).astype(np.int64)
        current = np.rint(estimate).astype(np.int64)
        null = calibration._permutation_null(test, reference, current)
        n, m = int(profile.counts.sum()), summary.count
        evidence = calibration.ColumnEvidence(
            test, bounded.score, limit, null.p_value(bounded.score), null, n * m / (n + m),
            calibration._binned_interval(test, reference, current),
        )  # fmt: skip
    return tested, None, summary.missing, (top, len(unseen)), 0, evidence


def column(
    profile: ColumnProfile, summary: summaries.ColumnSummary | None, kind: str,
    stattest: str | None, threshold: float | None, settings: DriftSettings, *, rows_exist: bool,
) -> Outcome:  # fmt: skip
    """One column from its summary: its drift entry (``max_error`` set), distribution,
    missing values, unseen categories, values out of range, evidence."""
    if summary is None or summary.count == 0:
        empty = CategoricalPair(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), [])
        tested = compute._test(empty, kind, stattest, threshold)
        return tested, None, summary.missing if summary else 0, ([], 0), 0, None
    pair = _exact_pair(profile, summary)
    if pair is not None:
        tested = compute._test(pair, kind, stattest, threshold)
        if tested.score is not None:
            tested = tested.model_copy(update={"max_error": 0.0})
        unseen, unseen_count, outside = compute._quality_of(pair)
        evidence = compute._evidence(pair, tested, settings)
        return (tested, compute.distribution(pair), summary.missing, (unseen, unseen_count),
                outside, evidence)  # fmt: skip
    if isinstance(summary, summaries.CategoricalSummary):
        return _frequent(profile, summary, stattest, threshold, settings, rows_exist=rows_exist)
    assert profile.sorted_values is not None
    reference = profile.sorted_values
    test = (
        registry.get(stattest)
        if stattest
        else registry.default_stattest("numerical", len(reference), len(reference) + 33)
    )
    limit = test.default_threshold if threshold is None else float(threshold)
    if "numerical" not in test.kinds:
        reason = f"stattest {test.name!r} does not apply to numerical columns"
        return _untested(test.name, limit, reason), None, summary.missing, ([], 0), 0, None
    if len(reference) == 0:
        tested = ColumnDrift(stattest=test.name, score=test.no_drift_score, threshold=limit,
                             drifted=False, max_error=0.0)  # fmt: skip
        return tested, None, summary.missing, ([], 0), 0, None
    try:
        bounded = from_summary.score(test.name, reference, summary)
    except NeedsRows as error:
        if rows_exist:
            raise
        return _untested(test.name, limit, str(error)), None, summary.missing, ([], 0), 0, None
    # p-value tests: drift only when the least drifted statistic allowed is (KS: critical
    # value widened by the bound); distances: Evidently's rule on the estimate.
    decided = bounded.conservative if test.pvalue else bounded.score
    tested = ColumnDrift(stattest=test.name, score=bounded.score, threshold=limit,
                         drifted=test.is_drift(decided, limit),
                         max_error=bounded.max_error)  # fmt: skip
    cdf = from_summary.WindowCdf(summary)
    below = cdf.estimate(np.nextafter(reference[:1], -np.inf))[0]
    above = cdf.n - cdf.estimate(reference[-1:])[0]
    evidence = (_bounded_evidence(test, bounded, limit, reference, summary)
                if settings.calibrated else None)  # fmt: skip
    return (tested, _distribution(reference, summary), summary.missing, ([], 0),
            int(below + above), evidence)  # fmt: skip


def compute_from_summaries(
    *, task: str, features: list[FeatureSpec], settings: DriftSettings,
    baseline: BaselineProfile, span: SpanSummary, labeled: accuracy.Labeled, rejected: int,
    rows_exist: bool, performance: PerformanceSettings | None = None, past_horizon: bool = False,
    column_of: Callable[..., Outcome] | None = None,
) -> tuple[RunResult, dict[str, Any]]:  # fmt: skip
    """``compute.compute``'s result from the window's summaries (``source`` summaries): the
    same realized metrics and label fields, and no estimate (CBPE needs the window's scores
    row by row). ``column_of``: how one column is compared (default ``column``; a baseline
    merged from summaries: ``moving.column``)."""
    column_of = column_of or column
    rows = span.rows
    outcomes: list[Outcome] = []
    for feature, profile in zip(features, baseline.features, strict=True):
        stattest, threshold = settings.choice(feature.name, feature.kind)
        if feature.name == settings.cluster_by:
            outcomes.append((_untested(None, None, compute.CLUSTER_KEY_UNTESTED), None, 0,
                             ([], 0), 0, None))  # fmt: skip
            continue
        outcomes.append(column_of(profile, span.columns.get((FEATURE, feature.name)),
                                  feature.kind, stattest, threshold, settings,
                                  rows_exist=rows_exist))  # fmt: skip
    feature_results = [
        FeatureDrift(name=f.name, kind=f.kind, **outcome[0].model_dump(),
                     missing_share=outcome[2] / rows if rows else None)
        for f, outcome in zip(features, outcomes, strict=True)
    ]  # fmt: skip
    prediction: Outcome | None = None
    column_profile = baseline.prediction
    if column_profile is not None:
        key = (PREDICTION, "value" if column_profile.kind == "numerical" else "class")
        found = span.columns.get(key)
        if found is not None and found.count:
            stattest, threshold = settings.choice(None, column_profile.kind)
            prediction = column_of(column_profile, found, column_profile.kind, stattest,
                                   threshold, settings, rows_exist=rows_exist)  # fmt: skip
    prediction_result = prediction[0] if prediction else None
    if settings.calibrated:
        feature_results, prediction_result = compute._calibrated(
            feature_results, [o[5] for o in outcomes], prediction_result,
            prediction[5] if prediction else None, settings.alpha_per_window,
        )  # fmt: skip
    distributions = {
        "features": {f.name: o[1] for f, o in zip(features, outcomes, strict=True)},
        "prediction": prediction[1] if prediction else None,
    }
    missing_cells = sum(o[2] for o in outcomes)
    result = RunResult(
        rows=rows,
        labeled_rows=len(labeled),
        features=feature_results,
        prediction=prediction_result,
        dataset=compute.dataset_drift(feature_results, settings),
        **compute.realized(task, labeled, performance or PerformanceSettings(), rows=rows,
                           past_horizon=past_horizon),
        estimated_reason=estimation.FROM_SUMMARIES,
        quality=Quality(
            missing_share=missing_cells / (rows * len(features)) if rows and features else None,
            new_categories={f.name: o[3][0] for f, o in zip(features, outcomes, strict=True)
                            if o[3][0]},
            new_categories_total={f.name: o[3][1] for f, o in zip(features, outcomes,
                                                                  strict=True) if o[3][1]},
            out_of_range={f.name: o[4] / rows for f, o in zip(features, outcomes, strict=True)
                          if o[4] and rows},
            rejected=rejected,
        ),
        source="summaries",
        max_error={f.name: f.max_error for f in feature_results
                   if f.max_error is not None and f.score is not None},
        multivariate=multivariate.from_summaries(features, settings, rows_exist=rows_exist),
    )  # fmt: skip
    return result, distributions
