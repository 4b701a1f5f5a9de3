"""Performance before labels arrive, for multiclass classification: CBPE one class against the
rest (after NannyML's multiclass CBPE; our own code). CONTRACT section 9. Pure.

A baseline with labels and per-class probabilities keeps its labeled rows: the K probabilities
and the label. When it is made, each class's probability is checked for calibration against
the indicator of that class (Hosmer-Lemeshow over ten deciles, as the binary case,
``estimation.calibration_check``); a class whose probabilities fail it is mapped through an
isotonic regression fitted on (probability of k, [label = k]). The K calibrated probabilities
of a row are then divided by their sum (NannyML does the same; uniform where all are 0), so
that they are a distribution over the classes again.

A window's rows are predicted the class of highest probability (the first in sorted order
among ties, as ingest stores it). With calibrated probabilities ``p_ik``, class k's expected
confusion matrix is E[TP_k] = sum of p_ik over rows predicted k, E[FP_k] = (rows predicted k)
- E[TP_k], E[FN_k] = sum of p_ik over the other rows; precision_k, recall_k and F1_k follow as
in the binary case, and the estimates are their macro averages (over the classes predicted in
the window or of positive expected count); accuracy is sum_k E[TP_k] / n, the mean calibrated
probability of the predicted class. ROC AUC is class k's expected AUC of its raw probability
against [label = k] (the binary case's formula, ``estimation._expected_auc``, with p_ik as
each row's chance of being positive), macro-averaged over the classes.

Interval: as the binary case. Labels are drawn from each row's calibrated distribution
(Categorical(p_i)), and the realized metrics computed on each draw as scikit-learn would
(macro averages over the classes present in the draw's truth or predictions; ROC AUC one
against the rest, macro over the classes the draw holds on both sides); with isotonic
calibrators, each block of draws uses probabilities calibrated by fits on one bootstrap
resample of the baseline's rows (the estimate's own error; the bias the bootstrap shows is
taken off, basic bootstrap). The 2.5% and 97.5% percentiles are the bounds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats

from driftwatch.core.result import Estimate
from driftwatch.monitoring import estimation
from driftwatch.monitoring.estimation import Calibrator, FloatArray

IntArray = npt.NDArray[np.int64]
KIND = "multiclass"
# Why a run has no estimate, beyond the binary case's (README)
BASELINE_WITHOUT_PROBABILITIES = "baseline_without_probabilities"
CLASSES_DIFFER = "classes_differ_from_baseline"
METRICS = estimation.METRICS  # roc_auc, accuracy, f1, precision, recall


@dataclass(slots=True)
class LabeledProbabilities:
    """A multiclass baseline's labeled rows: ``scores`` (rows, classes) in ``classes`` order,
    ``labels`` the index of each row's label in ``classes`` (-1: a label of none of them), and
    the calibration check per class (or ``check`` says why there is none: {"reason": ...})."""

    classes: list[str]
    scores: FloatArray
    labels: IntArray
    check: dict[str, Any]
    _calibrators: list[Calibrator] | None = field(default=None, repr=False)

    @property
    def usable(self) -> bool:
        return "reason" not in self.check

    @property
    def nbytes(self) -> int:
        return int(self.scores.nbytes + self.labels.nbytes)

    def calibrators(self) -> list[Calibrator]:
        """Each class's calibration map (fitted once, then kept with the cached profile)."""
        if self._calibrators is None:
            checks = self.check["per_class"]
            self._calibrators = [
                estimation.fit_calibrator(
                    self.scores[:, k], (self.labels == k).astype(np.float64), checks[name]
                )
                for k, name in enumerate(self.classes)
            ]
        return self._calibrators

    def to_bytes(self) -> bytes:
        """Stored form: the scores class by class, then the labels, as float64."""
        flat = np.concatenate([self.scores.T.reshape(-1), self.labels.astype(np.float64)])
        return flat.astype("<f8").tobytes()


