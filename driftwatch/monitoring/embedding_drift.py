"""The drift entries of a window's embedding features (CONTRACT section 11), and what their
charts show: a 2-D PCA projection of baseline and window. Pure: no database.

Each embedding is tested by its method (``drift.per_feature.<name>.stattest``, default
``model``; see ``driftwatch.stats.embeddings``). Under the calibrated verdict its permutation
p-value is evidence like any column's and enters the window's Benjamini-Hochberg correction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from threadpoolctl import threadpool_limits

from driftwatch.core.result import FeatureDrift
from driftwatch.core.settings import DriftSettings
from driftwatch.core.specs import EMBEDDING, EmbeddingSpec
from driftwatch.monitoring.profiles import EmbeddingProfile, present_vectors
from driftwatch.stats import calibration
from driftwatch.stats import embeddings as methods
from driftwatch.storage.chunks import WindowColumns

PROJECTED_POINTS = 300  # points of each side in the chart's projection
NOT_FROM_SUMMARIES = (
    "an embedding's drift is computed from rows, and this run was computed from summaries "
    '(ingest keeps no summary of embedding features): POST the run with "exact": true while '
    "its rows exist"
)
TOO_FEW = "fewer than two vectors on a side: nothing to compare"


@dataclass(frozen=True)
class EmbeddingOutcome:
    entry: FeatureDrift
    evidence: calibration.ColumnEvidence | None
    distribution: dict[str, Any] | None


def _untested(spec: EmbeddingSpec, settings: DriftSettings, missing_share: float | None,
              error: str) -> FeatureDrift:  # fmt: skip
    own = settings.per_feature.get(spec.name, {})
    method = methods.get(own.get("stattest"))
    threshold = own.get("threshold")
    return FeatureDrift(
        name=spec.name, kind=EMBEDDING, stattest=method.name, score=None,
        threshold=method.default_threshold if threshold is None else float(threshold),
        drifted=None, error=error, missing_share=missing_share,
    )  # fmt: skip


def projection(reference: npt.NDArray[np.float32],
               current: npt.NDArray[np.float32]) -> dict[str, Any]:  # fmt: skip
    """Up to ``PROJECTED_POINTS`` vectors of each side on the baseline's first two principal
    components (fitted to the baseline's sample), and the share of variance they explain."""
    rng = np.random.default_rng([methods.SEED, len(reference), len(current), 5])
    base = methods.sample(reference, methods.SAMPLE_ROWS, rng).astype(np.float64)
    centre = base.mean(axis=0)
    # the eigenvectors of the (dimensions x dimensions) covariance: the principal axes at a
    # fraction of an SVD of the sample's (rows x dimensions) matrix
    centred = base - centre
    variance, vectors = np.linalg.eigh(centred.T @ centred)
    order = np.argsort(variance)[::-1][:2]
    axes = vectors[:, order].T
    total = float(np.clip(variance, 0, None).sum())
    explained = (variance[order] / total).tolist() if total > 0 else [0.0, 0.0]

    def points(matrix: npt.NDArray[np.float32]) -> list[list[float]]:
        shown = methods.sample(matrix, PROJECTED_POINTS, rng).astype(np.float64)
        projected = (shown - centre) @ axes.T
        return [[round(float(x), 5) for x in row] for row in projected.tolist()]

    return {"projection": {"reference": points(reference), "current": points(current),
                           "explained": [round(e, 5) for e in explained]}}  # fmt: skip


def embedding_outcome(
    spec: EmbeddingSpec, baseline: EmbeddingProfile, matrix: npt.NDArray[np.float32],
    settings: DriftSettings,
) -> EmbeddingOutcome:  # fmt: skip
    """One embedding feature of the window against its baseline column.

    Its linear algebra runs on one BLAS thread: the matrices are small (thousands of rows by
    the dimensions), and a threaded BLAS on cores other work shares spins: an SVD of 5,000 x
    384 took 26-49 s with OpenBLAS's threads where one thread took 2 s, on 2 loaded cores. The
    limit is the process's while it holds (threadpoolctl's): other threads' BLAS calls then run
    on one thread too, which changes no result."""
    with threadpool_limits(limits=1, user_api="blas"):
        return _outcome(spec, baseline, matrix, settings)


def _outcome(
    spec: EmbeddingSpec, baseline: EmbeddingProfile, matrix: npt.NDArray[np.float32],
    settings: DriftSettings,
) -> EmbeddingOutcome:  # fmt: skip
    current = present_vectors(matrix)
    rows = len(matrix)
    missing_share = (rows - len(current)) / rows if rows else None
    if len(current) < 2 or len(baseline.sample) < 2:
        return EmbeddingOutcome(_untested(spec, settings, missing_share, TOO_FEW), None, None)
    own = settings.per_feature.get(spec.name, {})
    tested = methods.evaluate(
        own.get("stattest"), baseline.sample, current, threshold=own.get("threshold"),
        reference_mean=baseline.mean, reference_rows=baseline.present,
    )  # fmt: skip
    # distance and mmd decide by their p-value: it is reported under either verdict
    shows_p = settings.calibrated or tested.test.pvalue
    entry = FeatureDrift(
        name=spec.name, kind=EMBEDDING, stattest=tested.test.name, score=tested.score,
        threshold=tested.threshold, drifted=tested.drifted, missing_share=missing_share,
        p_value=tested.p_value if shows_p else None,
    )  # fmt: skip
    evidence = None
    if settings.calibrated:
        n, m = baseline.present, len(current)
        evidence = calibration.ColumnEvidence(
            tested.test, tested.score, tested.threshold, tested.p_value, tested.null,
            n * m / (n + m), tested.effect_interval,
        )  # fmt: skip
    return EmbeddingOutcome(entry, evidence, projection(baseline.sample, current))


def embedding_outcomes(
    specs: Sequence[EmbeddingSpec], baseline: Sequence[EmbeddingProfile],
    window: WindowColumns, settings: DriftSettings,
) -> list[EmbeddingOutcome]:  # fmt: skip
    """The window's embedding features that the baseline has (one made before a feature was
    added lacks it: that feature is not compared)."""
    columns = {column.name: column for column in baseline}
    out = []
    for spec in specs:
        column = columns.get(spec.name)
        matrix = window.embeddings.get(spec.name)
        if column is None or matrix is None or column.dimensions != spec.dimensions:
            continue
        out.append(embedding_outcome(spec, column, matrix, settings))
    return out


def from_summaries(
    specs: Sequence[EmbeddingSpec], baseline: Sequence[EmbeddingProfile],
    settings: DriftSettings,
) -> list[FeatureDrift]:  # fmt: skip
    """A run from summaries: each embedding the baseline has, untested, saying why."""
    known = {column.name for column in baseline}
    return [_untested(spec, settings, None, NOT_FROM_SUMMARIES) for spec in specs
            if spec.name in known]  # fmt: skip
