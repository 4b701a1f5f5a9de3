"""Multivariate drift: change that no single column shows (CONTRACT section 11). Pure.

Two detectors compare a sample of the window's rows with a sample of the baseline's rows, all
tabular features at once:

- ``domain_classifier``: a gradient-boosted classifier (scikit-learn's
  HistGradientBoostingClassifier, categorical features native) told apart window rows from
  baseline rows; its score is the ROC AUC on held-out folds (stratified k-fold, the mean of
  the folds' AUCs), and the features that separate the two most are found by permutation
  importance on the held-out folds (the AUC lost when one column is shuffled).
- ``Reconstruction``: NannyML's data reconstruction error. Fitted on the baseline: missing
  numbers imputed with their mean, missing categories with the most frequent one, categories
  encoded as their frequency in the baseline (0 for one it never saw), every column
  standardised, PCA keeping the fewest components that explain 65% of the variance; a row's
  error is the Euclidean distance between its standardised values and their reconstruction
  from those components, and a window's score is the mean over its rows.

Each threshold comes from the baseline's own variation (see ``MultivariateBaseline``).
``domain_classifier`` takes plain matrices, so other detectors (embeddings) can share it.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats as scipy_stats

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

# Rows each side of a comparison at most: a window's rows beyond it are sampled (without
# replacement) and so are the baseline's. The classifier's cost grows with it; its power at
# this size: a no-drift AUC spread of about 0.007, so an AUC near 0.525 is found at an hourly
# model's level (see the README, "Multivariate drift").
SAMPLE_ROWS = 5000
# Baseline rows kept, row by row, when a baseline is stored: enough for the null's two
# disjoint samples of SAMPLE_ROWS each, twice over.
BASELINE_SAMPLE_ROWS = 20_000
# Fewer rows than this on either side: the verdict is "insufficient", no score.
MIN_ROWS = 100
# Sample sizes are rounded down to this grid (steps of about 10%), so the null of a size is
# computed once per baseline and reused by every window of about that size.
SIZE_GRID: tuple[int, ...] = tuple(
    sorted({int(v) for v in np.geomspace(MIN_ROWS, SAMPLE_ROWS, 42).round()})
)
FOLDS = 3
NULL_REPEATS = 20  # baseline-against-baseline classifier AUCs, per baseline and sample size
RECONSTRUCTION_FOLDS = 5  # cross-fitted baseline errors for the reconstruction's null
EXPLAINED_VARIANCE = 0.65  # NannyML's default n_components
# HistGradientBoostingClassifier takes category codes below its max_bins (255): the most
# frequent categories keep their own code, the rest share one, unseen ones another.
CLASSIFIER_CATEGORIES = 250
OTHER_CODE = CLASSIFIER_CATEGORIES
UNSEEN_CODE = CLASSIFIER_CATEGORIES + 1
TOP_FEATURES = 5
IMPORTANCE_ROWS = 1000  # held-out rows a fold's permutation importance is measured on
SEED = 20261203

# A categorical code of a row: 0.. the baseline's categories, MISSING, or UNSEEN (a category
# the baseline never saw).
MISSING = -1
UNSEEN = -2


@dataclass(frozen=True, slots=True)
class Rows:
    """Rows of a model's tabular features, aligned with a baseline: numerical values (NaN:
    missing) and categorical codes into the baseline's categories of each feature (MISSING,
    UNSEEN)."""

    numerical: FloatArray  # (rows, numerical features)
    categorical: IntArray  # (rows, categorical features)

    def __len__(self) -> int:
        return int(self.numerical.shape[0])

    def take(self, index: IntArray) -> Rows:
        return Rows(self.numerical[index], self.categorical[index])


@dataclass(frozen=True, slots=True)
class DomainClassifier:
    auc: float  # the mean of the held-out folds' ROC AUCs
    # each fold's fitted model, held-out rows and their labels (True: current)
    folds: list[tuple[Any, FloatArray, BoolArray]]

    def importances(self, seed: int = SEED) -> FloatArray:
        """Per column, the held-out AUC lost when the column is shuffled (permutation
        importance), averaged over the folds."""
        from threadpoolctl import threadpool_limits

        rng = np.random.default_rng(seed)
        lost = np.zeros(self.folds[0][1].shape[1])
        with threadpool_limits(limits=1):
            for model, all_held_out, all_labels in self.folds:
                # a sample of the held-out rows: a column's loss is a mean, and each costs a
                # prediction of these rows
                kept = np.sort(rng.permutation(len(all_labels))[:IMPORTANCE_ROWS])
                held_out, labels = all_held_out[kept], all_labels[kept]
                if labels.all() or not labels.any():
                    continue
                auc = auc_score(labels, model.predict_proba(held_out)[:, 1])
                for column in range(held_out.shape[1]):
                    shuffled = held_out.copy()
                    shuffled[:, column] = rng.permutation(shuffled[:, column])
                    lost[column] += auc - auc_score(labels, model.predict_proba(shuffled)[:, 1])
        return lost / len(self.folds)


def auc_score(labels: BoolArray, scores: FloatArray) -> float:
    """ROC AUC (the Mann-Whitney statistic over both classes' sizes; ties count half)."""
    positives = int(labels.sum())
    negatives = len(labels) - positives
    ranks = scipy_stats.rankdata(scores)
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def _classifier(categorical: BoolArray | None, seed: int) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier

    # Small and fixed (no early stopping, so the null and the window are fitted alike): a
    # classifier that cannot memorise 100 rows, and a few tenths of a second on 2 x 5000.
    return HistGradientBoostingClassifier(
        max_iter=40, learning_rate=0.1, max_leaf_nodes=15, min_samples_leaf=20,
        early_stopping=False, categorical_features=categorical, random_state=seed,
    )  # fmt: skip


def domain_classifier(
    reference: FloatArray, current: FloatArray, *, categorical: BoolArray | None = None,
    folds: int = FOLDS, seed: int = SEED,
) -> DomainClassifier:  # fmt: skip
    """How well a classifier tells ``current`` rows from ``reference`` rows: the mean ROC AUC
    of stratified ``folds``-fold cross-validation (0.5: not at all); its ``importances()``
    say which columns it used. ``categorical`` marks columns holding category codes (0..254,
    NaN missing); the others are numbers (NaN missing). Runs on one thread: OpenMP's
    spinning threads cost several times more on a loaded machine."""
    from sklearn.model_selection import StratifiedKFold
    from threadpoolctl import threadpool_limits

    matrix = np.vstack((reference, current))
    labels = np.r_[np.zeros(len(reference), dtype=bool), np.ones(len(current), dtype=bool)]
    aucs: list[float] = []
    kept: list[tuple[Any, FloatArray, BoolArray]] = []
    splits = StratifiedKFold(folds, shuffle=True, random_state=seed).split(matrix, labels)
    with threadpool_limits(limits=1):
        for train, test in splits:
            model = _classifier(categorical, seed).fit(matrix[train], labels[train])
            held_out, held_labels = matrix[test], labels[test]
            aucs.append(auc_score(held_labels, model.predict_proba(held_out)[:, 1]))
            kept.append((model, held_out, held_labels))
    return DomainClassifier(auc=float(np.mean(aucs)), folds=kept)


def mann_whitney_sd(size: int, folds: int = FOLDS) -> float:
    """The no-drift spread of the mean of ``folds`` held-out AUCs on two samples of ``size``,
    were the folds independent and the scores untied: each fold's AUC is a Mann-Whitney
    statistic on size/folds rows a side, of variance (n1 + n0 + 1) / (12 n1 n0)."""
    side = size / folds
    return math.sqrt((2 * side + 1) / (12 * side * side) / folds)


def top_features(names: list[str], importances: FloatArray) -> list[str]:
    """The features that separate window from baseline most: at most TOP_FEATURES, by
    permutation importance, those losing at least a quarter of the largest loss (and more
    than nothing)."""
    if not len(importances):
        return []
    largest = float(importances.max())
    if largest <= 0:
        return []
    order = np.argsort(-importances, kind="stable")
    kept = [i for i in order.tolist() if importances[i] > 0 and importances[i] >= largest / 4]
    return [names[i] for i in kept[:TOP_FEATURES]]


@dataclass(frozen=True, slots=True)
class Reconstruction:
    """NannyML's data reconstruction, fitted on baseline rows (see the module's docstring)."""

    means: FloatArray  # numerical imputation
    modes: IntArray  # categorical imputation (a baseline category code)
    frequencies: list[FloatArray]  # per categorical feature, each category's frequency
    center: FloatArray  # standardisation
    scale: FloatArray
    pca_mean: FloatArray
    components: FloatArray  # (kept components, columns)

    def encoded(self, rows: Rows) -> FloatArray:
        """Imputed, categories as their frequencies; not yet standardised."""
        numbers = rows.numerical.copy()
        missing = ~np.isfinite(numbers)
        numbers[missing] = np.take(self.means, np.nonzero(missing)[1])
        encoded = np.empty((len(rows), len(self.frequencies)))
        for j, frequency in enumerate(self.frequencies):
            codes = rows.categorical[:, j]
            codes = np.where(codes == MISSING, self.modes[j], codes)
            # a category the baseline never saw has frequency 0 in it
            encoded[:, j] = np.where(codes >= 0, frequency[np.maximum(codes, 0)], 0.0)
        return np.hstack((numbers, encoded))

    def standardised(self, rows: Rows) -> FloatArray:
        return (self.encoded(rows) - self.center) / self.scale

    @property
    def informative(self) -> bool:
        """Fewer components kept than columns: with all of them (features that share little
        variance, such as two independent ones) every row is rebuilt exactly and the error is
        rounding noise, which no threshold can read."""
        return bool(0 < self.components.shape[0] < self.components.shape[1])

    def errors(self, rows: Rows) -> FloatArray:
        """Each row's reconstruction error: its distance to its projection on the components."""
        centred = self.standardised(rows) - self.pca_mean
        rebuilt = (centred @ self.components.T) @ self.components
        return np.asarray(np.linalg.norm(centred - rebuilt, axis=1), dtype=np.float64)


def fit_reconstruction(rows: Rows, categories: list[int]) -> Reconstruction:
    """The reconstruction of baseline ``rows``; ``categories``: how many categories each
    categorical feature has in the baseline."""
    from sklearn.decomposition import PCA

    numbers = rows.numerical
    finite = np.isfinite(numbers)
    counted = finite.sum(axis=0)
    sums = np.where(finite, numbers, 0.0).sum(axis=0)
    means = np.divide(sums, counted, out=np.zeros(numbers.shape[1]), where=counted > 0)
    modes = np.zeros(len(categories), dtype=np.int64)
    frequencies: list[FloatArray] = []
    for j, count in enumerate(categories):
        codes = rows.categorical[:, j]
        present = np.bincount(codes[codes >= 0], minlength=count).astype(np.float64)
        modes[j] = int(np.argmax(present)) if present.sum() else 0
        present[modes[j]] += np.count_nonzero(codes == MISSING)  # imputed, then counted
        frequencies.append(present / max(len(codes), 1))
    base = Reconstruction(means, modes, frequencies, np.zeros(0), np.ones(0), np.zeros(0),
                          np.zeros((0, 0)))  # fmt: skip
    unscaled = base.encoded(rows)
    center = unscaled.mean(axis=0)
    scale = unscaled.std(axis=0)
    scale[scale == 0] = 1.0  # a constant column, as scikit-learn's StandardScaler
    standardised = (unscaled - center) / scale
    pca = PCA(n_components=EXPLAINED_VARIANCE, svd_solver="full").fit(standardised)
    return Reconstruction(
        means, modes, frequencies, center, scale,
        pca_mean=np.asarray(pca.mean_, dtype=np.float64),
        components=np.asarray(pca.components_, dtype=np.float64),
    )  # fmt: skip


def sample_size(window_rows: int, baseline_rows: int) -> int | None:
    """Rows compared on each side: the window's, at most SAMPLE_ROWS and half the baseline's
    sample (the null needs two disjoint baseline samples of that size), rounded down to the
    size grid; None below MIN_ROWS."""
    cap = min(window_rows, SAMPLE_ROWS, baseline_rows // 2)
    if cap < MIN_ROWS:
        return None
    return max(size for size in SIZE_GRID if size <= cap)


@dataclass(frozen=True, slots=True)
class Detected:
    score: float
    threshold: float
    p_value: float
    drifted: bool


@dataclass(frozen=True, slots=True)
class Outcome:
    size: int  # rows compared on each side
    classifier: Detected
    importances: FloatArray
    reconstruction: Detected | None  # None: every component kept (see ``Reconstruction``)


@dataclass
class MultivariateBaseline:
    """A baseline's rows prepared once for both detectors, and their nulls, computed on first
    use and kept (cached with the baseline's profile, so later runs pay neither).

    Classifier null: the no-drift AUC is centred on 0.5 (exact when rows are exchangeable:
    each held-out fold's rows are independent of the model fitted on the others). Its spread
    at the window's sample size: NULL_REPEATS times, two disjoint samples of that size drawn
    from the baseline are told apart as a window would be, and s is the root mean square of
    their AUCs' distances from 0.5 (the folds share training rows, so the spread is wider
    than ``mann_whitney_sd`` at small sizes, narrower with tied scores: measured, not
    assumed). A new no-drift AUC is then 0.5 + s t with t Student's on NULL_REPEATS degrees
    of freedom: threshold 0.5 + t(1 - level) x s, p-value its tail.

    Reconstruction null: each baseline row's error out of fold (RECONSTRUCTION_FOLDS fits on
    the other rows), mean mu and standard deviation s over the N baseline rows; a window of m
    rows has threshold mu + z(1 - level) x s x sqrt(1/m + 1/N) (the spread of the mean error
    of m baseline rows, and of mu's own estimate), and p-value the normal tail."""

    rows: Rows
    categories: list[int]  # per categorical feature, the baseline's categories
    classifier_codes: list[IntArray]  # per categorical feature: baseline code -> its own
    _reconstruction: Reconstruction | None = None
    _errors: tuple[float, float, int] | None = None
    _nulls: dict[int, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _kept: dict[str, Any] | None = None  # what ``prepared`` gave when last stored or restored

    @classmethod
    def of(cls, rows: Rows, counts: list[IntArray]) -> MultivariateBaseline:
        """``counts``: per categorical feature, the baseline's count of each category (the
        most frequent CLASSIFIER_CATEGORIES keep their own classifier code)."""
        codes: list[IntArray] = []
        for count in counts:
            order = np.argsort(-count, kind="stable")
            mapping = np.full(len(count), OTHER_CODE, dtype=np.int64)
            kept = order[:CLASSIFIER_CATEGORIES]
            mapping[kept] = np.arange(len(kept))
            codes.append(mapping)
        return cls(rows=rows, categories=[len(c) for c in counts], classifier_codes=codes)

    @property
    def nbytes(self) -> int:
        return int(self.rows.numerical.nbytes + self.rows.categorical.nbytes)

    def classifier_matrix(self, rows: Rows) -> FloatArray:
        columns = [rows.numerical]
        for j, mapping in enumerate(self.classifier_codes):
            codes = rows.categorical[:, j]
            mapped = np.where(codes >= 0, mapping[np.maximum(codes, 0)], UNSEEN_CODE)
            columns.append(np.where(codes == MISSING, np.nan, mapped).astype(np.float64)[:, None])
        return np.hstack(columns)

    @property
    def categorical_mask(self) -> BoolArray:
        mask = np.zeros(self.rows.numerical.shape[1] + len(self.classifier_codes), dtype=bool)
        mask[self.rows.numerical.shape[1] :] = True
        return mask

    def reconstruction(self) -> tuple[Reconstruction, tuple[float, float, int]]:
        with self._lock:
            if self._reconstruction is None:
                self._reconstruction = fit_reconstruction(self.rows, self.categories)
            if self._errors is None:  # (restored from the baseline once measured)
                self._errors = (
                    self._cross_fitted_errors()
                    if self._reconstruction.informative
                    else (0.0, 0.0, len(self.rows))
                )
            return self._reconstruction, self._errors

    def _cross_fitted_errors(self) -> tuple[float, float, int]:
        count = len(self.rows)
        folds = np.random.default_rng(SEED).permutation(count) % RECONSTRUCTION_FOLDS
        errors = np.empty(count)
        for fold in range(RECONSTRUCTION_FOLDS):
            held = np.flatnonzero(folds == fold)
            fitted = fit_reconstruction(self.rows.take(np.flatnonzero(folds != fold)),
                                        self.categories)  # fmt: skip
            errors[held] = fitted.errors(self.rows.take(held))
        return float(errors.mean()), float(errors.std(ddof=1)), count

    def prepared(self) -> dict[str, Any]:
        """The nulls measured so far, as JSON (stored with the baseline, so that no other
        process measures them again): the classifier's spread per sample size and the
        reconstruction's out-of-fold errors (mean, spread, count)."""
        with self._lock:
            return {
                "version": 1,
                "classifier_spread": {str(size): s for size, s in sorted(self._nulls.items())},
                "reconstruction_errors": None if self._errors is None else list(self._errors),
            }

    def restore(self, prepared: dict[str, Any] | None) -> None:
        """Takes nulls stored by ``prepared`` (another version's, or none: measured anew)."""
        if not prepared or prepared.get("version") != 1:
            return
        with self._lock:
            self._nulls.update({int(size): float(s)
                                for size, s in prepared["classifier_spread"].items()})  # fmt: skip
            errors = prepared.get("reconstruction_errors")
            if errors is not None and self._errors is None:
                self._errors = (float(errors[0]), float(errors[1]), int(errors[2]))
        self._kept = self.prepared()

    def unsaved(self) -> dict[str, Any] | None:
        """``prepared()`` when it holds nulls not stored yet (then marked stored), else None."""
        now = self.prepared()
        with self._lock:
            if now == self._kept:
                return None
            self._kept = now
        return now

    def classifier_spread(self, size: int) -> float:
        """The no-drift spread of the classifier's AUC at ``size`` rows a side, from the
        baseline itself (computed once per size, then cached)."""
        with self._lock:
            cached = self._nulls.get(size)
        if cached is not None:
            return cached
        rng = np.random.default_rng(SEED + size)
        matrix = self.classifier_matrix(self.rows)
        aucs = []
        for repeat in range(NULL_REPEATS):
            drawn = rng.choice(len(matrix), 2 * size, replace=False)
            aucs.append(domain_classifier(
                matrix[drawn[:size]], matrix[drawn[size:]],
                categorical=self.categorical_mask, seed=SEED + repeat,
            ).auc)  # fmt: skip
        # about 0.5 exactly: the spread around it, NULL_REPEATS degrees of freedom
        spread = float(np.sqrt(np.mean((np.asarray(aucs) - 0.5) ** 2)))
        with self._lock:
            self._nulls[size] = spread
        return spread


def _tail(
    score: float, center: float, spread: float, level: float, freedom: int | None = None
) -> Detected:
    """Threshold and p-value of ``score`` against a null of ``center`` and ``spread``: the
    normal tail, or Student's t with ``freedom`` degrees of freedom when the spread is
    itself estimated from that many no-drift scores (a new score's predictive law)."""
    law: Any = scipy_stats.norm if freedom is None else scipy_stats.t(freedom)
    threshold = center + float(law.isf(level)) * spread
    p_value = float(law.sf((score - center) / spread)) if spread > 0 else float(score <= center)
    return Detected(score=score, threshold=threshold, p_value=p_value, drifted=score >= threshold)


def detect(
    baseline: MultivariateBaseline, window: Rows, *, level: float, seed: int = SEED
) -> Outcome | None:
    """Both detectors on ``window`` against ``baseline`` at ``level`` (the chance of calling
    a window drifted when nothing changed); None when either side has too few rows."""
    size = sample_size(len(window), len(baseline.rows))
    if size is None:
        return None
    rng = np.random.default_rng(seed)
    current = window.take(np.sort(rng.choice(len(window), size, replace=False)))
    reference = baseline.rows.take(np.sort(rng.choice(len(baseline.rows), size, replace=False)))
    told = domain_classifier(
        baseline.classifier_matrix(reference), baseline.classifier_matrix(current),
        categorical=baseline.categorical_mask, seed=seed,
    )  # fmt: skip
    classifier = _tail(told.auc, 0.5, baseline.classifier_spread(size), level, NULL_REPEATS)
    # which features separate the two: only worth its cost when they are told apart
    importances = (
        told.importances(seed) if classifier.drifted else np.zeros(told.folds[0][1].shape[1])
    )
    fitted, (mean_error, spread_error, count) = baseline.reconstruction()
    reconstruction = None
    if fitted.informative:
        score = float(fitted.errors(current).mean())
        reconstruction = _tail(score, mean_error, spread_error * math.sqrt(1 / size + 1 / count),
                               level)  # fmt: skip
    return Outcome(size=size, classifier=classifier, importances=importances,
                   reconstruction=reconstruction)  # fmt: skip
