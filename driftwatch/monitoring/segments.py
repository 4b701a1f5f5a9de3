"""Segments (CONTRACT section 10): a run's window split by the values of the model's segment
features, each value's rows computed as a run of their own against the same segment of the
baseline. Pure: the caller reads the window once, and the segments are slices of that read.

A window's rows are grouped by one stable sort of the segment column's codes, so the segments
of a feature cost one pass over the window plus their runs (each on its own rows: together
about one more run of the window). Baselines are split the same way once, when they are
prepared (``baseline_profiles``), and kept.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from driftwatch.core.result import RunResult, SegmentSlice
from driftwatch.core.settings import DriftSettings, PerformanceSettings
from driftwatch.core.specs import FeatureSpec
from driftwatch.monitoring import accuracy, compute, profiles
from driftwatch.monitoring.profiles import BaselineProfile
from driftwatch.storage.chunks import WindowColumns

MAX_SEGMENT_VALUES = 50  # values a run reports per segment feature (the largest)
# values a baseline is prepared for per segment feature (the largest): more than a run shows,
# as a window's largest values need not be the baseline's
BASELINE_SEGMENT_VALUES = 200

# segment feature -> value -> the baseline's rows of that value, prepared
SegmentProfiles = Mapping[str, Mapping[str, BaselineProfile]]


def subset(window: WindowColumns, rows: npt.NDArray[np.int64]) -> WindowColumns:
    """The window's rows at ``rows`` (codes keep their dictionaries)."""
    return WindowColumns(
        timestamps_us=window.timestamps_us[rows],
        num_values=window.num_values[rows],
        cat_codes=window.cat_codes[rows],
        categories=window.categories,
        prediction_values=window.prediction_values[rows],
        class_codes=window.class_codes[rows],
        classes=window.classes,
        # a multiclass model's per-class probabilities: its segments' estimates read them
        prediction_scores=(None if window.prediction_scores is None
                           else window.prediction_scores[rows]),
        score_classes=window.score_classes,
    )  # fmt: skip


def _category_position(features: list[FeatureSpec], name: str) -> int | None:
    categorical = [f.name for f in features if f.kind == "categorical"]
    return categorical.index(name) if name in categorical else None


def groups(
    codes: npt.NDArray[np.int32], names: list[str], *, min_rows: int, most: int
) -> tuple[list[tuple[str, int, npt.NDArray[np.int64]]], int]:
    """The values of one categorical column with at least ``min_rows`` rows, largest first
    (ties by name), at most ``most``: (value, code, its rows ascending); and how many values
    were left out. One stable sort of the codes."""
    present = codes >= 0
    counts = np.bincount(codes[present], minlength=len(names))
    seen = np.flatnonzero(counts)
    ranked = sorted(seen.tolist(), key=lambda code: (-int(counts[code]), names[code]))
    chosen = [code for code in ranked if counts[code] >= min_rows][:most]
    if not chosen:
        return [], len(ranked)
    order = np.argsort(np.where(present, codes, len(names)), kind="stable")
    starts = np.concatenate(([0], np.cumsum(counts)))
    out = [(names[code], code, order[starts[code] : starts[code + 1]].astype(np.int64))
           for code in chosen]  # fmt: skip
    return out, len(ranked) - len(chosen)


def baseline_profiles(
    window: WindowColumns, features: list[FeatureSpec], segments: list[str], *, min_rows: int
) -> dict[str, dict[str, BaselineProfile]]:
    """The baseline split by each segment feature's values (those with ``min_rows`` rows at
    least, the ``BASELINE_SEGMENT_VALUES`` largest), each part prepared as a baseline."""
    out: dict[str, dict[str, BaselineProfile]] = {}
    for name in segments:
        position = _category_position(features, name)
        if position is None:
            continue
        found, _ = groups(window.cat_codes[:, position], window.categories[position],
                          min_rows=min_rows, most=BASELINE_SEGMENT_VALUES)  # fmt: skip
        out[name] = {value: profiles.profile(subset(window, rows), features)
                     for value, _, rows in found}  # fmt: skip
    return out


