"""Partition predictions and chunks by day on Postgres, and keep prediction keys apart

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 11:40:00

``prediction_keys`` takes over idempotency from the primary key of ``predictions``: a unique
key over time partitions would have to include the time. Stored chunks whose rows span several
days are split, one per day, and on Postgres ``predictions`` and ``prediction_chunks`` become
tables partitioned by day (retention drops partitions). ``prediction_chunks`` loses its foreign key to ``models``: attaching a partition
would lock ``models`` against writes to copy it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import op

import driftwatch.models.base

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BUFFERS = ("timestamps", "num_values", "cat_codes", "prediction_values", "prediction_classes")
CHUNK_COLUMNS = (
    "model_id", "ts_min", "ts_max", "rows", "num_width", "cat_width", *BUFFERS, "dictionary",
    "created_at",
)
PREDICTION_COLUMNS = (
    "model_id", "prediction_id", "ts", "chunk_id", "chunk_row", "model_version",
    "prediction_value", "prediction_class",
)


def upgrade() -> None:
    op.create_table('prediction_keys',
    sa.Column('model_id', sa.Integer(), nullable=False),
    sa.Column('prediction_id', sa.String(length=200), nullable=False),
    sa.Column('ts', driftwatch.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('model_id', 'prediction_id', name=op.f('pk_prediction_keys'))
    )
    with op.batch_alter_table('prediction_keys', schema=None) as batch_op:
        batch_op.create_index('ix_prediction_keys_ts', ['ts'], unique=False, postgresql_using='brin')
    with op.batch_alter_table('ground_truth', schema=None) as batch_op:
        batch_op.create_index('ix_ground_truth_ts', ['ts'], unique=False, postgresql_using='brin')
    op.execute(
        "INSERT INTO prediction_keys (model_id, prediction_id, ts) "
        "SELECT model_id, prediction_id, ts FROM predictions"
    )
    if op.get_bind().dialect.name == "postgresql":
        _partition_postgres()
    else:
        with op.batch_alter_table('prediction_chunks', schema=None) as batch_op:
            batch_op.drop_constraint('fk_prediction_chunks_model_id_models', type_='foreignkey')
        _split_chunks_spanning_days(op.get_bind(), "prediction_chunks", "predictions")


def _partition_postgres() -> None:
    from driftwatch.storage import partitions
    from driftwatch.core.retention import Retention
    from driftwatch.core.time import days_of
    import numpy as np

    op.execute("ALTER TABLE predictions RENAME TO predictions_old")
    op.execute("ALTER TABLE predictions_old RENAME CONSTRAINT pk_predictions TO pk_predictions_old")
    op.execute("ALTER INDEX ix_predictions_model_id_ts RENAME TO ix_predictions_old_model_id_ts")
    op.execute("ALTER TABLE prediction_chunks RENAME TO prediction_chunks_old")
    op.execute("ALTER TABLE prediction_chunks_old RENAME CONSTRAINT pk_prediction_chunks TO pk_prediction_chunks_old")
    op.execute("ALTER TABLE prediction_chunks_old DROP CONSTRAINT fk_prediction_chunks_model_id_models")
    op.execute("ALTER INDEX ix_prediction_chunks_model_id_ts_min RENAME TO ix_prediction_chunks_old_model_id_ts_min")
    op.execute("ALTER INDEX ix_prediction_chunks_model_id_created_at RENAME TO ix_prediction_chunks_old_model_id_created_at")
    op.execute("ALTER SEQUENCE prediction_chunks_id_seq OWNED BY NONE")

    # No primary key: prediction_keys holds the unique key; a B-tree here would cost a
    # quarter of the COPY again (benchmarks/storage_layouts.py).
    op.execute(
        "CREATE TABLE predictions (LIKE predictions_old INCLUDING DEFAULTS) PARTITION BY RANGE (ts)"
    )
    op.execute("CREATE INDEX ix_predictions_model_id_ts ON predictions USING brin (model_id, ts)")
    op.execute(
        "CREATE TABLE prediction_chunks (LIKE prediction_chunks_old INCLUDING DEFAULTS "
        "INCLUDING STORAGE) PARTITION BY RANGE (ts_min)"
    )
    op.execute("ALTER TABLE prediction_chunks ADD CONSTRAINT pk_prediction_chunks PRIMARY KEY (id, ts_min)")
    op.execute("CREATE INDEX ix_prediction_chunks_model_id_ts_min ON prediction_chunks (model_id, ts_min)")
    op.execute("CREATE INDEX ix_prediction_chunks_model_id_created_at ON prediction_chunks (model_id, created_at)")

    connection = op.get_bind()
    _split_chunks_spanning_days(connection, "prediction_chunks_old", "predictions_old")
    stamps = connection.execute(sa.text(
        "SELECT DISTINCT (floor(extract(epoch FROM ts) / 86400) * 86400000000)::bigint "
        "FROM predictions_old UNION SELECT DISTINCT "
        "(floor(extract(epoch FROM ts_min) / 86400) * 86400000000)::bigint FROM prediction_chunks_old"
    )).scalars().all()
    if stamps:
        days = days_of(np.array(stamps, dtype=np.int64))
        partitions.ensure(connection, days, now=datetime.now(UTC), retention=Retention())
    op.execute(
        f"INSERT INTO prediction_chunks (id, {', '.join(CHUNK_COLUMNS)}) "
        f"SELECT id, {', '.join(CHUNK_COLUMNS)} FROM prediction_chunks_old"
    )
    op.execute(
        f"INSERT INTO predictions ({', '.join(PREDICTION_COLUMNS)}) "
        f"SELECT {', '.join(PREDICTION_COLUMNS)} FROM predictions_old"
    )
    op.execute("DROP TABLE predictions_old")
    op.execute("DROP TABLE prediction_chunks_old")
    op.execute("ALTER SEQUENCE prediction_chunks_id_seq OWNED BY prediction_chunks.id")


def _chunk_table(name: str) -> sa.TableClause:
    return sa.table(
        name,
        sa.column("id", sa.BigInteger()),
        sa.column("model_id", sa.Integer()),
        sa.column("ts_min", driftwatch.models.base.UTCDateTime()),
        sa.column("ts_max", driftwatch.models.base.UTCDateTime()),
        sa.column("rows", sa.Integer()),
        sa.column("num_width", sa.Integer()),
        sa.column("cat_width", sa.Integer()),
        *(sa.column(buffer, sa.LargeBinary()) for buffer in BUFFERS),
        sa.column("dictionary", sa.JSON()),
        sa.column("created_at", driftwatch.models.base.UTCDateTime()),
    )


def _split_chunks_spanning_days(
    connection: sa.Connection, chunk_table: str, prediction_table: str
) -> None:
    """Chunks written before this revision may hold rows of several UTC days: one per day now
    (each in one partition), their predictions pointed at the new chunks."""
    from driftwatch.storage import chunks
    from driftwatch.core.time import day_start

    table = _chunk_table(chunk_table)
    predictions = sa.table(
        prediction_table, sa.column("chunk_id", sa.BigInteger()), sa.column("chunk_row", sa.Integer())
    )
    spanning = [
        chunk_id
        for chunk_id, low, high in connection.execute(
            sa.select(table.c.id, table.c.ts_min, table.c.ts_max)
        )
        if day_start(low) != day_start(high)
    ]
    if not spanning:
        return
    moves = sa.update(predictions).where(
        predictions.c.chunk_id == sa.bindparam("old_chunk"),
        predictions.c.chunk_row == sa.bindparam("old_row"),
    ).values(chunk_id=sa.bindparam("new_chunk"), chunk_row=sa.bindparam("new_row"))
    # each row moved is found by (chunk_id, chunk_row), which nothing indexes otherwise
    connection.exec_driver_sql(
        f"CREATE INDEX ix_0005_chunk_rows ON {prediction_table} (chunk_id, chunk_row)"
    )
    for chunk_id in spanning:
        stored = connection.execute(
            sa.select(*(table.c[name] for name in CHUNK_COLUMNS)).where(table.c.id == chunk_id)
        ).mappings().one()
        for positions, piece in chunks.split_by_day(dict(stored)):
            piece_id = connection.execute(
                sa.insert(table).values({name: piece[name] for name in CHUNK_COLUMNS})
                .returning(table.c.id)
            ).scalar_one()
            connection.execute(moves, [
                {"old_chunk": chunk_id, "old_row": int(old), "new_chunk": piece_id, "new_row": new}
                for new, old in enumerate(positions)
            ])
        connection.execute(sa.delete(table).where(table.c.id == chunk_id))
    connection.exec_driver_sql("DROP INDEX ix_0005_chunk_rows")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE TABLE predictions_flat (LIKE predictions INCLUDING DEFAULTS)")
        op.execute("INSERT INTO predictions_flat SELECT * FROM predictions")
        op.execute("ALTER SEQUENCE prediction_chunks_id_seq OWNED BY NONE")
        op.execute("CREATE TABLE prediction_chunks_flat (LIKE prediction_chunks INCLUDING DEFAULTS INCLUDING STORAGE)")
        op.execute("INSERT INTO prediction_chunks_flat SELECT * FROM prediction_chunks")
        op.execute("DROP TABLE predictions")
        op.execute("DROP TABLE prediction_chunks")
        op.execute("ALTER TABLE predictions_flat RENAME TO predictions")
        op.execute("ALTER TABLE predictions ADD CONSTRAINT pk_predictions PRIMARY KEY (model_id, prediction_id)")
        op.execute("CREATE INDEX ix_predictions_model_id_ts ON predictions USING brin (model_id, ts)")
        op.execute("ALTER TABLE prediction_chunks_flat RENAME TO prediction_chunks")
        op.execute("ALTER TABLE prediction_chunks ADD CONSTRAINT pk_prediction_chunks PRIMARY KEY (id)")
        op.execute("CREATE INDEX ix_prediction_chunks_model_id_ts_min ON prediction_chunks (model_id, ts_min)")
        op.execute("CREATE INDEX ix_prediction_chunks_model_id_created_at ON prediction_chunks (model_id, created_at)")
        op.execute("ALTER SEQUENCE prediction_chunks_id_seq OWNED BY prediction_chunks.id")
    op.execute(
        "DELETE FROM prediction_chunks WHERE model_id NOT IN (SELECT id FROM models)"
    )
    with op.batch_alter_table('prediction_chunks', schema=None) as batch_op:
        batch_op.create_foreign_key('fk_prediction_chunks_model_id_models', 'models', ['model_id'], ['id'], ondelete='CASCADE')
    with op.batch_alter_table('ground_truth', schema=None) as batch_op:
        batch_op.drop_index('ix_ground_truth_ts', postgresql_using='brin')
    with op.batch_alter_table('prediction_keys', schema=None) as batch_op:
        batch_op.drop_index('ix_prediction_keys_ts', postgresql_using='brin')
    op.drop_table('prediction_keys')
