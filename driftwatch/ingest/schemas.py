"""Ingest bodies. The collector parses batches itself (it is the hot path); these models
describe them in the OpenAPI document and shape the answers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

FeatureValue = float | str | bool | None


class PredictionRecord(BaseModel):
    prediction_id: str | None = Field(
        default=None, description="Idempotency key within the model; generated when absent."
    )
    timestamp: datetime | None = Field(default=None, description="Defaults to the time of receipt.")
    features: dict[str, FeatureValue]
    prediction: float | str | bool
    model_version: str | None = None


class Float64Column(BaseModel):
    """A column of numbers as base64 of little-endian float64 values; NaN is a missing value."""

    f8: str


class PredictionColumnsBody(BaseModel):
    """The same records as parallel lists (what the SDK sends: smaller and faster to check)."""

    prediction: list[float | str | bool]
    prediction_id: list[str | None] | None = None
    timestamp: list[float | str | None] | None = Field(
        default=None, description="ISO 8601 strings or Unix seconds"
    )
    model_version: list[str | None] | None = None
    features: dict[str, list[FeatureValue] | Float64Column] = Field(default_factory=dict)


class PredictionBatch(BaseModel):
    """Either ``records`` (one object per prediction) or ``columns``."""

    records: list[PredictionRecord] | None = None
    columns: PredictionColumnsBody | None = None


class GroundTruthRecord(BaseModel):
    prediction_id: str
    label: float | str | bool
    timestamp: datetime | None = None


class GroundTruthBatch(BaseModel):
    records: list[GroundTruthRecord]


class ShadowPredictionRecord(BaseModel):
    prediction_id: str = Field(description="the served prediction this one shadows")
    model_version: str = Field(description="the shadow (challenger) version")
    prediction: float | str | bool


class ShadowPredictionBatch(BaseModel):
    records: list[ShadowPredictionRecord]


class RejectedItem(BaseModel):
    index: int
    prediction_id: str | None
    error: str


class IngestResult(BaseModel):
    accepted: int
    duplicates: int
    rejected: list[RejectedItem]


class RejectedRecordOut(BaseModel):
    id: int
    kind: str
    index: int
    prediction_id: str | None
    error: str
    record: Any
    received_at: datetime


def inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema with its ``$defs`` inlined, for an ``openapi_extra`` body."""
    schema = model.model_json_schema()
    definitions = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve(definitions[ref.removeprefix("#/$defs/")])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved
