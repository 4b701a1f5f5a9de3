"""Request and response bodies of the models API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal, NotRequired

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)
from typing_extensions import TypedDict

from driftwatch.core.specs import MAX_EMBEDDING_DIMENSIONS
from driftwatch.core.time import parse_duration
from driftwatch.text import Name

# Evidently's registry names (CONTRACT section 3).
STATTEST_NAMES = (
    "ks",
    "chisquare",
    "z",
    "wasserstein",
    "jensenshannon",
    "psi",
    "kl_div",
    "hellinger",
    "TVD",
    "anderson",
    "cramer_von_mises",
    "ed",
    "mannw",
    "t_test",
    "empirical_mmd",
    "g_test",
    "fisher_exact",
    "es",
)
# CONTRACT section 11: the drift methods of an embedding feature (Evidently's embedding-drift
# method names), chosen under drift.per_feature; "model" is the default.
EMBEDDING_STATTEST_NAMES = ("model", "distance", "ratio", "mmd")
Task = Literal["binary_classification", "multiclass_classification", "regression"]
FeatureName = Annotated[Name, Field(min_length=1, max_length=200)]
ModelName = Annotated[
    str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
]


def _check_stattest(name: str | None) -> str | None:
    if name is not None and name not in STATTEST_NAMES:
        raise ValueError(f"unknown stattest {name!r}; known: {', '.join(STATTEST_NAMES)}")
    return name


def _check_feature_stattest(name: str | None) -> str | None:
    """A per-feature test: a tabular one, or an embedding method (which features take which is
    checked against the model's features)."""
    if name is not None and name not in (*STATTEST_NAMES, *EMBEDDING_STATTEST_NAMES):
        known = ", ".join(STATTEST_NAMES)
        raise ValueError(
            f"unknown stattest {name!r}; known: {known}; for embedding features: "
            + ", ".join(EMBEDDING_STATTEST_NAMES)
        )
    return name


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


FeatureKindName = Literal["numerical", "categorical", "embedding"]


class Feature(Strict):
    name: FeatureName
    kind: FeatureKindName
    dimensions: int | None = Field(
        default=None,
        ge=1,
        le=MAX_EMBEDDING_DIMENSIONS,
        description="embedding features (required there, only there): the length of each value",
    )

    @model_validator(mode="after")
    def _check_dimensions(self) -> Feature:
        if self.kind == "embedding" and self.dimensions is None:
            raise ValueError(
                f"feature {self.name!r}: an embedding feature needs 'dimensions', the length "
                "of its arrays"
            )
        if self.kind != "embedding" and self.dimensions is not None:
            raise ValueError(
                f"feature {self.name!r}: 'dimensions' applies to embedding features only"
            )
        return self


class FeatureDriftSetting(Strict):
    stattest: str | None = None
    threshold: float | None = Field(default=None, gt=0)

    _stattest = field_validator("stattest")(_check_feature_stattest)


Verdict = Literal["calibrated", "evidently"]


class DriftSettings(Strict):
    num_stattest: str | None = None
    cat_stattest: str | None = None
    per_feature: dict[str, FeatureDriftSetting] = Field(default_factory=dict)
    drift_share: float = Field(default=0.5, gt=0, le=1)
    # CONTRACT section 7. Not given: "calibrated" for a new model; a PATCH keeps the stored one.
    verdict: Verdict | None = Field(
        default=None,
        description="how a column's drift is decided: 'calibrated' (p-values at the window's "
        "sample sizes, Benjamini-Hochberg across the window's columns at the level the "
        "false-alarm budget sets; the default for new models) or 'evidently' (Evidently 0.7's "
        "rule exactly). A PATCH that does not give it keeps the model's verdict",
    )
    false_alarms_per_month: float | None = Field(
        default=None,
        gt=0,
        allow_inf_nan=False,
        description="calibrated verdict: about how many windows a month (30 days) may have a "
        "drifted column when nothing drifts (default 1). A PATCH that does not give it keeps "
        "the model's budget",
    )

    cluster_by: FeatureName | None = Field(
        default=None,
        description="the feature naming the unit rows come in (a user, a session) when one "
        "unit sends many rows: it is not tested itself, and under the calibrated verdict the "
        "no-drift null moves whole clusters. Baselines made while it is set keep each value's "
        "cluster. A PATCH that does not give it keeps the model's; null removes it",
    )
    multivariate: bool = Field(
        default=True,
        description="multivariate drift on every run (a classifier told apart window from "
        "baseline rows, and the PCA reconstruction error; CONTRACT section 11); false "
        "switches it off",
    )

    _stattests = field_validator("num_stattest", "cat_stattest")(_check_stattest)


class DriftSettingsOut(DriftSettings):
    """A model's drift settings as stored, with the level its budget sets."""

    verdict: Verdict = Field(description="how a column's drift is decided (see the request)")
    false_alarms_per_month: float = Field(
        description="calibrated verdict: the false-alarm budget, windows a month (30 days)"
    )
    alpha_per_window: float = Field(
        description="calibrated verdict: the level one window is tested at, the budget over "
        "the windows in a month, at most 0.05"
    )
    expected_false_alarms_per_month: float = Field(
        description="calibrated verdict: windows a month with any drifted column expected when "
        "nothing drifts (alpha_per_window times the windows in a month; below the budget when "
        "the 0.05 cap binds)"
    )


def _check_window(value: str) -> str:
    parse_duration(value)
    return value


def _unique_features(features: list[Feature] | None) -> list[Feature] | None:
    if features is not None:
        names = [f.name for f in features]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"feature {duplicated[0]!r} is listed more than once")
    return features


