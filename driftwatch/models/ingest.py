"""Logged predictions, their feature chunks, ground truth, and the records the collector rejected.

A prediction is stored three times over, for three readers: its key in ``prediction_keys``
(model, id, time), which makes ``prediction_id`` the idempotency key and joins late labels to
their windows; a narrow ``predictions`` row (time, prediction, model version and where its
features are), which accuracy reads with its label; and its feature values inside the
``prediction_chunks`` row of the batch it came in, column by column (see
``driftwatch.storage.chunks``), which drift reads.

On Postgres ``predictions`` and ``prediction_chunks`` are partitioned by time (a day each, see
``driftwatch.storage.partitions``), so retention drops whole partitions. A chunk never spans two
days: a batch that does is stored as one chunk per day. The key table is not partitioned,
because a unique key over partitions must include the partition column, and a record sent
again without a timestamp (it then gets the time of receipt) must still be found.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from driftwatch.models.base import Base, BigIntPK, Name, UTCDateTime, utcnow


class PredictionKey(Base):
    """One stored prediction's key: ``prediction_id`` is the idempotency key within a model."""

    __tablename__ = "prediction_keys"
    # Retention deletes keys by time; BRIN costs next to nothing per row on Postgres.
    __table_args__ = (Index("ix_prediction_keys_ts", "ts", postgresql_using="brin"),)

    model_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    prediction_id: Mapped[str] = mapped_column(Name, primary_key=True)
    ts: Mapped[datetime] = mapped_column(UTCDateTime)


class Prediction(Base):
    """One logged prediction (unique by its key in ``prediction_keys``)."""

    __tablename__ = "predictions"
    # BRIN on Postgres: predictions arrive roughly in time order, and a BRIN index costs next to
    # nothing per row where a B-tree cost a quarter of the COPY (benchmarks/storage_layouts.py).
    __table_args__ = (
        Index("ix_predictions_model_id_ts", "model_id", "ts", postgresql_using="brin"),
    )

    # No foreign key: its per-row check costs as much as the rest of the COPY; every write
    # resolves the model first.
    model_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    prediction_id: Mapped[str] = mapped_column(Name, primary_key=True)
    ts: Mapped[datetime] = mapped_column(UTCDateTime)
    chunk_id: Mapped[int] = mapped_column(BigInteger)
    chunk_row: Mapped[int] = mapped_column(Integer)
    model_version: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # A numeric prediction (score, probability, regression value) or a class label.
    prediction_value: Mapped[float | None] = mapped_column(Float(53), nullable=True)
    prediction_class: Mapped[str | None] = mapped_column(Text, nullable=True)


class PredictionChunk(Base):
    """The feature values of one accepted batch, as raw column buffers."""

    __tablename__ = "prediction_chunks"
    __table_args__ = (
        Index("ix_prediction_chunks_model_id_ts_min", "model_id", "ts_min"),
        Index("ix_prediction_chunks_model_id_created_at", "model_id", "created_at"),
    )

    # On Postgres the primary key is (id, ts_min), the partition column being part of it.
    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    # No foreign key: attaching a partition would lock ``models`` against writes to copy it.
    model_id: Mapped[int] = mapped_column(Integer)
    ts_min: Mapped[datetime] = mapped_column(UTCDateTime)
    ts_max: Mapped[datetime] = mapped_column(UTCDateTime)
    rows: Mapped[int] = mapped_column(Integer)
    num_width: Mapped[int] = mapped_column(Integer)
    cat_width: Mapped[int] = mapped_column(Integer)
    timestamps: Mapped[bytes] = mapped_column(LargeBinary)
    num_values: Mapped[bytes] = mapped_column(LargeBinary)
    cat_codes: Mapped[bytes] = mapped_column(LargeBinary)
    prediction_values: Mapped[bytes] = mapped_column(LargeBinary)
    prediction_classes: Mapped[bytes] = mapped_column(LargeBinary)
    dictionary: Mapped[dict[str, Any]] = mapped_column(JSON)
    # a multiclass model's per-class probabilities (see ``driftwatch.storage.chunks``)
    prediction_scores: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # embedding features (CONTRACT section 11): each one's (rows, dimensions) float32 matrix
    # in turn, as the dictionary's "embeddings" lists them; null for a batch without any
    emb_values: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)


class GroundTruth(Base):
    """A label, joined to its prediction by ``prediction_id``; it may arrive first."""

    __tablename__ = "ground_truth"
    __table_args__ = (
        # Which windows got labels since they were computed (late labels recompute them).
        Index("ix_ground_truth_model_id_received_at", "model_id", "received_at"),
        # Retention deletes labels by time.
        Index("ix_ground_truth_ts", "ts", postgresql_using="brin"),
    )

    model_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    prediction_id: Mapped[str] = mapped_column(Name, primary_key=True)
    label_value: Mapped[float | None] = mapped_column(Float(53), nullable=True)
    label_class: Mapped[str | None] = mapped_column(Text, nullable=True)
    ts: Mapped[datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ShadowPrediction(Base):
    """What a shadow (challenger) version predicted for a served prediction, joined to it by
    ``prediction_id``; either may arrive first (CONTRACT section 10)."""

    __tablename__ = "shadow_predictions"
    __table_args__ = (Index("ix_shadow_predictions_received_at", "received_at"),)

    model_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    prediction_id: Mapped[str] = mapped_column(Name, primary_key=True)
    model_version: Mapped[str] = mapped_column(String(200), primary_key=True)
    prediction_value: Mapped[float | None] = mapped_column(Float(53), nullable=True)
    prediction_class: Mapped[str | None] = mapped_column(Text, nullable=True)
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
