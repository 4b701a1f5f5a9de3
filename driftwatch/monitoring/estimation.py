"""Performance before labels arrive, for binary classification: confidence-based performance
estimation (CBPE, after NannyML's; our own code). CONTRACT section 9. Pure.

A baseline with labels and scores in [0, 1] keeps its labeled (score, label) pairs. When it is
made, their calibration is checked (Hosmer-Lemeshow over ten score deciles); scores that fail
the check are mapped through an isotonic regression fitted on the pairs. A window's calibrated
scores p_i are then each row's probability of the positive class, and the confusion matrix
expected at the model's decision threshold gives the metrics: with the predicted class
c_i = [s_i >= threshold], E[TP] = sum of p_i over c_i = 1, E[FP] = sum of 1 - p_i over c_i = 1,
E[FN] = sum of p_i over c_i = 0, E[TN] the rest; accuracy (E[TP] + E[TN]) / n, precision
E[TP] / (E[TP] + E[FP]), recall E[TP] / (E[TP] + E[FN]), F1 2 E[TP] / (2 E[TP] + E[FP] + E[FN]).
ROC AUC is the expected share of (positive, negative) pairs ranked right: the sum over pairs
i != j of p_i (1 - p_j) ([s_i > s_j] + [s_i = s_j] / 2), over the sum over i != j of
p_i (1 - p_j) (NannyML's curve of expected rates counts the pairs i = j too: O(1/n) apart).

Interval: where the realized metric will land once the window's labels arrive. Labels are drawn
Bernoulli(p_i), row by row, and the realized metric computed on each draw (the metric's own
noise at the window's size); with an isotonic calibrator, each block of draws uses the scores
calibrated by a fit on a bootstrap resample of the baseline's pairs (the estimate's own error).
The 2.5% and 97.5% percentiles of the draws are the bounds. Seeded; draws x rows bounded, with
windows over ``MAX_SIMULATED_ROWS`` rows simulated on a subsample whose spread is rescaled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats
from sklearn.isotonic import IsotonicRegression

from driftwatch.core.result import Estimate

FloatArray = npt.NDArray[np.float64]

SEED = 20261203
MIN_LABELED = 100  # labeled baseline pairs an estimate needs
MIN_PER_CLASS = 10  # ... and of each class at least
MAX_KEPT_PAIRS = 200_000  # a larger baseline keeps a seeded random sample of its pairs
CALIBRATION_BINS = 10
CALIBRATION_LEVEL = 0.05  # Hosmer-Lemeshow p-value below it: scores are recalibrated
CALIBRATOR_REPLICATES = 20  # isotonic fits on bootstrap resamples of the baseline's pairs
DRAWS = 1000  # label draws per window (fewer for large windows, never under MIN_DRAWS)
MIN_DRAWS = 200
SIMULATED_CELLS = 20_000_000  # draws x rows simulated, at most (beyond MIN_DRAWS)
MAX_SIMULATED_ROWS = 50_000
_CHUNK_CELLS = 2_000_000

# Why a run has no estimate (RunResult.estimated_reason; the README lists them)
UNSUPPORTED_TASK = "unsupported_task"
BASELINE_WITHOUT_LABELS = "baseline_without_labels"
TOO_FEW_BASELINE_LABELS = "too_few_baseline_labels"
BASELINE_WITHOUT_SCORES = "baseline_without_scores"
BASELINE_SCORES_OUTSIDE_UNIT_INTERVAL = "baseline_scores_outside_unit_interval"
NO_PREDICTIONS = "no_predictions"
SCORES_MISSING = "scores_missing"
SCORES_OUTSIDE_UNIT_INTERVAL = "scores_outside_unit_interval"
# a window computed from its summaries has no row-level scores to calibrate
FROM_SUMMARIES = "computed_from_summaries"

METRICS = ("roc_auc", "accuracy", "f1", "precision", "recall")


@dataclass(slots=True)
class LabeledScores:
    """A baseline's labeled (score, label) pairs, and the calibration check made on them (or,
    with no pairs, ``check`` says why: {"reason": ...})."""

    scores: FloatArray
    labels: FloatArray
    check: dict[str, Any]
    _calibrator: Calibrator | None = field(default=None, repr=False)

    @property
    def usable(self) -> bool:
        return "reason" not in self.check

    @property
    def nbytes(self) -> int:
        return int(self.scores.nbytes + self.labels.nbytes)

    def calibrator(self) -> Calibrator:
        """The scores' calibration map (fitted once, then kept with the cached profile)."""
        if self._calibrator is None:
            self._calibrator = fit_calibrator(self.scores, self.labels, self.check)
        return self._calibrator


def unusable(reason: str) -> LabeledScores:
    empty = np.empty(0, dtype=np.float64)
    return LabeledScores(empty, empty, {"reason": reason})