DecisionThreshold = Annotated[
    float,
    Field(
        gt=0, lt=1, allow_inf_nan=False,
        description="binary classification: a score at or above it is the positive class "
        "(default 0.5)",
    ),
]  # fmt: skip
LabelCoverageMin = Annotated[
    float,
    Field(
        gt=0, le=1, allow_inf_nan=False,
        description="a window whose labeled predictions over predictions reach it is mature "
        "(default 0.8)",
    ),
]  # fmt: skip


SEGMENTS_MAX = 10  # segment features a model may name
SegmentFeatures = Annotated[
    list[FeatureName],
    Field(
        max_length=SEGMENTS_MAX,
        description="categorical features whose values are segments: each run reports the "
        "full result per value (CONTRACT section 10); [] removes them",
    ),
]
SegmentMinRows = Annotated[
    int,
    Field(
        ge=1, le=10_000_000,
        description="the rows a value of a segment feature needs in a window to be reported "
        "as a segment (default 200)",
    ),
]  # fmt: skip


def _unique_segments(segments: list[str] | None) -> list[str] | None:
    if segments is not None:
        duplicated = sorted({n for n in segments if segments.count(n) > 1})
        if duplicated:
            raise ValueError(f"segments: {duplicated[0]!r} is listed more than once")
    return segments


class ModelCreate(Strict):
    name: ModelName
    task: Task
    features: list[Feature] | None = None
    window: str = "1h"
    drift: DriftSettings | None = None
    decision_threshold: DecisionThreshold | None = None
    label_coverage_min: LabelCoverageMin | None = None
    segments: SegmentFeatures | None = None
    segment_min_rows: SegmentMinRows | None = None

    _segments = field_validator("segments")(_unique_segments)

    _window = field_validator("window")(_check_window)
    _features = field_validator("features")(_unique_features)


class ModelUpdate(Strict):
    """Only the fields given change. Features may be added; a stored feature keeps its kind."""

    features: list[Feature] | None = None
    window: str | None = None
    drift: DriftSettings | None = None
    decision_threshold: DecisionThreshold | None = None
    label_coverage_min: LabelCoverageMin | None = None
    segments: SegmentFeatures | None = None
    segment_min_rows: SegmentMinRows | None = None

    @model_validator(mode="after")
    def _check(self) -> ModelUpdate:
        if self.window is not None:
            _check_window(self.window)
        _unique_features(self.features)
        _unique_segments(self.segments)
        return self


class Counts(BaseModel):
    predictions: int
    labeled: int


class FeatureJSON(TypedDict):
    """A feature as responses write it: ``dimensions`` only for an embedding feature."""

    name: str
    kind: FeatureKindName
    dimensions: NotRequired[int]


class FeatureOut(BaseModel):
    """A feature as stored: its name is not checked again on the way out, so that a name
    stored before names were checked never makes a listing fail."""

    name: str
    kind: FeatureKindName
    dimensions: int | None = Field(
        default=None, description="embedding features only: the length of each value"
    )

    @model_serializer(mode="wrap")
    def _only_where_it_applies(self, handler: SerializerFunctionWrapHandler) -> FeatureJSON:
        data: FeatureJSON = handler(self)
        if data.get("dimensions") is None:
            data.pop("dimensions", None)
        return data


class ModelOut(BaseModel):
    name: str
    task: Task
    features: list[FeatureOut]
    window: str
    drift: DriftSettingsOut
    decision_threshold: float = Field(
        description="binary classification: a score at or above it is the positive class"
    )
    label_coverage_min: float = Field(
        description="the labeled share of a window's predictions at which it is mature"
    )
    segments: list[str] = Field(
        default_factory=list, description="categorical features whose values are segments"
    )
    segment_min_rows: int = Field(
        default=200, description="the rows a segment value needs in a window to be reported"
    )
    created_at: datetime
    counts: Counts | None = None
