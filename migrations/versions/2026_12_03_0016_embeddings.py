"""Prediction chunks keep embedding features; baseline columns their sample and mean

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03 19:00:00

CONTRACT section 11. ``prediction_chunks.emb_values`` holds a batch's embedding features as
float32 matrices, one after another in the order the chunk's dictionary names them (null for a
batch without any). An embedding column of a baseline keeps a uniform sample of its vectors
(``vectors``, float32, row by row) and the mean of all of them (``vector_mean``, float64).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0016'
down_revision: str | None = '0015'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("prediction_chunks") as batch:
        batch.add_column(sa.Column("emb_values", sa.LargeBinary(), nullable=True))
    with op.batch_alter_table("baseline_columns") as batch:
        batch.add_column(sa.Column("vectors", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("vector_mean", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("baseline_columns") as batch:
        batch.drop_column("vector_mean")
        batch.drop_column("vectors")
    with op.batch_alter_table("prediction_chunks") as batch:
        batch.drop_column("emb_values")
