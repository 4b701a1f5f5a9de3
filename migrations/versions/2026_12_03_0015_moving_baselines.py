"""Baselines may be trailing or lagged spans of the model's own traffic

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03 20:00:00

CONTRACT section 8. A baseline whose ``source`` is ``trailing`` (the span of that length just
before each run's window) or ``lag`` (the same-length window that far back) keeps its length
in ``span_seconds``; each run merges that span's summaries (null for every other baseline).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0015'
down_revision: str | None = '0014'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("baselines") as batch:
        batch.add_column(sa.Column("span_seconds", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("baselines") as batch:
        batch.drop_column("span_seconds")
