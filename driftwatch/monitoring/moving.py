"""Trailing and lag baselines (CONTRACT section 8): a baseline that is a span of the model's own
traffic relative to each run's window, merged from the per-bucket summaries kept at ingest
for every run, never re-read from raw rows.

- ``trailing`` d: the run's window [start, end) is compared with [start - d, start);
- ``lag`` d: with [start - d, end - d), the same-length span d back (seasonal: the same hour
  last week).

The window is compared by its own summary too (whatever its size: both sides alike), so every
such run is ``"source": "summaries"``. A baseline column whose summary counts its values
exactly (categories up to 1000, numbers up to 32 distinct values) becomes an ordinary exact
profile column, compared as ``from_summaries`` compares any exact baseline; any other numerical
column is compared summary against summary (``stats.summary_pair``), with its bound.
Pure: the caller reads the summaries.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

import numpy as np

from driftwatch.core.result import ColumnDrift
from driftwatch.core.settings import DriftSettings
from driftwatch.core.specs import FeatureSpec
from driftwatch.core.time import iso
from driftwatch.monitoring import compute, from_summaries
from driftwatch.monitoring.from_summaries import Outcome
from driftwatch.monitoring.profiles import COUNT, FLOAT, BaselineProfile, ColumnProfile
from driftwatch.stats import calibration, from_summary, registry, summaries, summary_pair
from driftwatch.stats.from_summary import NeedsRows
from driftwatch.summaries.service import PREDICTION, SpanSummary

TRAILING, LAG = "trailing", "lag"
MOVING = frozenset({TRAILING, LAG})
MAX_LENGTH = timedelta(days=400)  # a year's season and some: a span is merged per run


def length_text(seconds: int) -> str:
    """A length as users write these ("7d", "36h", "90m"): days rather than weeks."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def span_of(source: str, seconds: int, start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """The span a run of [start, end) compares with."""
    length = timedelta(seconds=seconds)
    if source == TRAILING:
        return start - length, start
    return start - length, end - length


def refusal(source: str, seconds: int, window_seconds: int, bucket_seconds: int) -> str | None:
    """Why a trailing or lag length cannot be merged from whole summary buckets (naming the
    field), or None."""
    given = length_text(seconds)
    if seconds > MAX_LENGTH.total_seconds():
        return f"{source}: {given} is longer than {length_text(int(MAX_LENGTH.total_seconds()))}"
    if source == LAG and seconds % window_seconds:
        window = length_text(window_seconds)
        return (
            f"lag: {given} is not a whole number of the model's windows ({window}): each run "
            f"compares with the window that far back, so the lag is one window or more (such "
            f"as {length_text(window_seconds)}, or {length_text(7 * 86400)} for the "
            "same window last week when it divides a week)"
        )
    if source == TRAILING and seconds % bucket_seconds:
        bucket = length_text(bucket_seconds)
        nearest = length_text(max(bucket_seconds, seconds // bucket_seconds * bucket_seconds))
        return (
            f"trailing: {given} is not a whole number of the model's summary buckets ({bucket} "
            f"for its {length_text(window_seconds)} window): the span is merged from whole "
            f"buckets (such as {nearest})"
        )
    return None


def describe(source: str, seconds: int | None) -> str | None:
    """In words, for listings and the dashboard (None for other baselines)."""
    if source not in MOVING or seconds is None:
        return None
    length = length_text(seconds)
    if source == TRAILING:
        return f"trailing {length}: each window against the {length} just before it"
    return f"lag {length}: each window against the same span {length} earlier"


def _column_profile(
    name: str | None, kind: str, summary: summaries.ColumnSummary | None
) -> ColumnProfile:
    """An exact profile column where the summary counts values exactly, else one that keeps
    the summary (``ColumnProfile.summary``)."""
    if summary is None:
        empty: summaries.ColumnSummary = (
            summaries.NumericalSummary() if kind == "numerical" else summaries.CategoricalSummary()
        )
        return ColumnProfile(name, kind, rows=0, missing=0, summary=empty)
    rows, missing = summary.rows, summary.missing
    if isinstance(summary, summaries.CategoricalSummary):
        if summary.counts is None or summary.count == 0:
            return ColumnProfile(name, kind, rows=rows, missing=missing, summary=summary)
        categories = sorted(summary.counts)
        counts = np.asarray([summary.counts[c] for c in categories], dtype=COUNT)
        return ColumnProfile(name, kind, rows=rows, missing=missing, categories=categories,
                             counts=counts)  # fmt: skip
    values = from_summary.exact_values(summary) if summary.count else None
    if values is None:
        return ColumnProfile(name, kind, rows=rows, missing=missing, summary=summary)
    return ColumnProfile(name, kind, rows=rows, missing=missing,
                         sorted_values=values.astype(FLOAT))  # fmt: skip


def profile_of(span: SpanSummary, features: list[FeatureSpec]) -> BaselineProfile:
    """The baseline a run compares with: its span's merged summary as a profile."""
    columns = [_column_profile(f.name, f.kind, span.feature(f.name)) for f in features]
    value, named = span.columns.get((PREDICTION, "value")), span.columns.get((PREDICTION, "class"))
    prediction = None
    if value is not None or named is not None:  # the kind most of the span's predictions have
        numeric = (value.count if value else 0) >= (named.count if named else 0)
        prediction = (_column_profile(None, "numerical", value) if numeric
                      else _column_profile(None, "categorical", named))  # fmt: skip
    return BaselineProfile(rows=span.rows, features=columns, prediction=prediction)


