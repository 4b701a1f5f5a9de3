"""Model quality over a window's labeled predictions (scikit-learn metrics). Pure.

Labels and predictions are normalised at ingest (``driftwatch.ingest.validation``); the same
rules are applied again here, so that rows stored before them (a binary label "1" kept as a
class name) read as they are meant. A row whose label and prediction still do not compare (a
class name against a score) is left out, and logged, rather than counted as a wrong answer.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import stats
from sklearn import metrics

from driftwatch.ingest.validation import (
    BINARY,
    REGRESSION,
    class_name,
    describe,
    number_in_text,
    prediction_value,
    zero_or_one,
)

log = logging.getLogger("driftwatch.accuracy")
FloatArray = npt.NDArray[np.float64]


@dataclass(slots=True)
class Labeled:
    """The window's predictions that have a label, aligned."""

    prediction_values: FloatArray  # NaN where the prediction is a class
    prediction_classes: list[str | None]
    label_values: FloatArray  # NaN where the label is a class
    label_classes: list[str | None]
    # the model_version each prediction was logged with (None: not read)
    versions: list[str | None] | None = None
    # where each prediction's features are stored (chunk id, row in the chunk; None: not
    # read), to find its window row: its segment
    chunk_ids: npt.NDArray[np.int64] | None = None
    chunk_rows: npt.NDArray[np.int64] | None = None
    # a multiclass model's per-class probabilities, (rows, score_classes), NaN on rows
    # without them (None: none read)
    prediction_scores: FloatArray | None = None
    score_classes: list[str] | None = None

    def __len__(self) -> int:
        return len(self.prediction_values)

    def subset(self, keep: npt.NDArray[np.int64]) -> Labeled:
        """The labeled predictions at positions ``keep``."""
        positions = keep.tolist()
        return Labeled(
            prediction_values=self.prediction_values[keep],
            prediction_classes=[self.prediction_classes[i] for i in positions],
            label_values=self.label_values[keep],
            label_classes=[self.label_classes[i] for i in positions],
            versions=None if self.versions is None else [self.versions[i] for i in positions],
            chunk_ids=None if self.chunk_ids is None else self.chunk_ids[keep],
            chunk_rows=None if self.chunk_rows is None else self.chunk_rows[keep],
        )

    def of_version(self, version: str | None) -> Labeled:
        """The labeled predictions logged with ``version``."""
        assert self.versions is not None
        keep = [i for i, v in enumerate(self.versions) if v == version]
        return Labeled(
            prediction_values=self.prediction_values[keep],
            prediction_classes=[self.prediction_classes[i] for i in keep],
            label_values=self.label_values[keep],
            label_classes=[self.label_classes[i] for i in keep],
            versions=[version] * len(keep),
            prediction_scores=(
                None if self.prediction_scores is None else self.prediction_scores[keep]
            ),
            score_classes=self.score_classes,
        )


@dataclass(slots=True)
class Scored:
    """What a window's metrics were computed on, aligned (for their intervals): binary 0/1
    labels and predicted classes (and the scores, when they are probabilities), class names,
    or regression values."""

    kind: Literal["binary", "classes", "regression"]
    y_true: npt.NDArray[np.float64]  # binary: 0/1; regression: values; classes: class codes
    y_pred: npt.NDArray[np.float64]
    scores: FloatArray | None = None  # binary probabilities in [0, 1]
    classes: int = 2  # classes: how many distinct names the codes count
    # a multiclass model's per-class probabilities (rows, classes) and each row's label as an
    # index into those classes (-1: none of them): what its one-vs-rest ROC AUC is computed on
    class_scores: FloatArray | None = None
    score_labels: npt.NDArray[np.int64] | None = None


def _finite(values: dict[str, float]) -> dict[str, float]:
    return {k: float(v) for k, v in values.items() if v is not None and math.isfinite(v)}


def _texts(values: FloatArray, classes: list[str | None]) -> list[str]:
    """Class names, numbers written one way (1.0, 1 and "1" are "1")."""
    return [
        class_name(name if name is not None else value)
        for value, name in zip(values.tolist(), classes, strict=True)
    ]


def _numbers(values: FloatArray, classes: list[str | None]) -> FloatArray:
    """Numbers, those stored as text included; NaN where a class name is no number."""
    out = values.copy()
    for index, name in enumerate(classes):
        if name is not None:
            number = number_in_text(name)
            out[index] = math.nan if number is None else number
    return out


def _left_out(total: int, kept: int, why: Counter[str]) -> None:
    if kept < total:
        reasons = "; ".join(f"{count} with {reason}" for reason, count in (+why).most_common(3))
        log.warning(
            "accuracy: %d of %d labeled predictions left out, as label and prediction do not "
            "compare (%s)", total - kept, total, reasons,
        )  # fmt: skip


