"""Performance before labels arrive, for regression: direct loss estimation (DLE, after
NannyML's; our own code). CONTRACT section 9. Pure.

A regression baseline with labels keeps its labeled rows: the features, the prediction and the
label (up to ``MAX_KEPT_ROWS``, a seeded random sample of more). A loss model learns, from the
features and the prediction, each row's absolute error a = |y - y_hat|: scikit-learn's
histogram gradient boosting with LightGBM's default settings (as NannyML fits its DLE models;
squared-error loss, so it learns the conditional mean E[a | x]; categorical features as
categories, missing values as missing), fitted on all rows. Two more are fitted on the rows
split at random (seeded) into halves, each on one half and predicting the other: every
baseline row then has a held-out prediction of its own error.

A window's estimates: estimated MAE = mean over its rows (those with a numeric prediction) of
g(x_i), the loss model's prediction; estimated RMSE = sqrt(k * mean of g(x_i)^2), where
k = sum of s / sum of g_held^2 over the baseline (s = (y - y_hat)^2, g_held the held-out
predictions). That assumes the errors a scale family, e = sigma(x) * eps with eps of one
distribution, so that E[s | x] = k E[a | x]^2: learning the squared error directly is far
noisier (its tails are heavy), and off by twice as much on NannyML's synthetic regression set.

Interval: where the realized metric will land once the labels arrive, at +-1.96 standard
deviations of the sum of four independent parts (for RMSE, on the mean squared error, then
square roots; 0 at least): the realized metric's own noise, sigma^2 / n, with sigma the
held-out residuals' standard deviation scaled by the window's estimate over the baseline's
realized error (errors that grow k-fold grow their residuals k-fold); the baseline's finite
size, the squared standard error of its held-out mean residual in each decile of the predicted
loss, weighted by the square of the window's share of rows in that decile; the loss model's
own variance, (G_A - G_B)^2 / 4 with G_A and G_B the two half models' estimates on this window
(on ``DISAGREEMENT_ROWS`` of its rows at most, spread over it; they disagree most where they
extrapolate: under covariate shift the band widens); and, for a window of more than
``MAX_PREDICTED_ROWS`` rows estimated on a seeded uniform sample of that many, the sample's
error (finite population).

No estimate where it cannot be trusted: a baseline with fewer than ``MIN_LABELED`` labeled
rows, a window without numeric predictions, or one of whose rows more than
``MAX_OUTSIDE_SHARE`` hold a value the baseline's labeled rows do not cover (a numerical value
or prediction beyond their range, a category they never held): trees extrapolate flat from the
baseline's edge.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.ensemble import HistGradientBoostingRegressor
from threadpoolctl import threadpool_limits

from driftwatch.core.result import Estimate
from driftwatch.core.specs import FeatureSpec
from driftwatch.monitoring import estimation
from driftwatch.storage.chunks import WindowColumns

FloatArray = npt.NDArray[np.float64]
KIND = "regression"
METHOD = "direct_loss_estimation"
SEED = 20261204
MIN_LABELED = 100
MAX_KEPT_ROWS = 50_000
MAX_CATEGORIES = 250  # per categorical feature, the most frequent (the rest: missing)
MAX_PREDICTED_ROWS = 20_000  # the estimate's rows, a seeded sample of more
DISAGREEMENT_ROWS = 5_000  # the half models' rows, a subset of those
MAX_OUTSIDE_SHARE = 0.25
LOSS_BINS = 10
Z = 1.959963984540054  # the 97.5% normal quantile
METRICS = ("mae", "rmse")
# Why a run has no estimate, beyond the binary case's (README)
PREDICTIONS_MISSING = "predictions_missing"
OUTSIDE_BASELINE = "window_outside_baseline_range"
# LightGBM's defaults, as NannyML's DLE fits them: early stopping on a noisy loss stops short
# and flattens the model (it then overstates the error of a window that moved to rows of small
# error; measured on NannyML's synthetic regression set, benchmarks/estimates.py)
LOSS_MODEL = {
    "max_iter": 100, "learning_rate": 0.1, "max_leaf_nodes": 31, "min_samples_leaf": 20,
    "l2_regularization": 0.0, "early_stopping": False,
}  # fmt: skip


@dataclass(slots=True)
class HeldOut:
    """What the held-out predictions of one loss showed: the residuals' (observed less
    predicted) standard deviation, and per bin of the predicted loss (its deciles) the squared
    standard error of the mean loss of the baseline's rows in it."""

    edges: FloatArray  # inner bin edges
    error2: FloatArray
    sigma: float

    @classmethod
    def of(cls, observed: FloatArray, predicted: FloatArray) -> HeldOut:
        edges = np.unique(np.quantile(predicted, np.linspace(0, 1, LOSS_BINS + 1)[1:-1]))
        bins = np.searchsorted(edges, predicted, side="right")
        residual = observed - predicted
        count = np.bincount(bins, minlength=len(edges) + 1).astype(np.float64)
        total = np.bincount(bins, weights=residual, minlength=len(edges) + 1)
        squares = np.bincount(bins, weights=residual**2, minlength=len(edges) + 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            bias = np.where(count > 0, total / count, 0.0)
            variance = np.where(count > 1, (squares - count * bias**2) / (count - 1), 0.0)
            error2 = np.where(count > 0, np.maximum(variance, 0.0) / count, 0.0)
        return cls(edges, error2, float(np.std(residual)))

    def variance(self, predicted: FloatArray) -> float:
        """How well the baseline knows the mean loss of rows like the window's: per bin of
        the predicted loss, the squared standard error of its rows' mean residual, weighted by
        the square of the window's share of rows in the bin (a floor on the estimate's error
        that no window size removes)."""
        bins = np.searchsorted(self.edges, predicted, side="right")
        share = np.bincount(bins, minlength=len(self.edges) + 1) / len(predicted)
        return float(share**2 @ self.error2)


@dataclass(slots=True)
class Halves:
    """The cross-fitted loss models and what their held-out predictions showed."""

    # the absolute error's model fitted on all rows, then those fitted on each half
    models: tuple[HistGradientBoostingRegressor, ...]
    shape: float  # k: E[s | x] = k E[a | x]^2 (a scale family), from the held-out rows
    mae: float  # the baseline's realized MAE
    mse: float
    absolute_check: HeldOut  # what the held-out predictions of a showed
    squared_check: HeldOut  # ... of s, predicted as k g^2
    low: FloatArray  # per design column: the labeled rows' smallest value (NaN: categorical)
    high: FloatArray


@dataclass(slots=True)
class LabeledRegression:
    """A regression baseline's labeled rows, as a design matrix (the features named in
    ``check["columns"]``, then the prediction) and labels; or, with none, ``check`` says why
    ({"kind": "regression", "reason": ...})."""

    x: FloatArray
    y: FloatArray
    check: dict[str, Any]
    _halves: Halves | None = field(default=None, repr=False)

    @property
    def usable(self) -> bool:
        return "reason" not in self.check

    @property
    def nbytes(self) -> int:
        return int(self.x.nbytes + self.y.nbytes)

    def to_bytes(self) -> bytes:
        """Stored form: the design matrix column by column, then the labels, as float64."""
        return np.concatenate([self.x.T.reshape(-1), self.y]).astype("<f8").tobytes()

    def halves(self) -> Halves:
        """The loss models (fitted once, then kept with the cached profile). On one thread,
        as the multivariate detectors' fits: OpenMP's threads spin against a run's other work
        (a 3,000-row fit took 2.7 s on two threads of a busy machine, 0.6 s on one)."""
        if self._halves is None:
            with threadpool_limits(limits=1):
                self._halves = fit(self.x, self.y, self.check)
        return self._halves


def unusable(reason: str) -> LabeledRegression:
    empty = np.empty(0, dtype=np.float64)
    return LabeledRegression(np.empty((0, 0)), empty, {"kind": KIND, "reason": reason})


def from_bytes(buffer: bytes, check: dict[str, Any]) -> LabeledRegression:
    width = len(check["columns"]) + 1
    values = np.frombuffer(buffer, dtype="<f8")
    rows = len(values) // (width + 1)
    x = values[: rows * width].reshape(width, rows).T
    return LabeledRegression(x, values[rows * width :].copy(), dict(check))


def _columns(
    window: WindowColumns, features: Sequence[FeatureSpec]
) -> dict[str, tuple[str, npt.NDArray[Any], list[str] | None]]:
    out: dict[str, tuple[str, npt.NDArray[Any], list[str] | None]] = {}
    num = cat = 0
    for feature in features:
        if feature.kind == "numerical":
            out[feature.name] = ("numerical", window.num_values[:, num], None)
            num += 1
        else:
            out[feature.name] = ("categorical", window.cat_codes[:, cat], window.categories[cat])
            cat += 1
    return out


def design(
    window: WindowColumns, features: Sequence[FeatureSpec], check: dict[str, Any],
    rows: npt.NDArray[np.int64] | None = None,
) -> tuple[FloatArray, npt.NDArray[np.bool_]]:  # fmt: skip
    """The design matrix of the window's ``rows`` (all: None) in the baseline's columns: a
    numerical value as it is, a category as its index among the baseline's (NaN: missing or
    one it did not keep), NaN for a column the window lacks; the prediction last. With it,
    the rows holding a category the baseline's labeled rows never held (of a feature whose
    categories were all kept)."""
    found = _columns(window, features)
    n = len(window) if rows is None else len(rows)
    out = np.full((n, len(check["columns"]) + 1), np.nan)
    unseen = np.zeros(n, dtype=bool)
    for position, (name, kind) in enumerate(zip(check["columns"], check["kinds"], strict=True)):
        column = found.get(name)
        if column is None or column[0] != kind:
            continue
        values = column[1] if rows is None else column[1][rows]
        if kind == "numerical":
            out[:, position] = values
            continue
        index = {category: code for code, category in enumerate(check["categories"][name])}
        names = column[2] or []
        lookup = np.array([index.get(category, np.nan) for category in names] + [np.nan])
        out[:, position] = lookup[np.where(values < 0, len(names), values)]
        if name in check["complete"]:
            unseen |= (values >= 0) & np.isnan(out[:, position])
    predictions = window.prediction_values if rows is None else window.prediction_values[rows]
    out[:, -1] = predictions
    return out, unseen


def labeled_rows(
    window: WindowColumns, features: Sequence[FeatureSpec], rows: npt.NDArray[np.int64],
    labels: FloatArray,
) -> LabeledRegression:  # fmt: skip
    """A regression baseline's labeled rows (``rows`` of ``window``, with their ``labels``),
    checked: the rows with a numeric prediction and label, a seeded sample of many."""
    if len(rows) == 0:
        return unusable(estimation.BASELINE_WITHOUT_LABELS)
    usable = np.isfinite(labels) & np.isfinite(window.prediction_values[rows])
    rows, labels = rows[usable], labels[usable]
    if len(rows) < MIN_LABELED:
        return unusable(estimation.TOO_FEW_BASELINE_LABELS)
    if len(rows) > MAX_KEPT_ROWS:
        keep = np.sort(np.random.default_rng(SEED).choice(len(rows), MAX_KEPT_ROWS, False))
        rows, labels = rows[keep], labels[keep]
    found = _columns(window, features)
    categories: dict[str, list[str]] = {}
    complete: list[str] = []
    for name, (kind, values, names) in found.items():
        if kind != "categorical":
            continue
        codes = values[rows]
        counts = np.bincount(codes[codes >= 0], minlength=len(names or []))
        kept = np.argsort(-counts, kind="stable")[: min(MAX_CATEGORIES, int((counts > 0).sum()))]
        categories[name] = [(names or [])[int(code)] for code in sorted(kept.tolist())]
        if len(kept) == int((counts > 0).sum()):
            complete.append(name)
    check: dict[str, Any] = {
        "kind": KIND, "method": METHOD, "labeled_rows": len(rows),
        "columns": list(found), "kinds": [kind for kind, _, _ in found.values()],
        "categories": categories, "complete": complete,
    }  # fmt: skip
    x, _ = design(window, features, check, rows)
    return LabeledRegression(x, labels.astype(np.float64), check)


def _loss_model(check: dict[str, Any]) -> HistGradientBoostingRegressor:
    categorical = [kind == "categorical" for kind in check["kinds"]] + [False]
    return HistGradientBoostingRegressor(
        **LOSS_MODEL, categorical_features=categorical if any(categorical) else None,
        random_state=SEED,
    )  # fmt: skip


def fit(x: FloatArray, y: FloatArray, check: dict[str, Any]) -> Halves:
    """The cross-fitted loss models of a baseline's labeled rows (module docstring)."""
    error = y - x[:, -1]
    absolute, squared = np.abs(error), error**2
    order = np.random.default_rng(SEED).permutation(len(y))
    halves = (order[: len(y) // 2], order[len(y) // 2 :])
    models = []
    held = np.empty(len(y))
    for train, test in (halves, halves[::-1]):
        model = _loss_model(check).fit(x[train], absolute[train])
        held[test] = np.maximum(model.predict(x[test]), 0.0)
        models.append(model)
    shape = float(squared.sum() / (held**2).sum()) if (held > 0).any() else 1.0
    numerical = np.array([kind == "numerical" for kind in check["kinds"]] + [True])
    with np.errstate(all="ignore"):
        low = np.where(numerical, np.nanmin(np.where(np.isfinite(x), x, np.nan), axis=0), np.nan)
        high = np.where(numerical, np.nanmax(np.where(np.isfinite(x), x, np.nan), axis=0), np.nan)
    return Halves(
        models=(_loss_model(check).fit(x, absolute), *models), shape=shape,
        mae=float(absolute.mean()), mse=float(squared.mean()),
        absolute_check=HeldOut.of(absolute, held),
        squared_check=HeldOut.of(squared, shape * held**2),
        low=low, high=high,
    )  # fmt: skip


def _outside_share(x: FloatArray, unseen: npt.NDArray[np.bool_], halves: Halves) -> float:
    """The share of rows holding a value the baseline's labeled rows do not cover."""
    with np.errstate(invalid="ignore"):
        beyond = (x < halves.low) | (x > halves.high)  # NaN bounds (categorical): False
    return float(np.mean(beyond.any(axis=1) | unseen)) if len(x) else 0.0


def estimate(
    window: WindowColumns, features: Sequence[FeatureSpec], baseline: LabeledRegression | None
) -> tuple[dict[str, Estimate] | None, str | None]:
    """The window's estimated MAE and RMSE (or None, and why)."""
    if baseline is None:
        return None, estimation.BASELINE_WITHOUT_LABELS
    if not baseline.usable:
        return None, str(baseline.check["reason"])
    if len(window) == 0:
        return None, estimation.NO_PREDICTIONS
    rows = np.flatnonzero(np.isfinite(window.prediction_values))
    if len(rows) == 0:
        return None, PREDICTIONS_MISSING
    n = len(rows)
    if n > MAX_PREDICTED_ROWS:
        pick = np.random.default_rng(SEED).choice(n, MAX_PREDICTED_ROWS, replace=False)
        rows = rows[np.sort(pick)]
    halves = baseline.halves()
    x, unseen = design(window, features, baseline.check, rows)
    if _outside_share(x, unseen, halves) > MAX_OUTSIDE_SHARE:
        return None, OUTSIDE_BASELINE
    finite = (1 - len(rows) / n) / len(rows)  # the sample's variance factor (0: all rows)
    out: dict[str, Estimate] = {}
    few = x[:: max(1, len(x) // DISAGREEMENT_ROWS)]  # every k-th: spread over the window
    with threadpool_limits(limits=1):
        g = np.maximum(halves.models[0].predict(x), 0.0)
        g_first, g_second = (np.maximum(m.predict(few), 0.0) for m in halves.models[1:])
    k = halves.shape
    for name, both, first, second, held, level in (
        ("mae", g, g_first, g_second, halves.absolute_check, halves.mae),
        ("rmse", k * g**2, k * g_first**2, k * g_second**2, halves.squared_check, halves.mse),
    ):
        value = float(both.mean())
        spread = held.sigma * (value / level if level > 0 else 1.0)
        variance = (
            spread**2 / n  # the realized metric's own noise
            + held.variance(both)  # the loss model's error where the window's rows are
            + (float(first.mean()) - float(second.mean())) ** 2 / 4  # the models' disagreement
            + float(both.var()) * finite  # the sample's error, on a window of many rows
        )
        half = Z * math.sqrt(variance)
        low, high = max(value - half, 0.0), value + half
        if name == "rmse":
            value, low, high = math.sqrt(value), math.sqrt(low), math.sqrt(high)
        out[name] = Estimate(value=value, lower=low, upper=high)
    return out, None