def for_versions(profile: BaselineProfile) -> BaselineProfile:
    """The profile a run's split by model version compares each version's predictions with
    (read from rows): the prediction only where it is exact."""
    column = profile.prediction
    if column is not None and column.summary is not None:
        return dataclasses.replace(profile, prediction=None)
    return profile


def _untested(stattest: str | None, threshold: float | None, error: str) -> ColumnDrift:
    return ColumnDrift(stattest=stattest, score=None, threshold=threshold, drifted=None,
                       error=error)  # fmt: skip


def _distribution(
    reference: summaries.NumericalSummary, current: summaries.NumericalSummary
) -> dict[str, object]:  # fmt: skip
    """``compute.distribution``'s chart: 20 bins over the baseline's range, both sides'
    counts estimated from their bins."""
    low, high = reference.minimum, reference.maximum
    if high <= low:
        high = low + 1.0
    edges = np.linspace(low, high, compute.HISTOGRAM_BINS + 1)
    ref_counts, ref_below, ref_above = from_summary.window_histogram(reference, edges)
    cur_counts, cur_below, cur_above = from_summary.window_histogram(current, edges)
    return {"edges": edges.tolist(), "reference": ref_counts, "current": cur_counts,
            "below": [ref_below, cur_below], "above": [ref_above, cur_above]}  # fmt: skip


def _evidence(
    test: registry.StatTest, bounded: from_summary.Bounded, threshold: float,
    reference: summaries.NumericalSummary, current: summaries.NumericalSummary,
) -> calibration.ColumnEvidence:  # fmt: skip
    """The calibrated p-value at both sides' real sizes: ks, of its conservative statistic;
    wasserstein, against the bootstrap null of the baseline's binned distribution (a sample of
    its quantiles, ``summary_pair.pseudo_sample``); binned distances, the permutation null of
    both sides' estimated counts."""
    n, m = reference.count, current.count
    n_eff = n * m / (n + m)
    if test.pvalue:
        return calibration.ColumnEvidence(test, bounded.score, threshold, bounded.conservative,
                                          None, n_eff, None)  # fmt: skip
    if test.name in calibration.BINNED:
        (ref_guess, *_), (cur_guess, *_) = summary_pair.binned_counts(reference, current)
        ref_counts = summary_pair.rounded_counts(ref_guess)
        cur_counts = summary_pair.rounded_counts(cur_guess)
        null = calibration._permutation_null(test, ref_counts, cur_counts)
        effect = calibration._binned_interval(test, ref_counts, cur_counts)
    else:
        n_sim, m_sim = calibration._size_class(n), calibration._size_class(m)
        sample = summary_pair.pseudo_sample(reference)
        null = calibration.NULL_CACHE.get(sample, test, n_sim, m_sim)
        null = null.scaled(calibration._rate(n, m) / calibration._rate(n_sim, m_sim))
        effect = None
    return calibration.ColumnEvidence(test, bounded.score, threshold, null.p_value(bounded.score),
                                      null, n_eff, effect)  # fmt: skip


