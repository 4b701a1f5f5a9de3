"""Baseline columns keep the cluster of each value (drift.cluster_by)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 15:40:00

A model whose rows come in clusters (many per user or session) names the key in
``drift.cluster_by``; its baselines then keep, per column, the cluster of each value, so that
the calibrated verdict can permute whole clusters. Null for baselines made without a key.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("baseline_columns") as batch:
        batch.add_column(sa.Column("cluster_units", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("baseline_columns") as batch:
        batch.drop_column("cluster_units")
