"""Request and response bodies of the models API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

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
Task = Literal["binary_classification", "multiclass_classification", "regression"]
FeatureName = Annotated[Name, Field(min_length=1, max_length=200)]
ModelName = Annotated[
    str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
]


def _check_stattest(name: str | None) -> str | None:
    if name is not None and name not in STATTEST_NAMES:
        raise ValueError(f"unknown stattest {name!r}; known: {', '.join(STATTEST_NAMES)}")
    return name


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Feature(Strict):
    name: FeatureName
    kind: Literal["numerical", "categorical"]


class FeatureDriftSetting(Strict):
    stattest: str | None = None
    threshold: float | None = Field(default=None, gt=0)

    _stattest = field_validator("stattest")(_check_stattest)


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


class ModelCreate(Strict):
    name: ModelName
    task: Task
    features: list[Feature] | None = None
    window: str = "1h"
    drift: DriftSettings | None = None
    decision_threshold: DecisionThreshold | None = None
    label_coverage_min: LabelCoverageMin | None = None

    _window = field_validator("window")(_check_window)
    _features = field_validator("features")(_unique_features)


class ModelUpdate(Strict):
    """Only the fields given change. Features may be added; a stored feature keeps its kind."""

    features: list[Feature] | None = None
    window: str | None = None
    drift: DriftSettings | None = None
    decision_threshold: DecisionThreshold | None = None
    label_coverage_min: LabelCoverageMin | None = None

    @model_validator(mode="after")
    def _check(self) -> ModelUpdate:
        if self.window is not None:
            _check_window(self.window)
        _unique_features(self.features)
        return self


class Counts(BaseModel):
    predictions: int
    labeled: int


class FeatureOut(BaseModel):
    """A feature as stored: its name is not checked again on the way out, so that a name
    stored before names were checked never makes a listing fail."""

    name: str
    kind: Literal["numerical", "categorical"]


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
    created_at: datetime
    counts: Counts | None = None