def unusable(reason: str) -> LabeledProbabilities:
    return LabeledProbabilities([], np.empty((0, 0)), np.empty(0, dtype=np.int64),
                                {"kind": KIND, "reason": reason})  # fmt: skip


def from_bytes(buffer: bytes, check: dict[str, Any]) -> LabeledProbabilities:
    classes = [str(name) for name in check["classes"]]
    values = np.frombuffer(buffer, dtype="<f8")
    rows = len(values) // (len(classes) + 1)
    scores = values[: rows * len(classes)].reshape(len(classes), rows).T
    labels = values[rows * len(classes) :].astype(np.int64)
    return LabeledProbabilities(classes, scores, labels, dict(check))


def labeled_probabilities(
    scores: FloatArray, labels: list[str], classes: list[str]
) -> LabeledProbabilities:
    """A baseline's labeled rows (probabilities in ``classes`` order, label names), checked:
    enough rows, each class on both sides often enough, each class's calibration."""
    if len(scores) == 0:
        return unusable(estimation.BASELINE_WITHOUT_LABELS)
    index = {name: k for k, name in enumerate(classes)}
    codes = np.array([index.get(name, -1) for name in labels], dtype=np.int64)
    counts = np.bincount(codes[codes >= 0], minlength=len(classes))
    if (
        len(codes) < estimation.MIN_LABELED
        or min(int(counts.min()), int(len(codes) - counts.max())) < estimation.MIN_PER_CLASS
    ):
        return unusable(estimation.TOO_FEW_BASELINE_LABELS)
    if len(codes) > estimation.MAX_KEPT_PAIRS:
        rng = np.random.default_rng(estimation.SEED)
        keep = np.sort(rng.choice(len(codes), estimation.MAX_KEPT_PAIRS, False))
        scores, codes = scores[keep], codes[keep]
    per_class = {
        name: estimation.calibration_check(scores[:, k], (codes == k).astype(np.float64))
        for k, name in enumerate(classes)
    }
    check = {
        "kind": KIND, "classes": list(classes), "labeled_rows": len(codes),
        "calibrated": all(c["calibrated"] for c in per_class.values()), "per_class": per_class,
    }  # fmt: skip
    return LabeledProbabilities(list(classes), scores, codes, check)


# -- a window ------------------------------------------------------------------------------


def calibrate(
    scores: FloatArray, calibrators: list[Calibrator], replicate: int | None
) -> FloatArray:
    """Each class's probability through its calibrator (``replicate``: the bootstrap fit of
    that number where the class has one; None: the fit on all rows), rows then normalised."""
    columns = []
    for k, calibrator in enumerate(calibrators):
        fit = calibrator.point
        if replicate is not None and calibrator.replicates:
            fit = calibrator.replicates[replicate]
        columns.append(calibrator.apply(scores[:, k], fit))
    calibrated = np.column_stack(columns)
    total = calibrated.sum(axis=1, keepdims=True)
    uniform = np.full_like(calibrated, 1 / calibrated.shape[1])
    normalised: FloatArray = np.divide(calibrated, total, out=uniform, where=total > 0)
    return normalised


@dataclass(slots=True)
class _Window:
    """What the metrics of a window's rows need besides the probabilities: the predicted
    class of each row, and per class the groups and mid-ranks of its raw probability."""

    predicted: IntArray
    groups: list[npt.NDArray[np.intp]]
    ranks: list[FloatArray]

    @classmethod
    def of(cls, scores: FloatArray, ranks: bool = False) -> _Window:
        k = scores.shape[1]
        return cls(
            predicted=np.argmax(scores, axis=1).astype(np.int64),
            groups=[estimation.score_groups(scores[:, j]) for j in range(k)],
            ranks=[stats.rankdata(scores[:, j]) for j in range(k)] if ranks else [],
        )