def labeled_scores(scores: FloatArray, labels: FloatArray) -> LabeledScores:
    """A baseline's pairs (labels 0/1, scores that should be probabilities), checked."""
    if len(scores) == 0:
        return unusable(BASELINE_WITHOUT_LABELS)
    if not bool(np.all((scores >= 0) & (scores <= 1))):
        return unusable(BASELINE_SCORES_OUTSIDE_UNIT_INTERVAL)
    positives = int(labels.sum())
    if len(scores) < MIN_LABELED or min(positives, len(scores) - positives) < MIN_PER_CLASS:
        return unusable(TOO_FEW_BASELINE_LABELS)
    if len(scores) > MAX_KEPT_PAIRS:
        keep = np.sort(np.random.default_rng(SEED).choice(len(scores), MAX_KEPT_PAIRS, False))
        scores, labels = scores[keep], labels[keep]
    return LabeledScores(scores, labels, calibration_check(scores, labels))


def calibration_check(scores: FloatArray, labels: FloatArray) -> dict[str, Any]:
    """Hosmer-Lemeshow over score deciles (the scores are not fitted on these labels, so the
    statistic is referred to chi-squared with as many degrees of freedom as bins), and the
    expected calibration error over the same bins, for the record."""
    order = np.argsort(scores, kind="stable")
    bins = np.array_split(order, CALIBRATION_BINS)
    statistic = ece = 0.0
    used = 0
    for members in bins:
        if len(members) == 0:
            continue
        used += 1
        expected, observed = float(scores[members].sum()), float(labels[members].sum())
        size = len(members)
        variance = expected * (1 - expected / size)
        if variance > 0:
            statistic += (observed - expected) ** 2 / variance
        elif observed != expected:  # a bin the scores call certain, and wrongly
            statistic = math.inf
        ece += abs(observed - expected) / len(scores)
    p_value = float(stats.chi2.sf(statistic, used)) if used else 1.0
    calibrated = p_value >= CALIBRATION_LEVEL
    return {
        "method": "hosmer_lemeshow", "bins": used, "statistic": statistic,
        "p_value": p_value, "ece": ece, "labeled_rows": len(scores),
        "calibrated": calibrated, "calibrator": "identity" if calibrated else "isotonic",
    }  # fmt: skip


@dataclass(slots=True)
class Calibrator:
    """Calibrated probabilities from scores: the identity, or isotonic fits (the one on all
    pairs, and ``CALIBRATOR_REPLICATES`` on bootstrap resamples), each as its step points."""

    point: tuple[FloatArray, FloatArray] | None = None  # None: the identity
    replicates: list[tuple[FloatArray, FloatArray]] = field(default_factory=list)

    def apply(self, scores: FloatArray, fit: tuple[FloatArray, FloatArray] | None) -> FloatArray:
        if fit is None:
            return scores
        return np.interp(scores, fit[0], fit[1])  # isotonic's predict, clipped at the ends


def _isotonic(scores: FloatArray, labels: FloatArray) -> tuple[FloatArray, FloatArray]:
    model = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(scores, labels)
    return (
        np.asarray(model.X_thresholds_, dtype=np.float64),
        np.asarray(model.y_thresholds_, dtype=np.float64),
    )


def fit_calibrator(scores: FloatArray, labels: FloatArray, check: dict[str, Any]) -> Calibrator:
    if check.get("calibrated"):
        return Calibrator()
    rng = np.random.default_rng(SEED)
    replicates = []
    for _ in range(CALIBRATOR_REPLICATES):
        resample = rng.integers(0, len(scores), size=len(scores))
        replicates.append(_isotonic(scores[resample], labels[resample]))
    return Calibrator(_isotonic(scores, labels), replicates)


# -- a window ------------------------------------------------------------------------------


def score_groups(scores: FloatArray) -> npt.NDArray[np.intp]:
    """Each row's rank among the distinct scores (tied scores share one)."""
    return np.unique(scores, return_inverse=True)[1].reshape(-1)


def expected_metrics(
    p: FloatArray, predicted: npt.NDArray[np.bool_], groups: npt.NDArray[np.intp]
) -> dict[str, float]:
    """The CBPE estimates from calibrated probabilities ``p`` of rows whose scores fall in
    ``groups`` (``score_groups``) and are called positive where ``predicted`` (module
    docstring)."""
    n = len(p)
    tp = float(p[predicted].sum())
    fp = float(predicted.sum()) - tp
    fn = float(p[~predicted].sum())
    tn = n - tp - fp - fn
    out = {
        "accuracy": (tp + tn) / n,
        "precision": tp / (tp + fp) if tp + fp > 0 else 0.0,
        "recall": tp / (tp + fn) if tp + fn > 0 else 0.0,
        "f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn > 0 else 0.0,
    }
    auc = _expected_auc(p, groups)
    if auc is not None:
        out["roc_auc"] = auc
    return out


def _expected_auc(p: FloatArray, group: npt.NDArray[np.intp]) -> float | None:
    q = 1 - p
    group_p = np.bincount(group, weights=p)
    above = p.sum() - np.cumsum(group_p)  # per group: sum of p over higher scores
    numerator = float(np.sum(q * (above[group] + 0.5 * (group_p[group] - p))))
    denominator = float(p.sum() * q.sum() - np.sum(p * q))
    return numerator / denominator if denominator > 0 else None


