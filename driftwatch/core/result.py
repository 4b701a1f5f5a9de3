"""The run result: what ``compute()`` returns, the runs API serves, storage keeps in one column
and every reader (rules, the dashboard, Prometheus, webhook payloads) reads, through
``RunResult.metrics()``, the one metric vocabulary (``driftwatch.core.vocabulary``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from driftwatch.core.specs import FeatureSpec


class _Part(BaseModel):
    # Results stored by an older version may lack a field added later (it takes its default)
    # or hold one since retired (ignored), so a stored run always reads back.
    model_config = ConfigDict(extra="ignore")


class ColumnDrift(_Part):
    """One column's test against the baseline. ``score`` and ``drifted`` are null when the
    window holds no value of the column (nothing to compare) or the test could not run
    (``error`` says why)."""

    stattest: str | None = Field(description="Evidently's registry name of the test")
    score: float | None = Field(description="a p-value or a distance, as the test reports it")
    threshold: float | None
    drifted: bool | None
    error: str | None = Field(default=None, description="why the column was not tested")
    # CONTRACT section 7, under the calibrated verdict only (null under Evidently's rule).
    p_value: float | None = Field(
        default=None,
        description="calibrated verdict: how likely a score at least this far from the "
        "baseline is when nothing drifted, at this window's sample sizes",
    )
    verdict: Literal["drift", "no_drift", "insufficient"] | None = Field(
        default=None,
        description="calibrated verdict: drift, no_drift, or insufficient (not drifted, and "
        "the window cannot tell a change of the threshold's size from noise)",
    )
    detectable: float | None = Field(
        default=None,
        description="calibrated verdict: distance tests, the smallest score this window would "
        "call drift; p-value tests, the largest p-value it would call drift",
    )
    effect_interval: tuple[float, float] | None = Field(
        default=None, description="calibrated verdict: a 95% interval for the score"
    )
    # CONTRACT section 8: a run computed from summaries (null on rows).
    max_error: float | None = Field(
        default=None,
        description="computed from summaries: a bound on the score's error (0: exact)",
    )


class FeatureDrift(ColumnDrift):
    name: str
    kind: str = Field(description="numerical or categorical")
    missing_share: float | None = Field(description="share of the window's rows without a value")


class DatasetDrift(_Part):
    drifted_features: int | None
    drifted_share: float | None = Field(description="drifted features over tested features")
    drifted: bool | None = Field(description="drifted_share >= the model's drift_share")
    insufficient_share: float | None = Field(
        default=None,
        description="calibrated verdict: tested features whose verdict is insufficient, over "
        "tested features",
    )
    cluster_by: str | None = Field(
        default=None,
        description="calibrated verdict: the cluster key (drift.cluster_by) whose whole "
        "clusters the no-drift null moved; null when rows were taken as independent",
    )
    clusters: int | None = Field(
        default=None, description="calibrated verdict with cluster_by: clusters in the window"
    )


class Quality(_Part):
    missing_share: float | None = Field(description="missing cells over rows x features")
    new_categories: dict[str, list[str]] = Field(
        default_factory=dict,
        description="per feature, categories the baseline never saw: the 20 most frequent in "
        "the window (most frequent first) when there are more",
    )
    new_categories_total: dict[str, int] = Field(
        default_factory=dict,
        description="per feature, how many categories the baseline never saw (all of them)",
    )
    out_of_range: dict[str, float] = Field(
        default_factory=dict,
        description="per feature, share of the window's rows outside the baseline's range",
    )
    rejected: int = Field(default=0, description="prediction records refused in the window")

    def unseen_categories(self) -> int:
        """How many categories, over all features, the baseline never saw (a result stored
        before ``new_categories_total`` lists them all in ``new_categories``)."""
        return sum(
            self.new_categories_total.get(name, len(kept))
            for name, kept in self.new_categories.items()
        )


class Labels(_Part):
    """How far the window's labels have come (CONTRACT section 9)."""

    coverage: float | None = Field(
        description="labeled predictions over predictions; null for a window without any"
    )
    mature: bool = Field(
        description="coverage reached the model's label_coverage_min, or the window is older "
        "than the label horizon (DRIFTWATCH_LABEL_HORIZON): its labels are as complete as "
        "they will get"
    )


class Estimate(_Part):
    """A metric estimated before labels arrive, with a 95% interval for the value the realized
    metric takes once they do (CONTRACT section 9)."""

    value: float
    lower: float
    upper: float