def _numerical(
    reference: summaries.NumericalSummary, current: summaries.NumericalSummary,
    stattest: str | None, threshold: float | None, settings: DriftSettings,
) -> Outcome:  # fmt: skip
    test = (registry.get(stattest) if stattest
            else registry.default_stattest("numerical", reference.count, 33))  # fmt: skip
    limit = test.default_threshold if threshold is None else float(threshold)
    if "numerical" not in test.kinds:
        reason = f"stattest {test.name!r} does not apply to numerical columns"
        return _untested(test.name, limit, reason), None, current.missing, ([], 0), 0, None
    try:
        bounded = summary_pair.score(test.name, reference, current)
    except NeedsRows as error:
        return _untested(test.name, limit, str(error)), None, current.missing, ([], 0), 0, None
    decided = bounded.conservative if test.pvalue else bounded.score
    tested = ColumnDrift(stattest=test.name, score=bounded.score, threshold=limit,
                         drifted=test.is_drift(decided, limit),
                         max_error=bounded.max_error)  # fmt: skip
    cdf = from_summary.WindowCdf(current)
    below = cdf.estimate(np.nextafter(np.array([reference.minimum]), -np.inf))[0]
    above = cdf.n - cdf.estimate(np.array([reference.maximum]))[0]
    evidence = (_evidence(test, bounded, limit, reference, current)
                if settings.calibrated else None)  # fmt: skip
    return (tested, _distribution(reference, current), current.missing, ([], 0),
            int(below + above), evidence)  # fmt: skip


def column(
    profile: ColumnProfile, summary: summaries.ColumnSummary | None, kind: str,
    stattest: str | None, threshold: float | None, settings: DriftSettings, *, rows_exist: bool,
) -> Outcome:  # fmt: skip
    """One column of the window's summary against the baseline span's (``from_summaries``'s
    ``column`` where the baseline column is exact; never reads rows)."""
    reference = profile.summary
    if reference is None or summary is None or summary.count == 0:
        return from_summaries.column(profile, summary, kind, stattest, threshold, settings,
                                     rows_exist=False)  # fmt: skip
    chosen = registry.get(stattest) if stattest else None
    limit = threshold if threshold is not None else (chosen.default_threshold if chosen else None)
    name = chosen.name if chosen else None
    if reference.count == 0:
        reason = "no value of this column in the baseline span: nothing to compare with"
        return _untested(name, limit, reason), None, summary.missing, ([], 0), 0, None
    if isinstance(reference, summaries.CategoricalSummary):
        reason = (f"more than {summaries.CATEGORY_LIMIT} categories in the baseline span: its "
                  "counts are a frequent-items sketch, which runs do not compare with")  # fmt: skip
        return _untested(name, limit, reason), None, summary.missing, ([], 0), 0, None
    assert isinstance(summary, summaries.NumericalSummary)
    return _numerical(reference, summary, stattest, threshold, settings)


def reason(
    span: SpanSummary, *, first: datetime | None, window_start: datetime, window_end: datetime,
    window_rows: int, window_held: int,
) -> str | None:  # fmt: skip
    """Why the span cannot be compared or holds less than asked, in words (None: neither)."""
    notes: list[str] = []
    where = f"the baseline span {iso(span.start)} to {iso(span.end)}"
    if span.rows == 0:
        if first is None or span.end <= first:
            notes.append(f"{where} ends before the model's first prediction"
                         + (f" ({iso(first)})" if first else "")
                         + ": nothing to compare with yet (insufficient baseline)")  # fmt: skip
        else:
            notes.append(f"{where} holds no predictions: nothing to compare with (insufficient "
                         "baseline)")  # fmt: skip
    elif first is not None and span.start < first:
        held = length_text(int((span.end - first).total_seconds()))
        asked = length_text(int((span.end - span.start).total_seconds()))
        notes.append(f"{where} starts before the model's first prediction ({iso(first)}): it "
                     f"holds {held} of the {asked} asked")  # fmt: skip
    if span.end > window_start and span.start < window_end:
        notes.append(f"{where} overlaps the run's window (the run is longer than the lag)")
    if window_rows == 0 and window_held > 0:
        notes.append("the window's predictions have no summaries (stored before summaries were "
                     "kept, or with DRIFTWATCH_SUMMARIES off): a trailing or lag baseline "
                     "compares summaries")  # fmt: skip
    return "; ".join(notes) or None
