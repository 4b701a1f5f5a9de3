"""Shadow predictions: what challenger versions predicted for the served predictions

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 16:40:00

One row per (model, prediction id, shadow version), joined to the served prediction by id
when a run is computed, in whichever order they arrived (CONTRACT section 10).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from driftwatch.models.base import UTCDateTime

revision: str = '0012'
down_revision: str | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "shadow_predictions",
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("prediction_id", sa.String(length=200), nullable=False),
        sa.Column("model_version", sa.String(length=200), nullable=False),
        sa.Column("prediction_value", sa.Float(precision=53), nullable=True),
        sa.Column("prediction_class", sa.Text(), nullable=True),
        sa.Column("received_at", UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("model_id", "prediction_id", "model_version"),
    )
    op.create_index("ix_shadow_predictions_received_at", "shadow_predictions", ["received_at"])


def downgrade() -> None:
    op.drop_index("ix_shadow_predictions_received_at", table_name="shadow_predictions")
    op.drop_table("shadow_predictions")