class Difference(_Part):
    value: float
    lower: float
    upper: float
    method: str | None = Field(
        default=None,
        description="how the paired 95% interval was made: mcnemar (accuracy of classes: "
        "Newcombe's interval for paired proportions), delong (roc_auc), bootstrap (the "
        "others: a paired percentile bootstrap over ids); null in runs stored before",
    )
    p_value: float | None = Field(
        default=None,
        description="mcnemar and delong: the two-sided p-value of no difference (mcnemar: "
        "exact binomial on the discordant pairs)",
    )


class VersionSlice(_Part):
    """The rows of one model version served in the window (CONTRACT section 10)."""

    model_version: str | None = Field(description="null: predictions logged without a version")
    role: Literal["served", "shadow"] = "served"
    rows: int
    labeled_rows: int
    accuracy: dict[str, float] | None = Field(
        default=None, description="metrics over this version's labeled predictions"
    )
    prediction: ColumnDrift | None = Field(
        default=None, description="this version's predictions against the baseline's"
    )
    features: list[FeatureDrift] | None = Field(
        default=None,
        description="served, in a window of several versions computed from rows: each "
        "feature of this version's rows against the whole baseline (null: the window holds "
        "this version alone, so the run's features are its own; or it is computed from "
        "summaries, which keep no version)",
    )
    dataset: DatasetDrift | None = Field(
        default=None,
        description="served: the dataset verdict of this version's features (the run's own "
        "when the window holds this version alone)",
    )
    agreement: float | None = Field(
        default=None,
        description="shadow: the share of the shared prediction ids whose classes agree with "
        "the served model's (regression: one minus the mean absolute difference over the "
        "served predictions' standard deviation)",
    )
    delta: dict[str, Difference] = Field(
        default_factory=dict,
        description="shadow: its metric minus the served model's on the same labeled ids, "
        "with a paired 95% interval",
    )


class BaselineSpan(_Part):
    """The span of traffic a trailing or lag baseline compared the window with, [start, end)."""

    start: datetime
    end: datetime


class Span(_Part):
    """What a run over several of the model's windows (kind ``span``) covers."""

    start: str = Field(description="the span's start (ISO 8601, UTC), a window's start")
    end: str = Field(description="the span's end, a window's end")
    window_seconds: int = Field(description="the model's window when the span was computed")
    windows: int = Field(description="the model's windows in the span")
    windows_with_data: int = Field(description="those of its windows that held predictions")
    buckets: int | None = Field(
        default=None,
        description="summary buckets merged into the span (null when computed from rows)",
    )


class SegmentSlice(_Part):
    """The rows of one value of a segment feature, compared with the same segment of the
    baseline (CONTRACT section 10): the full result of a run, on those rows."""

    feature: str
    value: str
    baseline: Literal["segment", "whole"] = Field(
        default="segment",
        description="segment: compared with the baseline's rows of this value; whole: with "
        "the whole baseline (baseline_reason says why)",
    )
    baseline_rows: int | None = Field(default=None, description="the baseline rows compared with")
    baseline_reason: str | None = Field(
        default=None, description="why the segment is compared with the whole baseline"
    )
    rows: int
    labeled_rows: int
    features: list[FeatureDrift]
    prediction: ColumnDrift | None
    dataset: DatasetDrift
    accuracy: dict[str, float] | None = None
    quality: Quality
    labels: Labels | None = None
    accuracy_intervals: dict[str, tuple[float, float]] | None = None
    estimated: dict[str, Estimate] | None = None
    estimated_reason: str | None = None

    @classmethod
    def of(cls, feature: str, value: str, result: RunResult, **baseline: Any) -> SegmentSlice:
        """The segment entry of ``result``, computed on the segment's rows."""
        fields = result.model_dump(include=set(cls.model_fields) - {"feature", "value"})
        return cls(feature=feature, value=value, **{**fields, **baseline})

    def as_result(self) -> RunResult:
        return RunResult.model_validate(
            self.model_dump(exclude={"feature", "value", "baseline", "baseline_rows",
                                     "baseline_reason"})
        )  # fmt: skip


class MultivariateScore(_Part):
    """One multivariate detector on the window (CONTRACT section 11): a score, the threshold
    the baseline's own variation sets at the window's sample size and level, and the verdict.
    ``score``, ``threshold`` and ``drifted`` are null when the detector could not run
    (``verdict`` "insufficient": too few rows; null: not available, ``reason`` says why)."""

    score: float | None = None
    threshold: float | None = None
    drifted: bool | None = None
    verdict: Literal["drift", "no_drift", "insufficient"] | None = Field(
        default=None,
        description="drift, no_drift, or insufficient (too few rows on either side to compare "
        "their joint distributions); null when not available",
    )
    p_value: float | None = Field(
        default=None,
        description="calibrated verdict: how likely a score at least this high is when "
        "nothing drifted, at this sample size (not part of the per-column correction)",
    )
    reason: str | None = Field(default=None, description="why there is no score")