def regression(labeled: Labeled) -> tuple[dict[str, float], Scored] | None:
    y_true = _numbers(labeled.label_values, labeled.label_classes)
    y_pred = _numbers(labeled.prediction_values, labeled.prediction_classes)
    keep = np.isfinite(y_true) & np.isfinite(y_pred)
    why = Counter({"a label that is no number": int((~np.isfinite(y_true)).sum())})
    why["a prediction that is no number"] = int((np.isfinite(y_true) & ~keep).sum())
    _left_out(len(labeled), int(keep.sum()), why)
    y_true, y_pred = y_true[keep], y_pred[keep]
    if len(y_true) == 0:
        return None
    result = {
        "mae": metrics.mean_absolute_error(y_true, y_pred),
        "rmse": math.sqrt(metrics.mean_squared_error(y_true, y_pred)),
        "r2": metrics.r2_score(y_true, y_pred) if len(y_true) > 1 else math.nan,
    }
    nonzero = y_true != 0  # MAPE is undefined where the truth is 0; those rows are left out
    if nonzero.any():
        result["mape"] = float(
            np.mean(np.abs((y_true[nonzero] - y_pred[nonzero]) / y_true[nonzero]))
        )
    return _finite(result), Scored("regression", y_true, y_pred)


def _binary_labels(labeled: Labeled) -> tuple[FloatArray, list[str | None]]:
    """Labels as 0/1 (NaN where not), and the class names among them."""
    values = labeled.label_values
    zero_one = np.where((values == 0) | (values == 1), values, np.nan)
    names: list[str | None] = [None] * len(values)
    for index, name in enumerate(labeled.label_classes):
        if name is not None:
            number = zero_or_one(name)
            if number is None:
                names[index] = name
            else:
                zero_one[index] = number
    return zero_one, names


def _binary_predictions(labeled: Labeled) -> tuple[FloatArray, list[str | None]]:
    """Predictions as scores (NaN where a class name), and the class names among them."""
    scores = labeled.prediction_values.copy()
    names: list[str | None] = [None] * len(scores)
    for index, name in enumerate(labeled.prediction_classes):
        if name:  # (ingest never stores an empty name)
            number, names[index] = prediction_value(name, BINARY)
            if number is not None:
                scores[index] = number
    return scores, names


def binary_metrics(
    y_true: npt.NDArray[np.int_], y_pred: npt.NDArray[np.int_], scores: FloatArray | None
) -> dict[str, float]:
    """Accuracy, precision, recall and F1 of 0/1 predictions (zero_division 0), and with
    probabilities and both classes present ROC AUC (ties one half) and log loss (scores clipped
    to [1e-15, 1 - 1e-15]): scikit-learn's values, from one pass of counts and one ranking
    (its metric functions validate their input at a fixed cost of milliseconds each, paid per
    segment and per version; ``tests/test_performance.py`` checks the two agree)."""
    n = len(y_true)
    positive, called = y_true == 1, y_pred == 1
    tp = int(np.count_nonzero(positive & called))
    fp = int(np.count_nonzero(called)) - tp
    fn = int(np.count_nonzero(positive)) - tp
    result = {
        "accuracy": (n - fp - fn) / n,
        "precision": tp / (tp + fp) if tp + fp else 0.0,
        "recall": tp / (tp + fn) if tp + fn else 0.0,
        "f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0,
    }
    m = tp + fn
    if scores is not None and 0 < m < n:
        ranks = stats.rankdata(scores)
        result["roc_auc"] = (float(ranks[positive].sum()) - m * (m + 1) / 2) / (m * (n - m))
        p = np.clip(scores, 1e-15, 1 - 1e-15)
        result["log_loss"] = float(-np.mean(np.where(positive, np.log(p), np.log1p(-p))))
    return result


def binary(labeled: Labeled, threshold: float = 0.5) -> tuple[dict[str, float], Scored] | None:
    """Scores in [0, 1] are probabilities of the positive class (a class at ``threshold``, the
    model's decision_threshold: positive at or above it), other scores
    margins (threshold 0), against labels 0/1; a model whose predictions are class names is
    scored on those names. Rows of the other form than most of the window's are left out."""
    truth, truth_names = _binary_labels(labeled)
    scores, predicted_names = _binary_predictions(labeled)
    scored = np.isfinite(scores)
    named = np.array([name is not None for name in predicted_names], dtype=bool)
    if int(scored.sum()) < int(named.sum()):
        return _binary_names(labeled, truth_names, predicted_names, named)
    keep = scored & np.isfinite(truth)
    why: Counter[str] = Counter()
    for index in np.flatnonzero(~keep).tolist():
        if not scored[index]:
            why["a class name for a prediction"] += 1
        else:
            label = labeled.label_classes[index] or float(labeled.label_values[index])
            why[f"label {describe(label)} where 0 or 1 (or true/false) is expected"] += 1
    _left_out(len(labeled), int(keep.sum()), why)
    if not keep.any():
        return None
    y_true, scores = truth[keep].astype(int), scores[keep]
    probabilistic = bool(((scores >= 0) & (scores <= 1)).all())
    y_pred = (scores >= threshold).astype(int) if probabilistic else (scores > 0).astype(int)
    result = binary_metrics(y_true, y_pred, scores if probabilistic else None)
    probabilities: FloatArray | None = scores.astype(np.float64) if probabilistic else None
    used = Scored("binary", y_true.astype(np.float64), y_pred.astype(np.float64), probabilities)
    return _finite(result), used


