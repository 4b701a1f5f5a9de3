"""The window split by model version (CONTRACT section 10): each served version's rows,
accuracy and prediction drift, so that a rollout is visible; and each shadow version's
agreement with the served model and its accuracy against it on the same labeled ids. Pure.

Only a window that holds two versions or more is read again (its versions, values and classes
of the narrow prediction rows); a window of one version is that version: its slice repeats the
run's own prediction drift and accuracy."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from driftwatch.core.result import (
    ColumnDrift,
    DatasetDrift,
    Difference,
    FeatureDrift,
    RunResult,
    VersionSlice,
)
from driftwatch.core.settings import DriftSettings
from driftwatch.core.specs import FeatureSpec
from driftwatch.ingest.validation import class_name
from driftwatch.monitoring import accuracy, compute
from driftwatch.monitoring.profiles import BaselineProfile
from driftwatch.stats import paired
from driftwatch.storage.chunks import WindowColumns

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


@dataclass(slots=True)
class VersionRows:
    """Each of a window's predictions (``repository.version_predictions``): its version,
    value and class, and the chunk and row its features are stored at."""

    versions: list[str | None]
    values: list[float | None]
    classes: list[str | None]
    chunk_ids: npt.NDArray[np.int64]
    chunk_rows: npt.NDArray[np.int64]

    def window_positions(self, window: WindowColumns) -> npt.NDArray[np.int64] | None:
        """The position of each of these rows in ``window``: a window read from chunks holds
        its rows by chunk, then by row within it. None when the two disagree in size (rows
        removed between the two reads): the versions then get no feature drift."""
        if len(self.versions) != len(window):
            return None
        order = np.lexsort((self.chunk_rows, self.chunk_ids))  # window row -> one of these
        positions = np.empty(len(order), dtype=np.int64)
        positions[order] = np.arange(len(order))
        return positions


FEATURE_VERSIONS = 5  # served versions whose features are tested (the largest ones)


def _subwindow(window: WindowColumns, rows: npt.NDArray[np.int64]) -> WindowColumns:
    return WindowColumns(
        timestamps_us=window.timestamps_us[rows], num_values=window.num_values[rows],
        cat_codes=window.cat_codes[rows], categories=window.categories,
        prediction_values=window.prediction_values[rows], class_codes=window.class_codes[rows],
        classes=window.classes,
    )  # fmt: skip


def version_drift(
    window: WindowColumns, features: list[FeatureSpec], baseline: BaselineProfile,
    settings: DriftSettings,
) -> tuple[list[FeatureDrift], ColumnDrift | None, DatasetDrift]:  # fmt: skip
    """One version's rows against the whole baseline, as the run tests its window: each
    feature and the prediction, under the model's verdict (calibrated: Benjamini-Hochberg
    across this version's columns at the window's level, so a version of few rows gets
    ``insufficient`` where the run would). Rows are taken as independent here (no cluster
    permutation), and no histograms are kept."""
    rows = len(window)
    work = zip(features, baseline.features, compute._feature_values(window, features),
               strict=True)  # fmt: skip
    outcomes = [compute._feature(item, settings, rows, None) for item in work]
    prediction = compute._prediction_drift(baseline, window, settings, None)
    tested = [entry for entry, *_ in outcomes]
    served = prediction[0] if prediction else None
    if settings.calibrated:
        tested, served = compute._calibrated(
            tested, [outcome[5] for outcome in outcomes], served,
            prediction[2] if prediction else None, settings.alpha_per_window,
        )  # fmt: skip
    return tested, served, compute.dataset_drift(tested, settings)


def slices(
    result: RunResult, *, task: str, counts: dict[str | None, int], labeled: accuracy.Labeled,
    baseline: BaselineProfile, settings: DriftSettings, predictions: VersionRows | None,
    threshold: float = 0.5, window: WindowColumns | None = None,
    features: list[FeatureSpec] | None = None,
) -> list[VersionSlice]:  # fmt: skip
    """The served versions of the window, largest first (at most ``MAX_VERSIONS``).
    ``predictions``: every row's version, value and class, when ``counts`` has several;
    ``window`` (the run's, read from rows) and ``features``: the largest ``FEATURE_VERSIONS``
    versions get each feature's drift too, from that same read."""
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0] or ""))[:MAX_VERSIONS]
    if len(ordered) == 1:
        version, rows = ordered[0]
        return [VersionSlice(model_version=version, rows=rows, labeled_rows=result.labeled_rows,
                             accuracy=result.accuracy, prediction=result.prediction,
                             dataset=result.dataset)]  # fmt: skip
    assert predictions is not None
    positions = predictions.window_positions(window) if window is not None else None
    rows_of: dict[str | None, list[int]] = {}
    for index, version in enumerate(predictions.versions):  # one pass over the window's rows
        rows_of.setdefault(version, []).append(index)
    out = []
    for rank, (version, rows) in enumerate(ordered):
        keep = rows_of.get(version, [])
        own = labeled.of_version(version)
        drift: dict[str, Any] = {}
        if (
            positions is not None
            and window is not None
            and features is not None
            and (rank < FEATURE_VERSIONS)
        ):
            mine = np.sort(positions[np.asarray(keep, dtype=np.int64)])  # in window order
            drift = dict(
                zip(
                    ("features", "prediction", "dataset"),
                    version_drift(_subwindow(window, mine), features, baseline, settings),
                    strict=True,
                )
            )
        else:
            drift["prediction"] = _prediction(
                baseline, [predictions.values[i] for i in keep],
                [predictions.classes[i] for i in keep], settings,
            )  # fmt: skip
        out.append(VersionSlice(
            model_version=version, rows=rows, labeled_rows=len(own),
            accuracy=accuracy.compute(task, own, threshold) if len(own) else None, **drift,
        ))  # fmt: skip
    return out


