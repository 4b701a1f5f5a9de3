"""Give every run its kind: one window of its model, or a custom range

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 09:00:00

A run whose span is exactly one window of its model (its length, aligned to the epoch) at the
time of this migration is a ``window``; any other is ``custom``. Custom runs leave the time
series: their ``run_metrics`` rows are removed and the daily sums of their days made again.
(Stretches without traffic, ``no_traffic``, are recorded by the scheduler from now on.)
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import op

from driftwatch.models.base import UTCDateTime

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
BATCH = 1000

runs = sa.table(
    "runs", sa.column("id", sa.BigInteger), sa.column("model_id", sa.Integer),
    sa.column("window_start", UTCDateTime()), sa.column("window_end", UTCDateTime()),
    sa.column("kind", sa.String),
)  # fmt: skip
models = sa.table("models", sa.column("id", sa.Integer), sa.column("window_seconds", sa.Integer))
run_metrics = sa.table(
    "run_metrics", sa.column("run_id", sa.BigInteger), sa.column("metric", sa.String),
    sa.column("model_id", sa.Integer), sa.column("window_start", UTCDateTime()),
    sa.column("value", sa.Float),
)  # fmt: skip
run_metric_days = sa.table(
    "run_metric_days", sa.column("model_id", sa.Integer), sa.column("metric", sa.String),
    sa.column("day", UTCDateTime()), sa.column("low", sa.Float), sa.column("high", sa.Float),
    sa.column("total", sa.Float), sa.column("count", sa.Integer),
)  # fmt: skip


def upgrade() -> None:
    # a server default: every existing run is a window until found otherwise, and processes
    # of the previous version that still insert runs during an upgrade insert windows
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('kind', sa.String(length=20), server_default='window', nullable=False)
        )
        batch_op.create_index('ix_runs_model_id_window_end', ['model_id', 'window_end'],
                              unique=False)  # fmt: skip
    bind = op.get_bind()
    custom = _custom_runs(bind)
    days: set[tuple[int, datetime]] = set()
    for offset in range(0, len(custom), BATCH):
        ids = [run_id for run_id, _, _ in custom[offset : offset + BATCH]]
        bind.execute(runs.update().where(runs.c.id.in_(ids)).values(kind="custom"))
        bind.execute(run_metrics.delete().where(run_metrics.c.run_id.in_(ids)))
    for _, model_id, start in custom:
        days.add((model_id, start.astimezone(UTC).replace(hour=0, minute=0, second=0,
                                                          microsecond=0)))  # fmt: skip
    for model_id, day in sorted(days):
        _sum_day_again(bind, model_id, day)


def _custom_runs(bind: sa.Connection) -> list[tuple[int, int, datetime]]:
    """(id, model id, window start) of every run that is not one aligned window of its model."""
    query = sa.select(runs.c.id, runs.c.model_id, runs.c.window_start, runs.c.window_end,
                      models.c.window_seconds).join(models, models.c.id == runs.c.model_id)
    found = []
    rows = bind.execute(query.execution_options(stream_results=True, yield_per=10_000))
    for run_id, model_id, start, end, seconds in rows:
        length = timedelta(seconds=seconds)
        aligned = (start - EPOCH) % length == timedelta(0)
        if not (aligned and end - start == length):
            found.append((run_id, model_id, start))
    return found


def _sum_day_again(bind: sa.Connection, model_id: int, day: datetime) -> None:
    """The daily sums of one model and day, from the run metrics left (as the service does)."""
    bind.execute(run_metric_days.delete().where(run_metric_days.c.model_id == model_id,
                                                run_metric_days.c.day == day))  # fmt: skip
    summed = (
        sa.select(
            run_metrics.c.model_id, run_metrics.c.metric, sa.literal(day, UTCDateTime()),
            sa.func.min(run_metrics.c.value), sa.func.max(run_metrics.c.value),
            sa.func.sum(run_metrics.c.value), sa.func.count(run_metrics.c.value),
        )
        .where(run_metrics.c.model_id == model_id, run_metrics.c.window_start >= day,
               run_metrics.c.window_start < day + timedelta(days=1))
        .group_by(run_metrics.c.model_id, run_metrics.c.metric)
    )  # fmt: skip
    bind.execute(
        run_metric_days.insert().from_select(
            ["model_id", "metric", "day", "low", "high", "total", "count"], summed
        )
    )


def downgrade() -> None:
    # Custom runs stay (as runs); their metrics are not made again. Stretches without traffic
    # are not runs to the previous version: they go.
    op.execute("DELETE FROM runs WHERE kind = 'no_traffic'")
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_index('ix_runs_model_id_window_end')
        batch_op.drop_column('kind')
