"""Add baselines, runs and run metrics

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 04:20:27.346332
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import driftwatch.models.base

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('baselines',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('model_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('source', sa.String(length=20), nullable=False),
    sa.Column('rows', sa.Integer(), nullable=False),
    sa.Column('window_start', driftwatch.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('window_end', driftwatch.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', driftwatch.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['model_id'], ['models.id'], name=op.f('fk_baselines_model_id_models'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_baselines'))
    )
    with op.batch_alter_table('baselines', schema=None) as batch_op:
        batch_op.create_index('ix_baselines_model_id', ['model_id'], unique=False)

    op.create_table('baseline_columns',
    sa.Column('baseline_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=True),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('rows', sa.Integer(), nullable=False),
    sa.Column('missing', sa.Integer(), nullable=False),
    sa.Column('sorted_values', sa.LargeBinary(), nullable=True),
    sa.Column('categories', sa.JSON(), nullable=True),
    sa.Column('counts', sa.LargeBinary(), nullable=True),
    sa.ForeignKeyConstraint(['baseline_id'], ['baselines.id'], name=op.f('fk_baseline_columns_baseline_id_baselines'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('baseline_id', 'position', name=op.f('pk_baseline_columns'))
    )
    if op.get_bind().dialect.name == "postgresql":
        # Sorted floats and counts do not compress: out of line, without pglz.
        op.execute(
            "ALTER TABLE baseline_columns ALTER COLUMN sorted_values SET STORAGE EXTERNAL, "
            "ALTER COLUMN counts SET STORAGE EXTERNAL"
        )
    op.create_table('runs',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('model_id', sa.Integer(), nullable=False),
    sa.Column('baseline_id', sa.Integer(), nullable=False),
    sa.Column('window_start', driftwatch.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('window_end', driftwatch.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('lease_until', driftwatch.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('owner', sa.String(length=200), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('computations', sa.Integer(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('rows', sa.Integer(), nullable=True),
    sa.Column('labeled_rows', sa.Integer(), nullable=True),
    sa.Column('result', sa.JSON(), nullable=True),
    sa.Column('duration_seconds', sa.Float(precision=53), nullable=True),
    sa.Column('created_at', driftwatch.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('computed_at', driftwatch.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['baseline_id'], ['baselines.id'], name=op.f('fk_runs_baseline_id_baselines'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['model_id'], ['models.id'], name=op.f('fk_runs_model_id_models'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_runs')),
    sa.UniqueConstraint('model_id', 'window_start', 'window_end', 'baseline_id', name=op.f('uq_runs_model_id'))
    )
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.create_index('ix_runs_model_id_window_start', ['model_id', 'window_start'], unique=False)
        batch_op.create_index('ix_runs_status_window_start', ['status', 'window_start'], unique=False)

    op.create_table('run_metrics',
    sa.Column('run_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('metric', sa.String(length=300), nullable=False),
    sa.Column('model_id', sa.Integer(), nullable=False),
    sa.Column('window_start', driftwatch.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('value', sa.Float(precision=53), nullable=True),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name=op.f('fk_run_metrics_run_id_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_id', 'metric', name=op.f('pk_run_metrics'))
    )
    with op.batch_alter_table('run_metrics', schema=None) as batch_op:
        batch_op.create_index('ix_run_metrics_model_id_metric_window_start', ['model_id', 'metric', 'window_start'], unique=False)

    with op.batch_alter_table('ground_truth', schema=None) as batch_op:
        batch_op.create_index('ix_ground_truth_model_id_received_at', ['model_id', 'received_at'], unique=False)

    with op.batch_alter_table('models', schema=None) as batch_op:
        batch_op.add_column(sa.Column('active_baseline_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('scheduled_until', driftwatch.models.base.UTCDateTime(timezone=True), nullable=True))

    with op.batch_alter_table('prediction_chunks', schema=None) as batch_op:
        batch_op.create_index('ix_prediction_chunks_model_id_created_at', ['model_id', 'created_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('prediction_chunks', schema=None) as batch_op:
        batch_op.drop_index('ix_prediction_chunks_model_id_created_at')

    with op.batch_alter_table('models', schema=None) as batch_op:
        batch_op.drop_column('scheduled_until')
        batch_op.drop_column('active_baseline_id')

    with op.batch_alter_table('ground_truth', schema=None) as batch_op:
        batch_op.drop_index('ix_ground_truth_model_id_received_at')

    with op.batch_alter_table('run_metrics', schema=None) as batch_op:
        batch_op.drop_index('ix_run_metrics_model_id_metric_window_start')

    op.drop_table('run_metrics')
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_index('ix_runs_status_window_start')
        batch_op.drop_index('ix_runs_model_id_window_start')

    op.drop_table('runs')
    op.drop_table('baseline_columns')
    with op.batch_alter_table('baselines', schema=None) as batch_op:
        batch_op.drop_index('ix_baselines_model_id')

    op.drop_table('baselines')