# -- shadow versions ----------------------------------------------------------------------------

DELTA_DRAWS = 400  # paired bootstrap draws of a shadow's metric differences
DELTA_MAX_ROWS = 2_000  # rows a draw holds at most; the spread is scaled to the real size
DELTA_POOL_ROWS = 10_000  # ids the draws are made from at most (a seeded sample of them)
DELTA_LEVEL = 0.95
DELTA_SEED = 10


def _predicted_class(
    value: float | None, name: str | None, task: str, threshold: float
) -> str | None:
    """The class a prediction names: a binary score in [0, 1] at ``threshold`` (the model's
    decision_threshold), another score at 0."""
    if name is not None:
        return name
    if value is None or not math.isfinite(value):
        return None
    if task == "binary_classification":
        return "1" if (value >= threshold if 0 <= value <= 1 else value > 0) else "0"
    return class_name(value)


def _agreement(task: str, shadow: list[Any], served: list[Any], threshold: float) -> float | None:
    if task == "regression":
        mine = np.array([np.nan if v is None else v for v, _ in shadow], dtype=np.float64)
        theirs = np.array([np.nan if v is None else v for v, _ in served], dtype=np.float64)
        keep = np.isfinite(mine) & np.isfinite(theirs)
        spread = float(theirs[keep].std()) if keep.sum() > 1 else 0.0
        if not spread > 0:
            return None
        return float(1 - np.abs(mine[keep] - theirs[keep]).mean() / spread)
    if task == "binary_classification":
        fast = _binary_agreement(shadow, served, threshold)
        if fast is not None:
            return fast
    pairs = [(_predicted_class(a[0], a[1], task, threshold),
              _predicted_class(b[0], b[1], task, threshold))
             for a, b in zip(shadow, served, strict=True)]  # fmt: skip
    known = [(a, b) for a, b in pairs if a is not None and b is not None]
    return sum(a == b for a, b in known) / len(known) if known else None


def _binary_agreement(shadow: list[Any], served: list[Any], threshold: float) -> float | None:
    """``_agreement`` of two binary models whose predictions are all numbers (the common case),
    in arrays: each a class by ``_predicted_class``'s rule; None when a class name is among
    them (the general path reads those)."""
    if any(c is not None for _, c in shadow) or any(c is not None for _, c in served):
        return None
    classes = []
    for predictions in (shadow, served):
        values = np.array([np.nan if v is None else v for v, _ in predictions], dtype=np.float64)
        with np.errstate(invalid="ignore"):
            unit = (values >= 0) & (values <= 1)
            classes.append(np.where(unit, values >= threshold, values > 0))
        classes.append(np.isfinite(values))
    mine, mine_known, theirs, theirs_known = classes
    known = mine_known & theirs_known
    return float(np.mean(mine[known] == theirs[known])) if known.any() else None