def _macro(values: FloatArray, present: npt.NDArray[np.bool_]) -> FloatArray:
    """Mean over the present classes (last axis)."""
    shown = present.sum(axis=-1)
    macro: FloatArray = np.where(
        shown > 0, (values * present).sum(axis=-1) / np.maximum(shown, 1), np.nan
    )
    return macro


def _from_counts(
    tp: FloatArray, predicted: FloatArray, actual: FloatArray, n: int
) -> dict[str, FloatArray]:
    """Accuracy and macro precision, recall and F1 from per-class counts (last axis)."""
    present = (predicted > 0) | (actual > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(predicted > 0, tp / np.where(predicted > 0, predicted, 1), 0.0)
        recall = np.where(actual > 0, tp / np.where(actual > 0, actual, 1), 0.0)
        denominator = predicted + actual
        f1 = np.where(denominator > 0, 2 * tp / np.where(denominator > 0, denominator, 1), 0.0)
    return {
        "accuracy": tp.sum(axis=-1) / n,
        "precision": _macro(precision, present),
        "recall": _macro(recall, present),
        "f1": _macro(f1, present),
    }


def expected_metrics(p: FloatArray, window: _Window) -> dict[str, float]:
    """The CBPE estimates from calibrated probabilities ``p`` (module docstring)."""
    n, k = p.shape
    called = np.bincount(window.predicted, minlength=k).astype(np.float64)
    tp: FloatArray = np.bincount(
        window.predicted, weights=p[np.arange(n), window.predicted], minlength=k
    ).astype(np.float64)
    actual: FloatArray = p.sum(axis=0)
    out = {name: float(v) for name, v in _from_counts(tp, called, actual, n).items()}
    aucs = [estimation._expected_auc(p[:, j], window.groups[j]) for j in range(k)]
    defined = [a for a in aucs if a is not None]
    if defined:
        out["roc_auc"] = float(np.mean(defined))
    return {name: v for name, v in out.items() if math.isfinite(v)}


def _realized(u: FloatArray, edges: FloatArray, window: _Window, k: int) -> FloatArray:
    """Per draw of labels (row r of ``u``: row i's label is the class j whose interval
    [edges[i, j], edges[i, j + 1]) holds u[r, i]), the realized metrics in ``METRICS``
    order, as scikit-learn computes them (macro, zero_division 0)."""
    n = u.shape[1]
    called = np.bincount(window.predicted, minlength=k).astype(np.float64)
    tp = np.empty((len(u), k))
    actual = np.empty((len(u), k))
    aucs = np.empty((len(u), k))
    for j in range(k):
        y = ((u >= edges[:, j]) & (u < edges[:, j + 1])).astype(np.float64)
        # one product gives the class's true positives, its rank sum and its positives
        columns = np.column_stack(
            [(window.predicted == j).astype(np.float64), window.ranks[j], np.ones(n)]
        )
        tp[:, j], ranked, positives = (y @ columns).T
        actual[:, j] = positives
        with np.errstate(invalid="ignore", divide="ignore"):
            aucs[:, j] = (ranked - positives * (positives + 1) / 2) / (positives * (n - positives))
    counts = _from_counts(tp, np.broadcast_to(called, tp.shape), actual, n)
    defined = np.isfinite(aucs)
    auc = _macro(np.where(defined, aucs, 0.0), defined)
    return np.stack([auc, counts["accuracy"], counts["f1"], counts["precision"],
                     counts["recall"]], axis=1)  # fmt: skip


def _row(metrics: dict[str, float]) -> FloatArray:
    """Metrics in ``METRICS`` order (NaN: undefined)."""
    return np.array([metrics.get(name, math.nan) for name in METRICS])


def _simulate(
    p: FloatArray, window: _Window, centre: FloatArray, draws: int, rng: np.random.Generator
) -> FloatArray:
    """Realized metrics of ``draws`` label draws from ``p``, minus ``centre``, the metrics
    expected from ``p`` (their noise at this sample's size)."""
    n, k = p.shape
    cumulative = np.cumsum(p, axis=1)
    # class j's interval of u: [cumulative before j, cumulative to j); the last one open above
    edges = np.column_stack([np.zeros(n), cumulative[:, :-1], np.full(n, np.inf)])
    block = max(1, estimation._CHUNK_CELLS // n)
    out = [
        _realized(rng.random((min(block, draws - done), n)), edges, window, k) - centre
        for done in range(0, draws, block)
    ]
    return np.concatenate(out)


def _refusal(
    scores: FloatArray | None, classes: list[str] | None, baseline: LabeledProbabilities | None
) -> str | None:
    if baseline is None:
        return estimation.BASELINE_WITHOUT_LABELS
    if not baseline.usable:
        return str(baseline.check["reason"])
    if scores is None:
        return estimation.SCORES_MISSING
    if len(scores) == 0:
        return estimation.NO_PREDICTIONS
    if list(classes or ()) != baseline.classes:
        return CLASSES_DIFFER
    if not bool(np.all(np.isfinite(scores))):
        return estimation.SCORES_MISSING
    return None


def estimate(
    scores: FloatArray | None, classes: list[str] | None, baseline: LabeledProbabilities | None
) -> tuple[dict[str, Estimate] | None, str | None]:
    """The window's estimates (or None, and why) from its per-class probabilities (``scores``,
    rows x ``classes``; NaN rows: predictions given as a class)."""
    refusal = _refusal(scores, classes, baseline)
    if refusal is not None:
        return None, refusal
    assert scores is not None
    assert baseline is not None
    calibrators = baseline.calibrators()
    rng = np.random.default_rng(estimation.SEED)
    n, k = scores.shape
    window = _Window.of(scores)
    calibrated = calibrate(scores, calibrators, None)
    point = expected_metrics(calibrated, window)
    sample = np.arange(n)
    subsampled = n > estimation.MAX_SIMULATED_ROWS
    if subsampled:  # a subsample's label noise, scaled to the window
        sample = np.sort(rng.choice(n, estimation.MAX_SIMULATED_ROWS, replace=False))
    scale = math.sqrt(len(sample) / n)
    sampled = _Window.of(scores[sample], ranks=True)
    cells = estimation.SIMULATED_CELLS // (len(sample) * k)
    draws = int(min(estimation.DRAWS, max(estimation.MIN_DRAWS, cells)))
    bootstrapped = any(c.replicates for c in calibrators)
    fits: list[int | None] = (
        list(range(estimation.CALIBRATOR_REPLICATES)) if bootstrapped else [None]
    )
    per_fit = max(1, draws // len(fits))
    point_row = _row(point)
    # A replicate's shift from the point estimate is measured on the sample (the whole window
    # unless it is over MAX_SIMULATED_ROWS rows): a million rows calibrated once, not 21 times.
    on_sample = _row(expected_metrics(calibrated[sample], sampled)) if subsampled else point_row
    centres, noises = [], []
    for fit in fits:
        p = calibrated[sample] if fit is None else calibrate(scores[sample], calibrators, fit)
        replicate = _row(expected_metrics(p, sampled))
        centres.append(list(point_row + replicate - on_sample))
        noises.append(_simulate(p, sampled, replicate, per_fit, rng))
    return _estimates(point, centres, noises, scale, bootstrapped), None


def _estimates(
    point: dict[str, float], centres: list[list[float]], noises: list[FloatArray], scale: float,
    bootstrapped: bool,
) -> dict[str, Estimate]:  # fmt: skip
    """Values and 95% bounds from the point estimates, each calibration replicate's estimates
    (``centres``) and the label noise simulated around each (``noises``)."""
    values = np.array([point.get(name, math.nan) for name in METRICS])
    if bootstrapped:  # the basic bootstrap, as the binary case (estimation.estimate)
        reflected = 2 * values - np.array(centres)
        values = reflected.mean(axis=0)
        centres = [list(row) for row in reflected]
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
    return out
