"""Model quality over a window's labeled predictions (scikit-learn metrics). Pure."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sklearn import metrics


@dataclass(slots=True)
class Labeled:
    """The window's predictions that have a label, aligned."""

    prediction_values: npt.NDArray[np.float64]  # NaN where the prediction is a class
    prediction_classes: list[str | None]
    label_values: npt.NDArray[np.float64]  # NaN where the label is a class
    label_classes: list[str | None]

    def __len__(self) -> int:
        return len(self.prediction_values)


def _finite(values: dict[str, float]) -> dict[str, float]:
    return {k: float(v) for k, v in values.items() if v is not None and math.isfinite(v)}


def _as_text(values: npt.NDArray[np.float64], classes: list[str | None]) -> list[str]:
    """Class names, numbers written as integers where they are whole (1.0 -> "1")."""
    out = []
    for value, name in zip(values.tolist(), classes, strict=True):
        if name is not None:
            out.append(name)
        elif float(value).is_integer():
            out.append(str(int(value)))
        else:
            out.append(str(value))
    return out


def regression(labeled: Labeled) -> dict[str, float]:
    y_true, y_pred = labeled.label_values, labeled.prediction_values
    keep = np.isfinite(y_true) & np.isfinite(y_pred)
    y_true, y_pred = y_true[keep], y_pred[keep]
    if len(y_true) == 0:
        return {}
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
    return _finite(result)


def binary(labeled: Labeled) -> dict[str, float]:
    """Scores in [0, 1] are probabilities of the positive class (threshold 0.5); labels 0/1
    (or true/false). Class-name predictions and labels are compared as names."""
    scores = labeled.prediction_values
    labels = labeled.label_values
    numeric = bool(np.isfinite(scores).all() and np.isfinite(labels).all())
    if numeric and set(np.unique(labels).tolist()) <= {0.0, 1.0}:
        y_true = labels.astype(int)
        probabilistic = bool(((scores >= 0) & (scores <= 1)).all())
        y_pred = (scores >= 0.5).astype(int) if probabilistic else (scores > 0).astype(int)
        result = {
            "accuracy": metrics.accuracy_score(y_true, y_pred),
            "precision": metrics.precision_score(y_true, y_pred, zero_division=0),
            "recall": metrics.recall_score(y_true, y_pred, zero_division=0),
            "f1": metrics.f1_score(y_true, y_pred, zero_division=0),
        }
        if probabilistic and len(np.unique(y_true)) == 2:
            result["roc_auc"] = metrics.roc_auc_score(y_true, scores)
            result["log_loss"] = metrics.log_loss(
                y_true, np.clip(scores, 1e-15, 1 - 1e-15), labels=[0, 1]
            )
        return _finite(result)
    return multiclass(labeled)


def multiclass(labeled: Labeled) -> dict[str, float]:
    y_true = _as_text(labeled.label_values, labeled.label_classes)
    y_pred = _as_text(labeled.prediction_values, labeled.prediction_classes)
    return _finite({
        "accuracy": metrics.accuracy_score(y_true, y_pred),
        "precision": metrics.precision_score(y_true, y_pred, average="macro", zero_division=0),
        "recall": metrics.recall_score(y_true, y_pred, average="macro", zero_division=0),
        "f1": metrics.f1_score(y_true, y_pred, average="macro", zero_division=0),
    })  # fmt: skip


def compute(task: str, labeled: Labeled) -> dict[str, float] | None:
    """The task's metrics, or None when no prediction of the window has a label."""
    if len(labeled) == 0:
        return None
    if task == "regression":
        return regression(labeled)
    if task == "binary_classification":
        return binary(labeled)
    return multiclass(labeled)
