"""Give every run its kind: one window of its model, a custom range, or a stretch without traffic

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 09:00:00

A run is a ``window`` when its span is one window of a length the model used: it lasts a whole
number of seconds, starts at a multiple of that length from the epoch, and that length is
either the model's window now, or one the scheduler computed windows of for the model (a run
of that length with an ``owner``: only the scheduler claims runs; runs computed on demand by
earlier versions have none), or one of which two runs follow each other (a window series
computed on demand, say by a cron job, while the model had that window). So a model whose
window was changed (PATCH) keeps its earlier windows. Any other run is ``custom``: a range
that is not aligned to its own length (90 minutes from 00:30, even if the scheduler computed
it again for late labels), or aligned but alone of its length (one range of three hours).
In doubt a run stays a window (and keeps its metrics): two custom ranges that follow each
other, aligned to their common length, stay in the series as they were. Custom runs leave
the time series: their ``run_metrics`` rows are removed.

The empty windows the scheduler of earlier versions computed (done, no rows, no labels) become
stretches without traffic, as the scheduler records them now: consecutive ones of a model and
baseline one ``no_traffic`` row (the first one's, made as long as all of them, the records
refused in them summed in its result). The others go; alerts and their events that named
them name the stretch. (Where a custom range has that very span and baseline, the windows
stay.) Their ``run_metrics`` rows are removed too (stretches are not windows of
the series). The daily sums of every day that lost metrics are made again.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

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
    sa.column("baseline_id", sa.Integer), sa.column("window_start", UTCDateTime()),
    sa.column("window_end", UTCDateTime()), sa.column("kind", sa.String),
    sa.column("owner", sa.String), sa.column("status", sa.String),
    sa.column("rows", sa.Integer), sa.column("labeled_rows", sa.Integer),
    sa.column("result", sa.JSON),
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
alerts = sa.table("alerts", sa.column("run_id", sa.BigInteger))
alert_events = sa.table("alert_events", sa.column("run_id", sa.BigInteger))


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
    days: set[tuple[int, datetime]] = set()
    custom = _custom_runs(bind)
    for offset in range(0, len(custom), BATCH):
        ids = [run_id for run_id, _, _ in custom[offset : offset + BATCH]]
        bind.execute(runs.update().where(runs.c.id.in_(ids)).values(kind="custom"))
        bind.execute(run_metrics.delete().where(run_metrics.c.run_id.in_(ids)))
    days.update((model_id, _day(start)) for _, model_id, start in custom)
    for stretch in _empty_stretches(bind):
        days.update((stretch.model_id, _day(start)) for start in stretch.starts)
        _record_stretch(bind, stretch)
    for model_id, day in sorted(days):
        _sum_day_again(bind, model_id, day)


def _day(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def _own_length(start: datetime, end: datetime) -> timedelta | None:
    """The run's length if the run is one window of that length (a whole number of seconds,
    starting at a multiple of it from the epoch), else None."""
    length = end - start
    if length <= timedelta(0) or length % timedelta(seconds=1):
        return None
    return length if (start - EPOCH) % length == timedelta(0) else None


def _series_lengths(bind: sa.Connection) -> set[tuple[int, timedelta]]:
    """(model id, length) of the window lengths each model's runs show it used: lengths the
    scheduler computed windows of, and lengths of which one run starts where another ends."""
    query = sa.select(runs.c.model_id, runs.c.window_start, runs.c.window_end, runs.c.owner)
    rows = bind.execute(
        query.order_by(runs.c.model_id, runs.c.window_start)
        .execution_options(stream_results=True, yield_per=10_000)
    )  # fmt: skip
    found: set[tuple[int, timedelta]] = set()
    model: int | None = None
    ends: list[tuple[datetime, timedelta]] = []  # a heap of the model's runs' ends to come
    pending: set[tuple[datetime, timedelta]] = set()
    for model_id, start, end, owner in rows:
        length = _own_length(start, end)
        if model_id != model:
            model, ends, pending = model_id, [], set()
        while ends and ends[0][0] < start:  # runs ending before this one starts end no series
            pending.discard(heapq.heappop(ends))
        if length is None:
            continue
        if owner is not None or (start, length) in pending:
            found.add((model_id, length))
        if (end, length) not in pending:
            pending.add((end, length))
            heapq.heappush(ends, (end, length))
    return found


def _custom_runs(bind: sa.Connection) -> list[tuple[int, int, datetime]]:
    """(id, model id, window start) of every run that is not one window of a length its model
    used (the module's docstring says how that is told)."""
    series = _series_lengths(bind)
    query = sa.select(runs.c.id, runs.c.model_id, runs.c.window_start, runs.c.window_end,
                      models.c.window_seconds).join(models, models.c.id == runs.c.model_id)
    found = []
    rows = bind.execute(query.execution_options(stream_results=True, yield_per=10_000))
    for run_id, model_id, start, end, seconds in rows:
        length = _own_length(start, end)
        if length is None or (
            length != timedelta(seconds=seconds) and (model_id, length) not in series
        ):
            found.append((run_id, model_id, start))
    return found


class _Stretch:
    """Consecutive empty windows of one model and baseline: the first run becomes the stretch."""

    def __init__(self, model_id: int, baseline_id: int, first: int, end: datetime) -> None:
        self.model_id, self.baseline_id, self.first, self.end = model_id, baseline_id, first, end
        self.ids: list[int] = [first]
        self.starts: list[datetime] = []


def _empty_stretches(bind: sa.Connection) -> list[_Stretch]:
    """Consecutive empty windows (done, no rows, no labels) of each model and baseline."""
    query = (
        sa.select(runs.c.id, runs.c.model_id, runs.c.baseline_id, runs.c.window_start,
                  runs.c.window_end)
        .where(runs.c.kind == "window", runs.c.status == "done", runs.c.rows == 0,
               sa.func.coalesce(runs.c.labeled_rows, 0) == 0)
        .order_by(runs.c.model_id, runs.c.baseline_id, runs.c.window_start)
    )  # fmt: skip
    stretches: list[_Stretch] = []
    for run_id, model_id, baseline_id, start, end in bind.execute(query):
        last = stretches[-1] if stretches else None
        if last is not None and (last.model_id, last.baseline_id, last.end) == (
            model_id, baseline_id, start):  # fmt: skip
            last.ids.append(run_id)
        else:
            last = _Stretch(model_id, baseline_id, run_id, end)
            stretches.append(last)
        last.end = end
        last.starts.append(start)
    return stretches


def _rejected(result: Any) -> int:
    quality = result.get("quality") if isinstance(result, dict) else None
    return int((quality or {}).get("rejected") or 0)


def _record_stretch(bind: sa.Connection, stretch: _Stretch) -> None:
    """Make the first run of the stretch its row, as long as all of them, and remove the
    others (alerts that named them name it)."""
    taken = sa.select(runs.c.id).where(
        runs.c.model_id == stretch.model_id, runs.c.baseline_id == stretch.baseline_id,
        runs.c.window_start == stretch.starts[0], runs.c.window_end == stretch.end,
        runs.c.id.not_in([stretch.first]),
    )  # fmt: skip
    if len(stretch.ids) > 1 and bind.execute(taken).first() is not None:
        return  # a custom range of this very span and baseline: these stay windows
    rejected = 0
    result = bind.execute(sa.select(runs.c.result).where(runs.c.id == stretch.first)).scalar()
    for offset in range(0, len(stretch.ids), BATCH):
        batch = stretch.ids[offset : offset + BATCH]
        found = bind.execute(sa.select(runs.c.result).where(runs.c.id.in_(batch))).scalars()
        rejected += sum(_rejected(each) for each in found)
        bind.execute(run_metrics.delete().where(run_metrics.c.run_id.in_(batch)))
        for table in (alerts, alert_events):
            bind.execute(table.update().where(table.c.run_id.in_(batch))
                         .values(run_id=stretch.first))  # fmt: skip
        others = [run_id for run_id in batch if run_id != stretch.first]
        bind.execute(runs.delete().where(runs.c.id.in_(others)))
    if isinstance(result, dict):
        result = {**result, "quality": {**(result.get("quality") or {}), "rejected": rejected}}
    bind.execute(
        runs.update().where(runs.c.id == stretch.first)
        .values(kind="no_traffic", window_end=stretch.end, result=result)
    )  # fmt: skip


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
    # are not runs to the previous version: they go (the empty windows collapsed into them
    # are not made again either).
    op.execute("DELETE FROM runs WHERE kind = 'no_traffic'")
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_index('ix_runs_model_id_window_end')
        batch_op.drop_column('kind')
