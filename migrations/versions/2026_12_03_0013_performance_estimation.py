"""Models keep their performance settings; baselines their labeled scores and calibration

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 16:00:00

CONTRACT section 9. ``models.performance`` holds the decision threshold and the label coverage
at which a window is mature (null: the defaults). A binary classification baseline with labels
and scores in [0, 1] keeps its labeled (score, label) pairs and the calibration check made on
them, from which runs estimate performance before labels arrive (null for other baselines and
those made before).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0013'
down_revision: str | None = '0012'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("models") as batch:
        batch.add_column(sa.Column("performance", sa.JSON(), nullable=True))
    with op.batch_alter_table("baselines") as batch:
        batch.add_column(sa.Column("labeled_scores", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("calibration", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("baselines") as batch:
        batch.drop_column("calibration")
        batch.drop_column("labeled_scores")
    with op.batch_alter_table("models") as batch:
        batch.drop_column("performance")
