"""Record which columns a baseline used and which it ignored

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 09:00:00

``baselines.columns`` and ``baselines.warnings`` say what a baseline took from its data (null
for baselines made before).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('baselines', schema=None) as batch_op:
        batch_op.add_column(sa.Column('columns', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('warnings', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('baselines', schema=None) as batch_op:
        batch_op.drop_column('warnings')
        batch_op.drop_column('columns')