class ClassifierScore(MultivariateScore):
    top_features: list[str] = Field(
        default_factory=list,
        description="when drifted: the features that tell window from baseline most (by "
        "permutation importance), most first",
    )
    importances: dict[str, float] = Field(
        default_factory=dict,
        description="when drifted: per feature, the held-out ROC AUC lost when it is shuffled",
    )


class MultivariateDrift(_Part):
    """All tabular features at once (CONTRACT section 11): a classifier told apart window rows
    from baseline rows (score: its cross-validated ROC AUC) and the PCA reconstruction error
    of the window against the baseline's components (score: the mean error)."""

    classifier: ClassifierScore
    reconstruction: MultivariateScore
    features: list[str] = Field(default_factory=list, description="the features compared")
    sample_rows: int | None = Field(
        default=None,
        description="rows compared on each side (a sample of the window's and of the "
        "baseline's rows); null when not compared",
    )


class RunResult(_Part):
    """One window compared with a baseline (CONTRACT section 3, Runs)."""

    rows: int
    labeled_rows: int
    features: list[FeatureDrift]
    prediction: ColumnDrift | None
    dataset: DatasetDrift
    accuracy: dict[str, float] | None = Field(
        description="metrics over the window's labeled predictions; null without labels"
    )
    quality: Quality
    source: Literal["rows", "summaries"] = Field(
        default="rows",
        description="rows: computed from the window's raw rows; summaries: from its summaries "
        "kept at ingest (a window above DRIFTWATCH_EXACT_MAX_ROWS, or whose rows were removed)",
    )
    max_error: dict[str, float] = Field(
        default_factory=dict,
        description="computed from summaries: per tested feature, a bound on its score's error",
    )
    labels: Labels | None = Field(
        default=None, description="label coverage and maturity (null in runs stored before)"
    )
    accuracy_intervals: dict[str, tuple[float, float]] | None = Field(
        default=None,
        description="per realized metric of ``accuracy``, a 95% interval [lower, upper]",
    )
    estimated: dict[str, Estimate] | None = Field(
        default=None,
        description="metrics estimated before labels arrive, each with a 95% interval for "
        "its realized value: classification (roc_auc, accuracy, f1, precision, recall) from "
        "the calibrated scores alone (CBPE), regression (mae, rmse) by direct loss estimation; "
        "null when they cannot be trusted (estimated_reason says why)",
    )
    estimated_reason: str | None = Field(
        default=None, description="why there is no estimate (null when there is one)"
    )
    versions: list[VersionSlice] = Field(
        default_factory=list,
        description="the window split by model_version: each served version's rows, accuracy "
        "and prediction drift, largest first",
    )
    # CONTRACT section 8: what the window was compared with (null in runs stored before).
    baseline_rows: int | None = Field(
        default=None,
        description="rows of the baseline the window was compared with (a trailing or lag "
        "baseline: the predictions in its span for this run)",
    )
    baseline_span: BaselineSpan | None = Field(
        default=None,
        description="a trailing or lag baseline: the span compared with, [start, end)",
    )
    baseline_reason: str | None = Field(
        default=None,
        description="a trailing or lag baseline: why its span could not be compared (no "
        "predictions in it) or holds less than asked (it starts before the model's first "
        "prediction); null otherwise",
    )
    span: Span | None = Field(
        default=None,
        description="a run over several of the model's windows (kind span): what it covers",
    )
    segments: list[SegmentSlice] = Field(
        default_factory=list,
        description="per value of each segment feature with at least the model's "
        "segment_min_rows rows (the 50 largest a feature), the full result on its rows",
    )
    segments_omitted: dict[str, int] = Field(
        default_factory=dict,
        description="per segment feature, values of the window left out: fewer rows than "
        "segment_min_rows, or past the 50 largest",
    )
    segments_reason: str | None = Field(
        default=None,
        description="why the run has no segments although the model names some (null otherwise)",
    )
    multivariate: MultivariateDrift | None = Field(
        default=None,
        description="models with at least two numerical or categorical features: drift of "
        "their joint distribution (null for other models, when switched off, and in runs "
        "stored before)",
    )

    @classmethod
    def empty(cls, features: Sequence[FeatureSpec], *, rejected: int = 0) -> RunResult:
        """The result of a window without predictions (a stretch without traffic): no rows,
        every feature listed untested, no drift verdict, no accuracy; ``rejected`` records
        refused in it still count."""
        return cls(
            rows=0,
            labeled_rows=0,
            features=[
                FeatureDrift(name=f.name, kind=f.kind, stattest=None, score=None, threshold=None,
                             drifted=None, missing_share=None)
                for f in features
            ],
            prediction=None,
            dataset=DatasetDrift(drifted_features=None, drifted_share=None, drifted=None),
            accuracy=None,
            quality=Quality(missing_share=None, rejected=rejected),
            labels=Labels(coverage=None, mature=True),  # no prediction waits for a label
        )  # fmt: skip

    def feature(self, name: str) -> FeatureDrift | None:
        return next((f for f in self.features if f.name == name), None)

    def metrics(self) -> dict[str, float | None]:
        """Every number of the run under the vocabulary's names (``dataset.drifted_share``,
        ``feature.age.score``, ...); None where the run has no value (no data, no labels)."""
        flat: dict[str, float | None] = {
            "rows": self.rows,
            "labeled_rows": self.labeled_rows,
            "baseline_rows": self.baseline_rows,
            "dataset.drifted_share": self.dataset.drifted_share,
            "dataset.drifted_features": self.dataset.drifted_features,
            "dataset.drifted": _flag(self.dataset.drifted),
            "dataset.insufficient_share": self.dataset.insufficient_share,
            "quality.missing_share": self.quality.missing_share,
            "quality.rejected": self.quality.rejected,
            "quality.new_categories": self.quality.unseen_categories(),
        }
        for feature in self.features:
            prefix = f"feature.{feature.name}"
            flat[f"{prefix}.score"] = feature.score
            flat[f"{prefix}.drifted"] = _flag(feature.drifted)
            flat[f"{prefix}.missing_share"] = feature.missing_share
            flat[f"{prefix}.p_value"] = feature.p_value
            flat[f"{prefix}.insufficient"] = (
                None if feature.verdict is None else float(feature.verdict == "insufficient")
            )
            if feature.kind == "numerical":
                flat[f"{prefix}.out_of_range"] = (
                    self.quality.out_of_range.get(feature.name, 0.0) if self.rows else None
                )
        if self.prediction is not None:
            flat["prediction.score"] = self.prediction.score
            flat["prediction.drifted"] = _flag(self.prediction.drifted)
            flat["prediction.p_value"] = self.prediction.p_value
        for name, value in (self.accuracy or {}).items():
            flat[f"accuracy.{name}"] = value
        if self.labels is not None:
            flat["labels.coverage"] = self.labels.coverage
        for name, estimate in (self.estimated or {}).items():
            flat[f"estimated.{name}"] = estimate.value
            flat[f"estimated.{name}.lower"] = estimate.lower
            flat[f"estimated.{name}.upper"] = estimate.upper
        if self.multivariate is not None:
            for name, detector in (
                ("classifier", self.multivariate.classifier),
                ("reconstruction", self.multivariate.reconstruction),
            ):
                flat[f"multivariate.{name}.score"] = detector.score
                flat[f"multivariate.{name}.threshold"] = detector.threshold
                flat[f"multivariate.{name}.drifted"] = _flag(detector.drifted)
                flat[f"multivariate.{name}.p_value"] = detector.p_value
        for version in self.versions:
            if version.model_version is None:
                continue
            prefix = f"version[{version.model_version}]"
            flat[f"{prefix}.rows"] = version.rows
            flat[f"{prefix}.labeled_rows"] = version.labeled_rows
            for name, value in (version.accuracy or {}).items():
                flat[f"{prefix}.accuracy.{name}"] = value
            if version.prediction is not None:
                flat[f"{prefix}.prediction.score"] = version.prediction.score
                flat[f"{prefix}.prediction.drifted"] = _flag(version.prediction.drifted)
            if version.dataset is not None:
                flat[f"{prefix}.dataset.drifted_share"] = version.dataset.drifted_share
                flat[f"{prefix}.dataset.drifted"] = _flag(version.dataset.drifted)
            if version.role == "shadow":
                flat[f"{prefix}.agreement"] = version.agreement
            for name, difference in version.delta.items():
                flat[f"{prefix}.delta.{name}"] = difference.value
                flat[f"{prefix}.delta.{name}.lower"] = difference.lower
                flat[f"{prefix}.delta.{name}.upper"] = difference.upper
        flat.update(self.segment_metrics())
        return flat

    def segment_metrics(self) -> dict[str, float | None]:
        """Every number of each segment, ``segment[<feature>=<value>].<metric>``."""
        flat: dict[str, float | None] = {}
        for segment in self.segments:
            prefix = segment_prefix(segment.feature, segment.value)
            for name, value in segment.as_result().metrics().items():
                flat[f"{prefix}.{name}"] = value
        return flat

    def stored(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def segment_prefix(feature: str, value: str) -> str:
    """How metrics address a segment: ``segment[region=EU]``."""
    return f"segment[{feature}={value}]"


def _flag(value: bool | None) -> float | None:
    return None if value is None else float(value)
