"""Baselines keep the multivariate detectors' nulls once computed

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-04 13:00:00

CONTRACT section 11. ``baseline_columns.prepared`` holds, on a baseline's joint row (position
-2), what the multivariate detectors measured on the baseline itself, computed on first use
and kept so that no later process computes it again: the classifier's no-drift spread per
sample size, and the reconstruction's out-of-fold error mean, spread and count. Null
elsewhere, and until a run first needs them.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0018'
down_revision: str | None = '0017'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("baseline_columns") as batch:
        batch.add_column(sa.Column("prepared", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("baseline_columns") as batch:
        batch.drop_column("prepared")