def _labeled(predictions: list[Any], labels: list[Any]) -> accuracy.Labeled:
    return accuracy.Labeled(
        prediction_values=np.array([np.nan if v is None else v for v, _ in predictions],
                                   dtype=np.float64),
        prediction_classes=[c for _, c in predictions],
        label_values=np.array([np.nan if v is None else v for v, _ in labels], dtype=np.float64),
        label_classes=[c for _, c in labels],
    )  # fmt: skip


def _binary_scores(predictions: list[Any], labels: list[Any]) -> tuple[Any, Any] | None:
    """Scores in [0, 1] and 0/1 labels as arrays, when every row has both (the common binary
    case, bootstrapped by counting); None otherwise."""
    if any(c is not None or v is None for v, c in predictions):
        return None
    if any(c is not None or v not in (0.0, 1.0) for v, c in labels):
        return None
    scores = np.array([v for v, _ in predictions], dtype=np.float64)
    if not (np.isfinite(scores).all() and ((scores >= 0) & (scores <= 1)).all()):
        return None
    return scores, np.array([v for v, _ in labels], dtype=np.float64)


def weighted_binary_metrics(
    scores: npt.NDArray[np.float64], truth: npt.NDArray[np.float64],
    weights: npt.NDArray[np.float64], threshold: float = 0.5,
) -> dict[str, npt.NDArray[np.float64]]:  # fmt: skip
    """``accuracy.binary``'s metrics of scores in [0, 1] (class at ``threshold``) against 0/1
    labels,
    each row of ``weights`` (draws x rows: how often each row was drawn) one weighted sample:
    the bootstrap by counting, in a few matrix products instead of a metric call a draw."""
    positive, predicted = truth == 1, scores >= threshold
    tp = weights @ (predicted & positive)
    fp = weights @ (predicted & ~positive)
    fn = weights @ (~predicted & positive)
    total = weights.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = {
            "accuracy": (total - fp - fn) / total,
            "precision": np.where(tp + fp > 0, tp / (tp + fp), 0.0),
            "recall": np.where(tp + fn > 0, tp / (tp + fn), 0.0),
            "f1": np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 0.0),
        }
        # ROC AUC: the weighted Mann-Whitney statistic over distinct scores (ties count half)
        order = np.argsort(scores, kind="stable")
        ordered = scores[order]
        starts = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1])))
        drawn = weights[:, order]
        pos = np.add.reduceat(drawn * positive[order], starts, axis=1)
        neg = np.add.reduceat(drawn * ~positive[order], starts, axis=1)
        below = np.cumsum(neg, axis=1) - neg
        pairs = pos.sum(axis=1) * neg.sum(axis=1)
        auc = (pos * (below + neg / 2)).sum(axis=1) / pairs
        out["roc_auc"] = np.where(pairs > 0, auc, np.nan)
        clipped = np.clip(scores, 1e-15, 1 - 1e-15)
        losses = -(truth * np.log(clipped) + (1 - truth) * np.log(1 - clipped))
        out["log_loss"] = np.where(pairs > 0, (weights @ losses) / total, np.nan)
    return out


def _numbers(predictions: list[Any], labels: list[Any]) -> tuple[Any, Any] | None:
    """Regression predictions and labels as arrays, when every row has both as finite
    numbers (the common case, bootstrapped by counting); None otherwise."""
    if any(c is not None for _, c in predictions) or any(c is not None for _, c in labels):
        return None
    values = np.array([np.nan if v is None else v for v, _ in predictions], dtype=np.float64)
    truth = np.array([np.nan if v is None else v for v, _ in labels], dtype=np.float64)
    if not (np.isfinite(values).all() and np.isfinite(truth).all()):
        return None
    return values, truth


def weighted_regression_metrics(
    values: npt.NDArray[np.float64], truth: npt.NDArray[np.float64],
    weights: npt.NDArray[np.float64], _threshold: float = 0.5,
) -> dict[str, npt.NDArray[np.float64]]:  # fmt: skip
    """``accuracy.regression``'s metrics, each row of ``weights`` one weighted sample (the
    bootstrap by counting, as ``weighted_binary_metrics``)."""
    errors = values - truth
    total = weights.sum(axis=1)
    squared = weights @ errors**2
    nonzero = truth != 0
    with np.errstate(invalid="ignore", divide="ignore"):
        spread = weights @ truth**2 - (weights @ truth) ** 2 / total
        ratios = np.where(nonzero, np.abs(errors) / np.where(nonzero, np.abs(truth), 1), 0.0)
        return {
            "mae": (weights @ np.abs(errors)) / total,
            "rmse": np.sqrt(squared / total),
            "r2": np.where(spread > 0, 1 - squared / spread, np.nan),
            "mape": (weights @ ratios) / (weights @ nonzero),
        }


