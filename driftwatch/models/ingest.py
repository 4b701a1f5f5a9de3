"""Logged predictions, ground truth, and the records the collector rejected."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from driftwatch.models.base import Base, BigIntPK, FloatArray, Name, TextArray, UTCDateTime, utcnow


class Prediction(Base):
    """One logged prediction; ``prediction_id`` is the idempotency key within a model."""

    __tablename__ = "predictions"
    __table_args__ = (Index("ix_predictions_model_id_ts", "model_id", "ts"),)

    model_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("models.id", ondelete="CASCADE"), primary_key=True
    )
    prediction_id: Mapped[str] = mapped_column(Name, primary_key=True)
    ts: Mapped[datetime] = mapped_column(UTCDateTime)
    model_version: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # A numeric prediction (score, probability, regression value) or a class label.
    prediction_value: Mapped[float | None] = mapped_column(Float(53), nullable=True)
    prediction_class: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Numerical features in model order (NaN = missing), then categorical ones (NULL = missing).
    num_values: Mapped[list[float]] = mapped_column(FloatArray)
    cat_values: Mapped[list[str | None]] = mapped_column(TextArray)


class GroundTruth(Base):
    """A label, joined to its prediction by ``prediction_id``; it may arrive first."""

    __tablename__ = "ground_truth"

    model_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("models.id", ondelete="CASCADE"), primary_key=True
    )
    prediction_id: Mapped[str] = mapped_column(Name, primary_key=True)
    label_value: Mapped[float | None] = mapped_column(Float(53), nullable=True)
    label_class: Mapped[str | None] = mapped_column(Text, nullable=True)
    ts: Mapped[datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RejectedRecord(Base):
    """A record the collector refused, kept with its reason for operators."""

    __tablename__ = "rejected_records"
    __table_args__ = (Index("ix_rejected_records_model_id_received_at", "model_id", "received_at"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    model_id: Mapped[int] = mapped_column(Integer, ForeignKey("models.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))  # "prediction" or "ground_truth"
    batch_index: Mapped[int] = mapped_column(Integer)
    prediction_id: Mapped[str | None] = mapped_column(Text, nullable=True)
    error: Mapped[str] = mapped_column(Text)
    record: Mapped[Any] = mapped_column(JSON, nullable=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
