"""Prediction chunks keep a multiclass model's per-class probabilities

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-03 19:00:00

CONTRACT section 9. ``prediction_chunks.prediction_scores`` holds, for a batch whose
predictions were per-class probabilities (``"prediction": {"cat": 0.7, "dog": 0.3}``), those
probabilities as raw float64 buffers class by class (the classes, sorted, in the chunk's
``dictionary["score_classes"]``); null for every other chunk. On Postgres the column is added
to the partitioned parent, and so to every partition.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0017'
down_revision: str | None = '0016'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("prediction_chunks") as batch:
        batch.add_column(sa.Column("prediction_scores", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("prediction_chunks") as batch:
        batch.drop_column("prediction_scores")