def _delta_draws(task: str, shadow: list[Any], served: list[Any], labels: list[Any],
                 names: Sequence[str], threshold: float) -> dict[str, list[float]]:  # fmt: skip
    """The paired bootstrap's draws of shadow minus served per metric, ``DELTA_DRAWS`` draws
    of at most ``DELTA_MAX_ROWS`` ids. Of more than ``DELTA_POOL_ROWS`` ids, the draws are
    made from a seeded sample of that many (without replacement): the draws' spread at their
    size is estimated from it, and a draw's weights over every id of a million-row window
    would be gigabytes."""
    rng = np.random.default_rng([DELTA_SEED, len(labels)])
    if len(labels) > DELTA_POOL_ROWS:
        pool = np.sort(rng.choice(len(labels), DELTA_POOL_ROWS, replace=False)).tolist()
        shadow, served = [shadow[i] for i in pool], [served[i] for i in pool]
        labels = [labels[i] for i in pool]
    count = len(labels)
    size = min(count, DELTA_MAX_ROWS)
    picks = rng.integers(0, count, (DELTA_DRAWS, size))
    draws: dict[str, list[float]] = {name: [] for name in names}
    if task == "binary_classification":
        mine_form, theirs_form = _binary_scores(shadow, labels), _binary_scores(served, labels)
        weighted: Any = weighted_binary_metrics
    elif task == "regression":
        mine_form, theirs_form = _numbers(shadow, labels), _numbers(served, labels)
        weighted = weighted_regression_metrics
    else:
        mine_form = theirs_form = None
    if mine_form is not None and theirs_form is not None:
        weights = np.zeros((DELTA_DRAWS, count))
        np.add.at(weights, (np.arange(DELTA_DRAWS)[:, None], picks), 1.0)
        mine = weighted(*mine_form, weights, threshold)
        theirs = weighted(*theirs_form, weights, threshold)
        for name in names:
            if name in mine:
                differences = mine[name] - theirs[name]
                draws[name] = differences[np.isfinite(differences)].tolist()
        return draws
    for picked in picks.tolist():  # other tasks and forms: the metrics themselves, a draw each
        drawn_labels = [labels[i] for i in picked]
        mine_drawn = _labeled([shadow[i] for i in picked], drawn_labels)
        theirs_drawn = _labeled([served[i] for i in picked], drawn_labels)
        mine_metrics = accuracy.compute(task, mine_drawn, threshold) or {}
        theirs_metrics = accuracy.compute(task, theirs_drawn, threshold) or {}
        for name in names:
            if name in mine_metrics and name in theirs_metrics:
                draws[name].append(mine_metrics[name] - theirs_metrics[name])
    return draws


def analytic(mine: accuracy.Scored, theirs: accuracy.Scored) -> dict[str, Difference]:
    """The paired intervals that have a closed form, on rows both models were scored on
    alike (``driftwatch.stats.paired``): McNemar's for accuracy, DeLong's for roc_auc, the
    paired t for mae and log_loss, the delta method for rmse."""
    found: dict[str, paired.PairedInterval | None] = {}
    if mine.kind == "regression":
        errors, other = mine.y_pred - mine.y_true, theirs.y_pred - theirs.y_true
        found["mae"] = paired.paired_mean(np.abs(errors) - np.abs(other))
        found["rmse"] = paired.rmse_difference(errors, other)
    else:
        right, other_right = mine.y_pred == mine.y_true, theirs.y_pred == theirs.y_true
        found["accuracy"] = paired.matched_proportions(
            int((right & ~other_right).sum()), int((~right & other_right).sum()), len(right)
        )
        if mine.scores is not None and theirs.scores is not None:
            found["roc_auc"] = paired.delong(mine.y_true, mine.scores, theirs.scores)
            found["log_loss"] = paired.paired_mean(
                _losses(mine.y_true, mine.scores) - _losses(theirs.y_true, theirs.scores)
            )
    return {name: Difference(value=f.value, lower=f.lower, upper=f.upper, method=f.method,
                             p_value=f.p_value)
            for name, f in found.items() if f is not None}  # fmt: skip


