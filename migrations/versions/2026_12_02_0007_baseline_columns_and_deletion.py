"""Record which columns a baseline used and which it ignored, and when it was deleted

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 09:00:00

``baselines.columns`` and ``baselines.warnings`` say what a baseline took from its data (null
for baselines made before). ``baselines.deleted_at``: a deleted baseline loses its prepared
columns but keeps its row, so that the runs computed against it (history) keep their baseline
and its name.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import driftwatch.models.base

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('baselines', schema=None) as batch_op:
        batch_op.add_column(sa.Column('columns', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('warnings', sa.JSON(), nullable=True))
        batch_op.add_column(
            sa.Column('deleted_at', driftwatch.models.base.UTCDateTime(timezone=True),
                      nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table('baselines', schema=None) as batch_op:
        batch_op.drop_column('deleted_at')
        batch_op.drop_column('warnings')
        batch_op.drop_column('columns')