def _binary_names(
    labeled: Labeled,
    truth_names: list[str | None],
    predicted_names: list[str | None],
    named: npt.NDArray[np.bool_],
) -> tuple[dict[str, float], Scored] | None:
    """A binary model that predicts class names, scored on the rows whose label is a name."""
    keep = [i for i in np.flatnonzero(named).tolist() if truth_names[i] is not None]
    why = Counter({"a score for a prediction": int((~named).sum())})
    why["a 0/1 label where the model predicts class names"] = int(named.sum()) - len(keep)
    _left_out(len(labeled), len(keep), why)
    if not keep:
        return None
    return _class_metrics([truth_names[i] or "" for i in keep],
                          [predicted_names[i] or "" for i in keep])  # fmt: skip


def _class_metrics(y_true: list[str], y_pred: list[str]) -> tuple[dict[str, float], Scored]:
    names = sorted(set(y_true) | set(y_pred))
    code = {name: float(i) for i, name in enumerate(names)}
    scored = Scored(
        "classes",
        np.array([code[n] for n in y_true], dtype=np.float64),
        np.array([code[n] for n in y_pred], dtype=np.float64),
        classes=len(names),
    )
    return _finite({
        "accuracy": metrics.accuracy_score(y_true, y_pred),
        "precision": metrics.precision_score(y_true, y_pred, average="macro", zero_division=0),
        "recall": metrics.recall_score(y_true, y_pred, average="macro", zero_division=0),
        "f1": metrics.f1_score(y_true, y_pred, average="macro", zero_division=0),
    }), scored  # fmt: skip


def label_names(labeled: Labeled) -> list[str]:
    """A multiclass model's labels as class names, numbers written one way."""
    return _texts(labeled.label_values, labeled.label_classes)


def ovr_roc_auc(scores: FloatArray, labels: npt.NDArray[np.int64]) -> float | None:
    """One-vs-rest macro ROC AUC: per class k, the AUC of its probability against
    [label = k] (ties one half), averaged over the classes that have rows on both sides
    (scikit-learn's ``roc_auc_score(multi_class="ovr", average="macro")`` where every class
    is among the labels; it refuses the others). None if no class has."""
    aucs = []
    n = len(labels)
    for k in range(scores.shape[1]):
        positive = labels == k
        m = int(positive.sum())
        if 0 < m < n:
            ranks = stats.rankdata(scores[:, k])
            aucs.append((float(ranks[positive].sum()) - m * (m + 1) / 2) / (m * (n - m)))
    return float(np.mean(aucs)) if aucs else None


def multiclass(labeled: Labeled) -> tuple[dict[str, float], Scored]:
    """Accuracy and macro precision, recall and F1 of the class names; with per-class
    probabilities on every labeled row, ROC AUC one class against the rest."""
    truth = label_names(labeled)
    result, scored = _class_metrics(
        truth, _texts(labeled.prediction_values, labeled.prediction_classes)
    )
    scores = labeled.prediction_scores
    if scores is not None and labeled.score_classes and bool(np.isfinite(scores).all()):
        index = {name: k for k, name in enumerate(labeled.score_classes)}
        codes = np.array([index.get(name, -1) for name in truth], dtype=np.int64)
        auc = ovr_roc_auc(scores, codes)
        if auc is not None:
            result["roc_auc"] = auc
            scored.class_scores, scored.score_labels = scores, codes
    return result, scored


def evaluate(
    task: str, labeled: Labeled, threshold: float = 0.5
) -> tuple[dict[str, float], Scored] | None:
    """The task's metrics and what they were computed on, or None when no prediction of the
    window has a label (or none whose label compares with it)."""
    if len(labeled) == 0:
        return None
    if task == REGRESSION:
        return regression(labeled)
    if task == BINARY:
        return binary(labeled, threshold)
    return multiclass(labeled)


def compute(task: str, labeled: Labeled, threshold: float = 0.5) -> dict[str, float] | None:
    """The task's metrics (``evaluate``), or None."""
    evaluated = evaluate(task, labeled, threshold)
    return None if evaluated is None else evaluated[0]
