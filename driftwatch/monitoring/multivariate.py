"""Multivariate drift of a run (CONTRACT section 11): a baseline's rows kept row by row (a
sample) when it is stored, a window's rows read the same way, both detectors of
``driftwatch.stats.multivariate`` between them, and the run's ``multivariate`` entry. Pure."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from driftwatch.core.result import ClassifierScore, MultivariateDrift, MultivariateScore
from driftwatch.core.settings import DriftSettings
from driftwatch.core.specs import FeatureSpec
from driftwatch.stats import multivariate as mv
from driftwatch.storage.chunks import WindowColumns

TABULAR = ("numerical", "categorical")
OLD_BASELINE = (
    "the baseline was stored before multivariate drift (it keeps no rows, only each column "
    "apart): store it again to compare the features' joint distribution"
)
EVERY_COMPONENT = (
    f"the baseline's features need all their principal components to explain "
    f"{mv.EXPLAINED_VARIANCE:.0%} of their variance (they share little of it): every row is "
    "rebuilt exactly, so the reconstruction error cannot change"
)
FEATURES_GONE = "the baseline's rows lack some of the features compared: store it again"
INSUFFICIENT = (
    f"fewer than {mv.MIN_ROWS} rows on a side (the window's, or half the baseline's sample)"
)


@dataclass
class JointProfile:
    """A baseline's rows, sampled, for the multivariate detectors: numerical features first,
    then categorical ones (``names`` in that order), categories as indexes into the
    baseline's own categories of each feature; with the detectors' fitted state."""

    names: list[str]
    numerical: list[str]
    categorical: list[str]
    detectors: mv.MultivariateBaseline

    @property
    def nbytes(self) -> int:
        return self.detectors.nbytes


def tested_features(features: list[FeatureSpec], cluster_by: str | None) -> list[FeatureSpec]:
    """The features the multivariate detectors compare: numerical and categorical ones, but
    the cluster key (an identifier, new every window by nature)."""
    return [f for f in features if f.kind in TABULAR and f.name != cluster_by]


def _columns(
    window: WindowColumns, features: list[FeatureSpec]
) -> dict[str, tuple[npt.NDArray[np.generic], list[str] | None]]:
    """Each feature's column of ``window`` (its values, or codes and their names)."""
    out: dict[str, tuple[npt.NDArray[np.generic], list[str] | None]] = {}
    num_position = cat_position = 0
    for feature in features:
        if feature.kind == "numerical":
            out[feature.name] = (window.num_values[:, num_position], None)
            num_position += 1
        elif feature.kind == "categorical":
            out[feature.name] = (window.cat_codes[:, cat_position], window.categories[cat_position])
            cat_position += 1
    return out


def rows_of(
    window: WindowColumns, features: list[FeatureSpec], numerical: list[str],
    categorical: list[str], baseline_categories: dict[str, list[str]],
    index: npt.NDArray[np.int64] | None = None,
) -> mv.Rows | None:  # fmt: skip
    """The ``numerical`` and ``categorical`` features of the window's rows (``index``: those
    only) as a joint profile holds the baseline's: categories mapped to the baseline's codes
    (UNSEEN when it never saw them); None when the window lacks one of them."""
    columns = _columns(window, features)
    if any(name not in columns for name in [*numerical, *categorical]):
        return None
    rows = len(window) if index is None else len(index)
    take = slice(None) if index is None else index
    numbers = np.empty((rows, len(numerical)))
    for j, name in enumerate(numerical):
        numbers[:, j] = columns[name][0][take]
    codes = np.empty((rows, len(categorical)), dtype=np.int64)
    for j, name in enumerate(categorical):
        values, names = columns[name]
        position = {category: i for i, category in enumerate(baseline_categories[name])}
        lookup = np.array([position.get(n, mv.UNSEEN) for n in names or []] + [mv.MISSING],
                          dtype=np.int64)  # fmt: skip
        codes[:, j] = lookup[np.asarray(values[take], dtype=np.int64)]  # -1: the last, MISSING
    return mv.Rows(numbers, codes)


