"""Create models, predictions, prediction chunks, ground truth, rejected records and api keys

Revision ID: 0001
Revises: 
Create Date: 2026-11-23 03:54:16.911060
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


import driftwatch.models.base

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('api_keys',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('scope', sa.String(length=20), nullable=False),
    sa.Column('key_hash', sa.String(length=64), nullable=False),
    sa.Column('prefix', sa.String(length=16), nullable=False),
    sa.Column('created_at', driftwatch.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', driftwatch.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_keys')),
    sa.UniqueConstraint('key_hash', name=op.f('uq_api_keys_key_hash'))
    )
    op.create_table('ground_truth',
    sa.Column('model_id', sa.Integer(), nullable=False),
    sa.Column('prediction_id', sa.String(length=200), nullable=False),
    sa.Column('label_value', sa.Float(precision=53), nullable=True),
    sa.Column('label_class', sa.Text(), nullable=True),
    sa.Column('ts', driftwatch.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('received_at', driftwatch.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('model_id', 'prediction_id', name=op.f('pk_ground_truth'))
    )
    op.create_table('models',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('task', sa.String(length=40), nullable=False),
    sa.Column('window_seconds', sa.Integer(), nullable=False),
    sa.Column('features', sa.JSON(), nullable=False),
    sa.Column('drift', sa.JSON(), nullable=True),
    sa.Column('created_at', driftwatch.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', driftwatch.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_models')),
    sa.UniqueConstraint('name', name=op.f('uq_models_name'))
    )
    op.create_table('predictions',
    sa.Column('model_id', sa.Integer(), nullable=False),
    sa.Column('prediction_id', sa.String(length=200), nullable=False),
    sa.Column('ts', driftwatch.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('chunk_id', sa.BigInteger(), nullable=False),
    sa.Column('chunk_row', sa.Integer(), nullable=False),
    sa.Column('model_version', sa.String(length=200), nullable=True),
    sa.Column('prediction_value', sa.Float(precision=53), nullable=True),
    sa.Column('prediction_class', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('model_id', 'prediction_id', name=op.f('pk_predictions'))
    )
    with op.batch_alter_table('predictions', schema=None) as batch_op:
        batch_op.create_index('ix_predictions_model_id_ts', ['model_id', 'ts'], unique=False, postgresql_using='brin')

    op.create_table('prediction_chunks',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('model_id', sa.Integer(), nullable=False),
    sa.Column('ts_min', driftwatch.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('ts_max', driftwatch.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('rows', sa.Integer(), nullable=False),
    sa.Column('num_width', sa.Integer(), nullable=False),
    sa.Column('cat_width', sa.Integer(), nullable=False),
    sa.Column('timestamps', sa.LargeBinary(), nullable=False),
    sa.Column('num_values', sa.LargeBinary(), nullable=False),
    sa.Column('cat_codes', sa.LargeBinary(), nullable=False),
    sa.Column('prediction_values', sa.LargeBinary(), nullable=False),
    sa.Column('prediction_classes', sa.LargeBinary(), nullable=False),
    sa.Column('dictionary', sa.JSON(), nullable=False),
    sa.Column('created_at', driftwatch.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['model_id'], ['models.id'], name=op.f('fk_prediction_chunks_model_id_models'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_prediction_chunks'))
    )
    with op.batch_alter_table('prediction_chunks', schema=None) as batch_op:
        batch_op.create_index('ix_prediction_chunks_model_id_ts_min', ['model_id', 'ts_min'], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        # Column buffers are incompressible floats and codes: store them out of line without
        # pglz, which would cost more CPU than the rest of the write.
        op.execute(
            "ALTER TABLE prediction_chunks "
            + ", ".join(
                f"ALTER COLUMN {column} SET STORAGE EXTERNAL"
                for column in ("timestamps", "num_values", "cat_codes", "prediction_values",
                               "prediction_classes")
            )
        )

    op.create_table('rejected_records',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('model_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('batch_index', sa.Integer(), nullable=False),
    sa.Column('prediction_id', sa.Text(), nullable=True),
    sa.Column('error', sa.Text(), nullable=False),
    sa.Column('record', sa.JSON(), nullable=True),
    sa.Column('received_at', driftwatch.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['model_id'], ['models.id'], name=op.f('fk_rejected_records_model_id_models'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rejected_records'))
    )
    with op.batch_alter_table('rejected_records', schema=None) as batch_op:
        batch_op.create_index('ix_rejected_records_model_id_received_at', ['model_id', 'received_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('rejected_records', schema=None) as batch_op:
        batch_op.drop_index('ix_rejected_records_model_id_received_at')

    op.drop_table('rejected_records')
    with op.batch_alter_table('prediction_chunks', schema=None) as batch_op:
        batch_op.drop_index('ix_prediction_chunks_model_id_ts_min')

    op.drop_table('prediction_chunks')
    with op.batch_alter_table('predictions', schema=None) as batch_op:
        batch_op.drop_index('ix_predictions_model_id_ts', postgresql_using='brin')

    op.drop_table('predictions')
    op.drop_table('models')
    op.drop_table('ground_truth')
    op.drop_table('api_keys')
