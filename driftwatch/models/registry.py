"""Monitored models (the ML models a team registers) and their feature schema."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from driftwatch.models.base import Base, Name, UTCDateTime, utcnow


class MonitoredModel(Base):
    __tablename__ = "models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(Name, unique=True)
    task: Mapped[str] = mapped_column(String(40))
    # Length of one monitoring window, in seconds.
    window_seconds: Mapped[int] = mapped_column(Integer)
    # [{"name": ..., "kind": "numerical" | "categorical"}, ...]; the order is the storage order of
    # feature values in prediction rows and never changes once values are stored.
    features: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    drift: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # CONTRACT section 9: {"decision_threshold": ..., "label_coverage_min": ...} (null before
    # revision 0011: the defaults)
    performance: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # CONTRACT section 10: the categorical features whose values are segments (null: none),
    # and the rows a value needs in a window to be one (null: the default, 200)
    segments: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    segment_min_rows: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # The baseline runs compare against: the newest one, or the one activated since.
    active_baseline_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # The scheduler has queued every window ending at or before this time.
    scheduled_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