def _realized(
    drawn: npt.NDArray[np.bool_], predicted: npt.NDArray[np.bool_], ranks: FloatArray
) -> FloatArray:
    """Per draw of labels (rows of ``drawn``), the realized metrics in ``METRICS`` order, as
    scikit-learn computes them (zero_division 0; AUC undefined, NaN, without both classes)."""
    y = drawn.astype(np.float64)
    n = drawn.shape[1]
    tp = y @ predicted.astype(np.float64)
    positives = y.sum(axis=1)
    called = float(predicted.sum())
    fp, fn = called - tp, positives - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = (y @ ranks - positives * (positives + 1) / 2) / (positives * (n - positives))
        precision = tp / called if called > 0 else np.zeros_like(tp)
        recall = np.where(positives > 0, tp / np.maximum(positives, 1), 0.0)
        f1 = np.where(tp + fp + fn > 0, 2 * tp / np.maximum(2 * tp + fp + fn, 1), 0.0)
    accuracy = (n - fp - fn) / n
    return np.stack([auc, accuracy, f1, precision, recall], axis=1)


def _simulate(
    p: FloatArray, predicted: npt.NDArray[np.bool_], groups: npt.NDArray[np.intp],
    ranks: FloatArray, draws: int, rng: np.random.Generator,
) -> FloatArray:  # fmt: skip
    """Realized metrics of ``draws`` label draws from ``p``, minus the metrics expected from
    ``p`` (their noise at this sample's size); ``ranks``: the scores' mid-ranks."""
    expected = expected_metrics(p, predicted, groups)
    centre = np.array([expected.get(name, math.nan) for name in METRICS])
    block = max(1, _CHUNK_CELLS // len(p))
    out = [
        _realized(rng.random((min(block, draws - done), len(p))) < p, predicted, ranks) - centre
        for done in range(0, draws, block)
    ]
    return np.concatenate(out)


def estimate(
    scores: FloatArray, baseline: LabeledScores | None, threshold: float
) -> tuple[dict[str, Estimate] | None, str | None]:
    """The window's estimates (or None, and why) from its scores (NaN: a row without one)."""
    if baseline is None:
        return None, BASELINE_WITHOUT_LABELS
    if not baseline.usable:
        return None, str(baseline.check["reason"])
    if len(scores) == 0:
        return None, NO_PREDICTIONS
    if not bool(np.all(np.isfinite(scores))):
        return None, SCORES_MISSING
    if not bool(np.all((scores >= 0) & (scores <= 1))):
        return None, SCORES_OUTSIDE_UNIT_INTERVAL
    calibrator = baseline.calibrator()
    rng = np.random.default_rng(SEED)
    n = len(scores)
    predicted = scores >= threshold
    groups = score_groups(scores)
    point = expected_metrics(calibrator.apply(scores, calibrator.point), predicted, groups)
    sample = np.arange(n)
    if n > MAX_SIMULATED_ROWS:  # the label noise of a subsample, scaled to the window's size
        sample = np.sort(rng.choice(n, MAX_SIMULATED_ROWS, replace=False))
    scale = math.sqrt(len(sample) / n)
    sample_groups = score_groups(scores[sample])
    ranks = stats.rankdata(scores[sample])
    draws = int(min(DRAWS, max(MIN_DRAWS, SIMULATED_CELLS // len(sample))))
    fits: list[tuple[FloatArray, FloatArray] | None] = [*calibrator.replicates] or [
        calibrator.point
    ]
    per_fit = max(1, draws // len(fits))
    centres, noises = [], []
    for fit in fits:
        p = calibrator.apply(scores, fit)
        replicate = expected_metrics(p, predicted, groups)
        centres.append([replicate.get(name, math.nan) for name in METRICS])
        noises.append(_simulate(p[sample], predicted[sample], sample_groups, ranks, per_fit, rng))
    values = np.array([point.get(name, math.nan) for name in METRICS])
    if calibrator.replicates:
        # The isotonic fit is biased where its blocks are few (at the ends of the scores):
        # the bootstrap's bias (mean of the replicates less the fit on all pairs) is taken
        # off, and each replicate is reflected about the fit (the basic bootstrap).
        reflected = 2 * values - np.array(centres)
        values = reflected.mean(axis=0)
        centres = list(reflected)
    simulated = np.concatenate([
        np.asarray(centre) + noise * scale for centre, noise in zip(centres, noises, strict=True)
    ])  # fmt: skip
    out: dict[str, Estimate] = {}
    for index, name in enumerate(METRICS):
        column = simulated[:, index]
        column = column[np.isfinite(column)]
        value = float(np.clip(values[index], 0.0, 1.0))
        if name not in point or len(column) < len(simulated) * 0.9 or not math.isfinite(value):
            continue
        low, high = np.clip(np.percentile(column, [2.5, 97.5]), 0.0, 1.0)
        out[name] = Estimate(value=value, lower=float(min(low, value)),
                             upper=float(max(high, value)))  # fmt: skip
    return out, None