def _losses(truth: npt.NDArray[np.float64], scores: npt.NDArray[np.float64]) -> Any:
    clipped = np.clip(scores, 1e-15, 1 - 1e-15)
    return -(truth * np.log(clipped) + (1 - truth) * np.log(1 - clipped))


def _deltas(task: str, shadow: list[Any], served: list[Any], labels: list[Any],
            observed: dict[str, float], threshold: float,
            closed: dict[str, Difference] | None = None) -> dict[str, Difference]:  # fmt: skip
    """Shadow minus served per metric: from ``closed`` (the closed-form intervals, see
    ``analytic``) where it has the metric, otherwise with a paired percentile bootstrap over
    the labeled ids (both models' metrics on the same drawn ids); draws of more than
    ``DELTA_MAX_ROWS`` ids are made at that size and their spread scaled by sqrt(that size /
    the ids)."""
    closed = closed or {}
    out = {name: closed[name].model_copy(update={"value": value})
           for name, value in observed.items() if name in closed}  # fmt: skip
    rest = {name: value for name, value in observed.items() if name not in closed}
    if not rest:
        return out
    count = len(labels)
    draws = _delta_draws(task, shadow, served, labels, list(rest), threshold)
    factor = math.sqrt(min(count, DELTA_MAX_ROWS) / count)
    tail = (1 - DELTA_LEVEL) / 2 * 100
    for name, value in rest.items():
        spread = np.asarray(draws[name])
        if spread.size < DELTA_DRAWS // 2:  # the metric is undefined on most draws
            continue
        low, middle, high = np.percentile(spread, [tail, 50, 100 - tail])
        out[name] = Difference(value=value, lower=value - (middle - low) * factor,
                               upper=value + (high - middle) * factor,
                               method="bootstrap")  # fmt: skip
    return {name: out[name] for name in observed if name in out}


def _alike(mine: accuracy.Scored, theirs: accuracy.Scored, rows: int) -> bool:
    """Whether both models were scored on every labeled row, in the same form: the rows are
    then pairs, as the closed-form intervals need."""
    if len(mine.y_true) != rows or len(theirs.y_true) != rows or mine.kind != theirs.kind:
        return False
    return mine.kind == "classes" or bool(np.array_equal(mine.y_true, theirs.y_true))


def shadows(task: str, rows: Sequence[Sequence[Any]], threshold: float = 0.5) -> list[VersionSlice]:
    """Each shadow version of the window, largest first (at most ``MAX_VERSIONS``): rows
    shared with the served model, agreement, accuracy on the shared labeled ids, and the paired
    differences. ``rows``: (version, value, class, served value, served class, label value,
    label class) per shadowed prediction (``repository.shadowed``)."""
    by_version: dict[str, list[Sequence[Any]]] = {}
    for row in rows:
        by_version.setdefault(row[0], []).append(row)
    ordered = sorted(by_version.items(), key=lambda item: (-len(item[1]), item[0]))
    out = []
    for version, own in ordered[:MAX_VERSIONS]:
        shadow = [(r[1], r[2]) for r in own]
        served = [(r[3], r[4]) for r in own]
        labeled = [i for i, r in enumerate(own) if r[5] is not None or r[6] is not None]
        labels = [(own[i][5], own[i][6]) for i in labeled]
        mine = theirs = None
        closed: dict[str, Difference] = {}
        if labeled:
            mine_scored = accuracy.evaluate(
                task, _labeled([shadow[i] for i in labeled], labels), threshold
            )
            theirs_scored = accuracy.evaluate(
                task, _labeled([served[i] for i in labeled], labels), threshold
            )
            mine = mine_scored[0] if mine_scored else None
            theirs = theirs_scored[0] if theirs_scored else None
            if mine_scored and theirs_scored and _alike(mine_scored[1], theirs_scored[1],
                                                         len(labeled)):  # fmt: skip
                closed = analytic(mine_scored[1], theirs_scored[1])
        observed = {name: value - theirs[name] for name, value in (mine or {}).items()
                    if theirs and name in theirs}  # fmt: skip
        out.append(VersionSlice(
            model_version=version, role="shadow", rows=len(own), labeled_rows=len(labeled),
            accuracy=mine, agreement=_agreement(task, shadow, served, threshold),
            delta=_deltas(task, [shadow[i] for i in labeled], [served[i] for i in labeled],
                          labels, observed, threshold, closed) if observed else {},
        ))  # fmt: skip
    return out