def _baseline_for(
    feature: str, value: str, whole: BaselineProfile, prepared: SegmentProfiles | None,
    min_rows: int,
) -> tuple[BaselineProfile, dict[str, Any]]:  # fmt: skip
    """The baseline a segment is compared with, and what its entry says of it."""
    if prepared is None or feature not in prepared:
        reason = (f"the baseline was prepared before {feature!r} was a segment feature (make a "
                  "new baseline to compare segments with their own part of it)")  # fmt: skip
    elif value not in prepared[feature]:
        reason = (f"the baseline has fewer than {min_rows} rows with {feature}={value} "
                  "(or none)")  # fmt: skip
    else:
        own = prepared[feature][value]
        if own.labeled is None:  # estimates are calibrated on the whole baseline's scores
            own = dataclasses.replace(own, labeled=whole.labeled)
        return own, {"baseline": "segment", "baseline_rows": own.rows}
    return whole, {"baseline": "whole", "baseline_rows": whole.rows, "baseline_reason": reason}


def compute_segments(
    *, task: str, features: list[FeatureSpec], settings: DriftSettings,
    baseline: BaselineProfile, prepared: SegmentProfiles | None, window: WindowColumns,
    labeled: accuracy.Labeled, segments: list[str], min_rows: int,
    performance: PerformanceSettings | None = None, past_horizon: bool = False,
) -> tuple[list[SegmentSlice], dict[str, int]]:  # fmt: skip
    """Each segment of the window (the values of each of ``segments`` with ``min_rows`` rows
    at least, the ``MAX_SEGMENT_VALUES`` largest) computed as a run against its part of the
    baseline; and per feature how many values were left out. ``window`` is the run's own read
    (``features``: its columns); ``labeled`` the run's labeled predictions with their chunk
    positions. Under the calibrated verdict the run's segments share the model's false-alarm
    budget: each is tested at the window's level over the number of segments."""
    where = (
        window.rows_at(labeled.chunk_ids, labeled.chunk_rows)
        if labeled.chunk_ids is not None and labeled.chunk_rows is not None
        else np.full(len(labeled), -1, dtype=np.int64)
    )
    planned: list[tuple[str, str, npt.NDArray[np.int64], npt.NDArray[np.int64]]] = []
    omitted: dict[str, int] = {}
    for name in segments:
        position = _category_position(features, name)
        if position is None:
            continue
        codes = window.cat_codes[:, position]
        found, left_out = groups(codes, window.categories[position], min_rows=min_rows,
                                 most=MAX_SEGMENT_VALUES)  # fmt: skip
        if left_out:
            omitted[name] = left_out
        labeled_codes = np.where(where >= 0, codes[np.maximum(where, 0)], -1)
        for value, code, rows in found:
            planned.append((name, value, rows, np.flatnonzero(labeled_codes == code)))
    if not planned:
        return [], omitted
    # the multivariate detectors are the window's (a classifier per segment would cost more
    # than all the rest): a segment entry has none
    shared = dataclasses.replace(
        settings,
        alpha_per_window=settings.alpha_per_window / len(planned),
        cluster_by=None,
        multivariate=False,
    )
    out = []
    for name, value, rows, labeled_at in planned:
        against, said = _baseline_for(name, value, baseline, prepared, min_rows)
        result: RunResult
        result, _ = compute.compute(
            task=task, features=features, settings=shared, baseline=against,
            window=subset(window, rows), labeled=labeled.subset(labeled_at), rejected=0,
            performance=performance, past_horizon=past_horizon,
        )  # fmt: skip
        out.append(SegmentSlice.of(name, value, _own_untested(result, name, shared), **said))
    return out, omitted


OWN_FEATURE_UNTESTED = "the segment's own feature: one value throughout the segment, not tested"


def _own_untested(result: RunResult, feature: str, settings: DriftSettings) -> RunResult:
    """A segment's result with its own feature untested (it holds the segment's value alone,
    so its test says nothing but would count in the dataset's share), the share recounted."""
    entries = [
        f.model_copy(update={"stattest": None, "score": None, "threshold": None,
                             "drifted": None, "p_value": None, "verdict": None,
                             "detectable": None, "effect_interval": None,
                             "error": OWN_FEATURE_UNTESTED})
        if f.name == feature else f
        for f in result.features
    ]  # fmt: skip
    return result.model_copy(
        update={"features": entries, "dataset": compute.dataset_drift(entries, settings)}
    )
