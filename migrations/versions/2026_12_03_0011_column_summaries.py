"""Keep column summaries at ingest

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 15:26:19

One row per (model, time bucket, column) and accepted batch, merged later per closed bucket
into one settled row (``driftwatch.models.summaries``); a partial index holds the rows not
settled yet, all compaction looks at. Predictions stored before this revision have no summaries:
their windows are computed from rows, as before.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import driftwatch.models.base

revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('column_summaries',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('model_id', sa.Integer(), nullable=False),
    sa.Column('bucket_start', driftwatch.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('bucket_seconds', sa.Integer(), nullable=False),
    sa.Column('role', sa.String(length=20), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('rows', sa.Integer(), nullable=False),
    sa.Column('parts', sa.Integer(), nullable=False),
    sa.Column('settled', sa.Boolean(), nullable=False),
    sa.Column('version', sa.SmallInteger(), nullable=False),
    sa.Column('body', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', driftwatch.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['model_id'], ['models.id'], name=op.f('fk_column_summaries_model_id_models'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_column_summaries'))
    )
    with op.batch_alter_table('column_summaries', schema=None) as batch_op:
        batch_op.create_index('ix_column_summaries_model_id_bucket_start', ['model_id', 'bucket_start'], unique=False)
        batch_op.create_index('ix_column_summaries_unsettled', ['bucket_start'], unique=False, postgresql_where=sa.text('NOT settled'), sqlite_where=sa.text('NOT settled'))


def downgrade() -> None:
    with op.batch_alter_table('column_summaries', schema=None) as batch_op:
        batch_op.drop_index('ix_column_summaries_unsettled', postgresql_where=sa.text('NOT settled'), sqlite_where=sa.text('NOT settled'))
        batch_op.drop_index('ix_column_summaries_model_id_bucket_start')

    op.drop_table('column_summaries')
