"""Bodies of the baselines and runs API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_serializer,
    model_serializer,
    model_validator,
)

from driftwatch.core.result import ColumnDrift, DatasetDrift, FeatureDrift, Quality, RunResult
from driftwatch.core.status import RunStatus
from driftwatch.core.time import iso
from driftwatch.text import Text


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TimeRange(Strict):
    start: AwareDatetime
    end: AwareDatetime

    @model_validator(mode="after")
    def _ordered(self) -> TimeRange:
        if self.end <= self.start:
            raise ValueError("'end' must be after 'start'")
        return self


class BaselineCreate(Strict):
    """Either ``records`` ({"features", "prediction"?, "label"?} each) or ``from_window``."""

    name: Text = Field(min_length=1, max_length=200)
    records: list[dict[str, Any]] | None = None
    from_window: TimeRange | None = None

    @model_validator(mode="after")
    def _one_source(self) -> BaselineCreate:
        if (self.records is None) == (self.from_window is None):
            raise ValueError("give either 'records' or 'from_window' (or upload a file)")
        return self


class BaselineColumns(BaseModel):
    """Which columns (or record keys) of its data a baseline used, and which it ignored."""

    features: list[str]
    prediction: str | None
    label: str | None
    ignored: list[str]


class BaselineOut(BaseModel):
    id: int
    name: str
    rows: int
    source: str
    created_at: datetime
    active: bool
    window: TimeRange | None = None
    columns: BaselineColumns | None = Field(
        default=None, description="null for a baseline made before driftwatch recorded it"
    )
    warnings: list[str] = Field(
        default_factory=list, description="what was noticed in its data when it was made"
    )
    calibration: dict[str, Any] | None = Field(
        default=None,
        description="binary classification: the calibration check of its labeled scores "
        "(method, bins, statistic, p_value, ece, labeled_rows, calibrated, calibrator: identity "
        "or isotonic), or {'reason': ...} why it cannot back performance estimates; "
        "multiclass: {kind: multiclass, classes, labeled_rows, calibrated, per_class: {class: "
        "the same check}} from its per-class probabilities; null for regression and baselines "
        "made before",
    )


RunKind = Literal["window", "custom", "no_traffic"]  # Run.kind


class RunCreate(Strict):
    start: AwareDatetime
    end: AwareDatetime
    baseline: int | None = Field(
        default=None, ge=1, le=2**31 - 1, description="a baseline id; default: the active one"
    )
    exact: bool = Field(
        default=False,
        description="read the window's raw rows (while they exist) even above "
        "DRIFTWATCH_EXACT_MAX_ROWS; the result replaces the stored run's",
    )

    @model_validator(mode="after")
    def _ordered(self) -> RunCreate:
        if self.end <= self.start:
            raise ValueError("'end' must be after 'start'")
        return self


class WindowOut(BaseModel):
    start: datetime
    end: datetime

    @field_serializer("start", "end")
    def _iso(self, moment: datetime) -> str:
        return iso(moment)


class BaselineRef(BaseModel):
    id: int
    name: str | None


class RunOut(RunResult):
    """One run (CONTRACT section 3, Runs): the run's own fields and every field of its
    ``RunResult``, inherited, so what the result grows the API answers. While a run is pending
    its numbers are null."""

    id: int
    model: str
    kind: RunKind = Field(
        description="window: one of the model's windows; custom: a span computed on demand "
        "that is not one window; no_traffic: a stretch of windows without predictions"
    )
    window: WindowOut
    baseline: BaselineRef
    status: RunStatus
    computed_at: datetime | None
    duration_seconds: float | None
    error: str | None
    # a pending run has no result yet
    rows: int | None  # type: ignore[assignment]
    labeled_rows: int | None  # type: ignore[assignment]
    features: list[FeatureDrift] = Field(default_factory=list)
    prediction: ColumnDrift | None = None
    dataset: DatasetDrift | None = None  # type: ignore[assignment]
    accuracy: dict[str, float] | None = None
    quality: Quality | None = None  # type: ignore[assignment]

    @field_serializer("computed_at")
    def _iso(self, moment: datetime | None) -> str | None:
        return None if moment is None else iso(moment)

    @model_serializer(mode="wrap")
    def _run_first(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """The run's own fields first, as the contract writes a run, then its result."""
        out: dict[str, Any] = handler(self)
        first = ("id", "model", "kind", "window", "baseline", "status")
        return {**{k: out[k] for k in first if k in out}, **out}
