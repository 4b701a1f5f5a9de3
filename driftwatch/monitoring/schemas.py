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
    field_validator,
    model_serializer,
    model_validator,
)

from driftwatch.core.result import (
    ColumnDrift,
    DatasetDrift,
    FeatureDrift,
    Quality,
    RunResult,
)
from driftwatch.core.status import RunStatus
from driftwatch.core.time import iso, parse_duration
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


def _duration(field: str) -> Any:
    def check(value: str | None) -> str | None:
        if value is not None:
            try:
                parse_duration(value)
            except ValueError as error:
                raise ValueError(f"{field}: {error}") from None
        return value

    return field_validator(field)(check)


class BaselineCreate(Strict):
    """One of ``records`` ({"features", "prediction"?, "label"?} each), ``from_window``, or a
    span relative to each run's window: ``trailing`` or ``lag`` (CONTRACT section 8)."""

    name: Text = Field(min_length=1, max_length=200)
    records: list[dict[str, Any]] | None = None
    from_window: TimeRange | None = None
    trailing: str | None = Field(
        default=None,
        description="each run compares with the span of this length just before its window "
        "('7d', '24h'; a whole number of the model's summary buckets, an hour for windows of "
        "an hour or more), merged from summaries",
    )
    lag: str | None = Field(
        default=None,
        description="each run compares with the window of the same length this far back "
        "('7d': the same hour last week; a whole number of the model's windows), merged from "
        "summaries",
    )

    _trailing = _duration("trailing")
    _lag = _duration("lag")

    @model_validator(mode="after")
    def _one_source(self) -> BaselineCreate:
        given = [self.records, self.from_window, self.trailing, self.lag]
        if sum(source is not None for source in given) != 1:
            raise ValueError(
                "give either 'records' or 'from_window', or 'trailing' or 'lag' (or upload a file)"
            )
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
    trailing: str | None = Field(
        default=None, description="a trailing baseline: the length of the span before each window"
    )
    lag: str | None = Field(
        default=None, description="a lag baseline: how far back each window's span lies"
    )
    span: TimeRange | None = Field(
        default=None,
        description="a trailing or lag baseline: the span the model's current window compares "
        "with (its ``rows`` are that span's predictions, counted now)",
    )
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


RunKind = Literal["window", "custom", "no_traffic", "span"]  # Run.kind


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
    start: datetime | None = Field(
        default=None,
        description="a trailing or lag baseline: the span of traffic this run compared with "
        "(absent for other baselines)",
    )
    end: datetime | None = None

    @model_serializer(mode="wrap")
    def _span_when_known(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """``{"id", "name"}`` as the contract writes it; ``start`` and ``end`` when known."""
        out: dict[str, Any] = handler(self)
        for key in ("start", "end"):
            moment = getattr(self, key)
            if moment is None:
                out.pop(key, None)
            else:
                out[key] = iso(moment)
        return out


class RunOut(RunResult):
    """One run (CONTRACT section 3, Runs): the run's own fields and every field of its
    ``RunResult``, inherited, so what the result grows the API answers. While a run is pending
    its numbers are null."""

    id: int
    model: str
    kind: RunKind = Field(
        description="window: one of the model's windows; custom: a range computed on demand "
        "that is not whole windows; no_traffic: a stretch of windows without predictions; "
        "span: several whole windows, computed from their summaries"
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
