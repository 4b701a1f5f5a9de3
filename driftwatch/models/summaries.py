"""Column summaries kept at ingest (``driftwatch.stats.summaries``): per model, per time bucket,
per column, so that a window or any span is a merge of its buckets' rows.

Each accepted batch appends one row per (bucket, column) it touches, in the transaction that
stores its predictions: writers never update a shared row, so concurrent batches to one bucket
can neither lose nor double a count. Compaction later replaces a closed bucket's rows by their
merge, settled (``parts`` says how many batch summaries a row holds). Not partitioned and not
removed by retention: summaries outlive the raw rows they were built from.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from driftwatch.models.base import Base, BigIntPK, UTCDateTime, utcnow


class ColumnSummary(Base):
    __tablename__ = "column_summaries"
    __table_args__ = (
        Index("ix_column_summaries_model_id_bucket_start", "model_id", "bucket_start"),
        # What compaction has to look at: the rows appended since its last pass, however long
        # the settled history grows.
        Index("ix_column_summaries_unsettled", "bucket_start",
              postgresql_where=text("NOT settled"), sqlite_where=text("NOT settled")),
    )  # fmt: skip

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    model_id: Mapped[int] = mapped_column(Integer, ForeignKey("models.id", ondelete="CASCADE"))
    bucket_start: Mapped[datetime] = mapped_column(UTCDateTime)
    # Length of the bucket, in seconds (a divisor of the model's window; see summaries.service).
    bucket_seconds: Mapped[int] = mapped_column(Integer)
    # "feature" (name: the feature's) or "prediction" (name: "value" or "class")
    role: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(20))  # "numerical" or "categorical"
    rows: Mapped[int] = mapped_column(Integer)  # values + missing
    parts: Mapped[int] = mapped_column(Integer, default=1)
    # False as appended; compaction settles a bucket's column into one row (true) that it
    # need not look at again.
    settled: Mapped[bool] = mapped_column(Boolean, default=False)
    version: Mapped[int] = mapped_column(SmallInteger)
    body: Mapped[bytes] = mapped_column(LargeBinary)  # summaries.dumps
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