def joint_profile(
    window: WindowColumns, features: list[FeatureSpec], cluster_by: str | None,
    baseline_categories: dict[str, list[str]], category_counts: dict[str, npt.NDArray[np.int64]],
) -> JointProfile | None:  # fmt: skip
    """A baseline's joint profile: at most BASELINE_SAMPLE_ROWS of its rows, drawn at random
    (the same rows every time: a fixed seed). None with fewer than two features to compare."""
    compared = tested_features(features, cluster_by)
    if len(compared) < 2:
        return None
    numerical = [f.name for f in compared if f.kind == "numerical"]
    categorical = [f.name for f in compared if f.kind == "categorical"]
    count = len(window)
    index = None
    if count > mv.BASELINE_SAMPLE_ROWS:
        rng = np.random.default_rng(mv.SEED)
        index = np.sort(rng.choice(count, mv.BASELINE_SAMPLE_ROWS, replace=False))
    rows = rows_of(window, features, numerical, categorical, baseline_categories, index)
    assert rows is not None  # the baseline's own features
    return from_rows(numerical, categorical, rows, category_counts)


def from_rows(
    numerical: list[str], categorical: list[str], rows: mv.Rows,
    category_counts: dict[str, npt.NDArray[np.int64]],
) -> JointProfile:  # fmt: skip
    """A joint profile of stored sample rows; ``category_counts``: each categorical feature's
    baseline counts (of all its rows, not only the sample's)."""
    detectors = mv.MultivariateBaseline.of(rows, [category_counts[n] for n in categorical])
    return JointProfile([*numerical, *categorical], numerical, categorical, detectors)


def unavailable(reason: str, names: list[str] | None = None) -> MultivariateDrift:
    return MultivariateDrift(
        classifier=ClassifierScore(reason=reason),
        reconstruction=MultivariateScore(reason=reason),
        features=names or [],
    )


def drift(
    joint: JointProfile | None, window: WindowColumns, features: list[FeatureSpec],
    settings: DriftSettings, baseline_categories: dict[str, list[str]],
) -> MultivariateDrift | None:  # fmt: skip
    """The run's ``multivariate`` entry: None when the model compares fewer than two features
    or switched the detectors off (drift.multivariate false)."""
    if not settings.multivariate or len(tested_features(features, settings.cluster_by)) < 2:
        return None
    if joint is None:
        return unavailable(OLD_BASELINE)
    rows = rows_of(window, features, joint.numerical, joint.categorical, baseline_categories)
    if rows is None:
        return unavailable(FEATURES_GONE, joint.names)
    return entry(joint, rows, settings)


def entry(joint: JointProfile, rows: mv.Rows, settings: DriftSettings) -> MultivariateDrift:
    """Both detectors on ``rows`` (a window's) against the joint profile, as the run says it."""
    outcome = mv.detect(joint.detectors, rows, level=settings.alpha_per_window)
    if outcome is None:
        return MultivariateDrift(
            classifier=ClassifierScore(verdict="insufficient", reason=INSUFFICIENT),
            reconstruction=MultivariateScore(verdict="insufficient", reason=INSUFFICIENT),
            features=joint.names,
        )
    top = mv.top_features(joint.names, outcome.importances)
    return MultivariateDrift(
        classifier=ClassifierScore(
            **_scored(outcome.classifier, settings), top_features=top,
            importances=(
                {name: round(float(value), 6) for name, value in zip(
                    joint.names, outcome.importances, strict=True)}
                if outcome.classifier.drifted else {}
            ),
        ),
        reconstruction=(
            MultivariateScore(reason=EVERY_COMPONENT) if outcome.reconstruction is None
            else MultivariateScore(**_scored(outcome.reconstruction, settings))
        ),
        features=joint.names,
        sample_rows=outcome.size,
    )  # fmt: skip


def _scored(detected: mv.Detected, settings: DriftSettings) -> dict[str, object]:
    return {
        "score": detected.score,
        "threshold": detected.threshold,
        "drifted": detected.drifted,
        "verdict": "drift" if detected.drifted else "no_drift",
        "p_value": detected.p_value if settings.calibrated else None,
    }


FROM_SUMMARIES_ROWS_EXIST = (
    "computed from summaries (the window holds more than DRIFTWATCH_EXACT_MAX_ROWS "
    'predictions), which keep each column apart: run it with "exact": true to compare rows'
)
FROM_SUMMARIES_ROWS_GONE = (
    "computed from summaries: retention removed the window's raw rows, and the features' "
    "joint distribution needs rows"
)


def from_summaries(
    features: list[FeatureSpec], settings: DriftSettings, *, rows_exist: bool
) -> MultivariateDrift | None:
    """A run from summaries: not available, saying why (summaries keep no joint
    distribution); None where a run from rows has no entry either."""
    compared = tested_features(features, settings.cluster_by)
    if not settings.multivariate or len(compared) < 2:
        return None
    reason = FROM_SUMMARIES_ROWS_EXIST if rows_exist else FROM_SUMMARIES_ROWS_GONE
    return unavailable(reason, [f.name for f in compared])
