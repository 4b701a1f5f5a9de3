"""Every ORM model, importable from one place (Alembic reads ``Base.metadata`` from here)."""

from driftwatch.models.alerting import (
    Alert,
    AlertEvent,
    AlertRuleState,
    Delivery,
    DeliveryAttempt,
    Endpoint,
    Silence,
)
from driftwatch.models.auth import ApiKey, AppSecret, DashboardSession
from driftwatch.models.base import Base
from driftwatch.models.ingest import (
    GroundTruth,
    Prediction,
    PredictionChunk,
    PredictionKey,
    RejectedRecord,
    ShadowPrediction,
)
from driftwatch.models.monitoring import (
    Baseline,
    BaselineColumn,
    BaselineSegmentColumn,
    Run,
    RunMetric,
    RunMetricDay,
)
from driftwatch.models.registry import MonitoredModel
from driftwatch.models.summaries import ColumnSummary

__all__ = [
    "Alert",
    "AlertEvent",
    "AlertRuleState",
    "ApiKey",
    "AppSecret",
    "Base",
    "Baseline",
    "BaselineColumn",
    "BaselineSegmentColumn",
    "ColumnSummary",
    "DashboardSession",
    "Delivery",
    "DeliveryAttempt",
    "Endpoint",
    "GroundTruth",
    "MonitoredModel",
    "Prediction",
    "PredictionChunk",
    "PredictionKey",
    "RejectedRecord",
    "Run",
    "RunMetric",
    "RunMetricDay",
    "ShadowPrediction",
    "Silence",
]
