"""The dashboard's queries. Time series are aggregated in the database (one row per metric and
time bucket), so a page costs the same whether its range holds a day of runs or a year."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    Integer,
    String,
    and_,
    case,
    cast,
    column,
    func,
    or_,
    select,
    true,
    type_coerce,
)
from sqlalchemy.orm import Session, undefer

from driftwatch.models import (
    Alert,
    Baseline,
    Delivery,
    MonitoredModel,
    Run,
    RunMetric,
    RunMetricDay,
)
from driftwatch.models.monitoring import SPAN, WINDOW


@dataclass(frozen=True, slots=True)
class Bucket:
    metric: str
    index: int  # the bucket's start is index * bucket_seconds (Unix time)
    low: float | None
    high: float | None
    mean: float | None
    total: float | None
    count: int


DAY = 86400


def _epoch_bucket(session: Session, column: Any, bucket_seconds: int) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        return cast(func.floor(func.extract("epoch", column) / bucket_seconds), Integer)
    # SQLite keeps UTC timestamps as text
    return cast(func.strftime("%s", column), Integer) // bucket_seconds


def bucketed(
    session: Session, *, model_id: int, metrics: Sequence[str], start: datetime, end: datetime,
    bucket_seconds: int,
) -> list[Bucket]:  # fmt: skip
    """min, max, mean, sum and count of each metric per bucket of windows starting in range.
    Buckets of whole days are read from the daily sums (``run_metric_days``)."""
    if not metrics:
        return []
    if bucket_seconds % DAY == 0:
        return _bucketed_days(session, model_id=model_id, metrics=metrics, start=start, end=end,
                              bucket_seconds=bucket_seconds)  # fmt: skip
    bucket = _epoch_bucket(session, RunMetric.window_start, bucket_seconds).label("bucket")
    query = (
        select(
            RunMetric.metric, bucket, func.min(RunMetric.value), func.max(RunMetric.value),
            func.avg(RunMetric.value), func.sum(RunMetric.value), func.count(RunMetric.value),
        )
        .where(
            RunMetric.model_id == model_id, RunMetric.metric.in_(metrics),
            RunMetric.window_start >= start, RunMetric.window_start < end,
        )
        .group_by(RunMetric.metric, bucket)
    )  # fmt: skip
    return [
        Bucket(metric, int(index), low, high, mean, total, int(count))
        for metric, index, low, high, mean, total, count in session.execute(query)
    ]


def _bucketed_days(
    session: Session, *, model_id: int, metrics: Sequence[str], start: datetime, end: datetime,
    bucket_seconds: int,
) -> list[Bucket]:  # fmt: skip
    bucket = _epoch_bucket(session, RunMetricDay.day, bucket_seconds).label("bucket")
    first_day = start.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    query = (
        select(
            RunMetricDay.metric, bucket, func.min(RunMetricDay.low), func.max(RunMetricDay.high),
            func.sum(RunMetricDay.total), func.sum(RunMetricDay.count),
        )
        .where(
            RunMetricDay.model_id == model_id, RunMetricDay.metric.in_(metrics),
            RunMetricDay.day >= first_day, RunMetricDay.day < end,
        )
        .group_by(RunMetricDay.metric, bucket)
    )  # fmt: skip
    out = []
    for metric, index, low, high, total, count in session.execute(query):
        count = int(count or 0)
        mean = None if total is None or not count else float(total) / count
        out.append(Bucket(metric, int(index), low, high, mean, total, count))
    return out


@dataclass(frozen=True, slots=True)
class TestedBucket:
    """A feature's scores in one bucket, over the runs that tested it alike (one test, one
    threshold): runs of a bucket that used another test or threshold make another row."""

    feature: str
    index: int  # as Bucket.index
    stattest: str
    threshold: float
    low: float | None  # the lowest and highest score
    high: float | None
    drifted: bool  # the verdict of one run at least
    runs: int
    # the calibrated verdict (CONTRACT section 7; none under Evidently's rule): whether one run
    # at least found the window too small to tell (verdict "insufficient"), the largest
    # ``detectable`` and the smallest ``p_value`` of the runs
    insufficient: bool = False
    detectable: float | None = None
    p_value: float | None = None
    max_error: float | None = None  # the largest bound on a score from summaries (null: rows)


def _epoch_seconds(session: Session, column: Any) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        return cast(func.extract("epoch", column), BigInteger)
    return cast(func.strftime("%s", column), Integer)


def spans_of(session: Session, seconds: int) -> Any:
    """The condition on runs that are spans of this length on its own bounds (a day from
    midnight, a week from Thursday 00:00 UTC), the ones the scheduler keeps for the charts."""
    start, end = (_epoch_seconds(session, c) for c in (Run.window_start, Run.window_end))
    return and_(Run.kind == SPAN, end - start == seconds, start % seconds == 0)


def feature_tests(
    session: Session, *, model_id: int, start: datetime, end: datetime, bucket_seconds: int,
    feature: str | None = None, span: bool = False,
) -> list[TestedBucket]:  # fmt: skip
    """Each feature's scores per bucket of windows starting in range, read with the test,
    threshold and verdict each run stored with them (``result.features``): the metrics table
    keeps a score without the test that made it, and a model's tests change with its settings
    (and with Evidently's default rule, with the data). ``span``: of the span runs of
    ``bucket_seconds`` instead, one a bucket."""
    document = type_coerce(Run.result, JSON)
    if session.get_bind().dialect.name == "postgresql":  # each entry parsed once, typed
        entries = func.json_to_recordset(document["features"]).table_valued(
            column("name", String), column("stattest", String), column("threshold", Float),
            column("score", Float), column("drifted", Boolean), column("verdict", String),
            column("detectable", Float), column("p_value", Float), column("max_error", Float),
        ).render_derived(name="entry", with_types=True)  # fmt: skip
        fields = [entries.c.name, entries.c.stattest, entries.c.threshold, entries.c.score,
                  cast(entries.c.drifted, Integer), entries.c.verdict, entries.c.detectable,
                  entries.c.p_value, entries.c.max_error]  # fmt: skip
    else:
        entries = (
            func.json_each(document, "$.features")
            .table_valued(column("value", JSON))
            .alias("entry")
        )
        entry = entries.c.value
        fields = [entry["name"].as_string(), entry["stattest"].as_string(),
                  entry["threshold"].as_float(), entry["score"].as_float(),
                  entry["drifted"].as_integer(), entry["verdict"].as_string(),
                  entry["detectable"].as_float(), entry["p_value"].as_float(),
                  entry["max_error"].as_float()]  # fmt: skip
    tested = (
        select(
            _epoch_bucket(session, Run.window_start, bucket_seconds).label("bucket"),
            *(field.label(name) for field, name in zip(
                fields, ("feature", "stattest", "threshold", "score", "drifted", "verdict",
                         "detectable", "p_value", "max_error"), strict=True)),
        )
        .select_from(Run)
        .join(entries, true())
        .where(
            Run.model_id == model_id,
            spans_of(session, bucket_seconds) if span else Run.kind == WINDOW,
            Run.status == "done",
            Run.window_start >= start,
            Run.window_start < end,
        )
    ).subquery()  # fmt: skip
    query = (
        select(
            tested.c.feature, tested.c.bucket, tested.c.stattest, tested.c.threshold,
            func.min(tested.c.score), func.max(tested.c.score), func.max(tested.c.drifted),
            func.count(), func.max(case((tested.c.verdict == "insufficient", 1), else_=0)),
            func.max(tested.c.detectable), func.min(tested.c.p_value),
            func.max(tested.c.max_error),
        )
        .where(tested.c.stattest.is_not(None), tested.c.threshold.is_not(None))
        .group_by(tested.c.feature, tested.c.bucket, tested.c.stattest, tested.c.threshold)
    )  # fmt: skip
    if feature is not None:
        query = query.where(tested.c.feature == feature)
    rows = session.execute(query)
    return [
        TestedBucket(name, int(index), stattest, float(threshold), low, high, bool(drifted), runs,
                     bool(insufficient), detectable, p_value, max_error)
        for (name, index, stattest, threshold, low, high, drifted, runs, insufficient, detectable,
             p_value, max_error) in rows
    ]  # fmt: skip


def span_runs(
    session: Session, *, model_id: int, start: datetime, end: datetime, seconds: int
) -> list[Run]:
    """The model's computed spans of this length starting in range (their results, not their
    histograms), oldest first."""
    query = select(Run).where(
        Run.model_id == model_id, spans_of(session, seconds), Run.computations > 0,
        Run.window_start >= start, Run.window_start < end,
    )  # fmt: skip
    return list(session.scalars(query.order_by(Run.window_start, Run.id)))


def span_runs_exist(
    session: Session, *, model_id: int, start: datetime, end: datetime, seconds: int
) -> bool:
    """Whether the model has a computed span of this length starting in range."""
    found = select(Run.id).where(
        Run.model_id == model_id, spans_of(session, seconds), Run.computations > 0,
        Run.window_start >= start, Run.window_start < end,
    )  # fmt: skip
    return session.scalar(found.limit(1)) is not None


def latest_runs(
    session: Session, *, model_id: int, limit: int, with_distributions: bool = False,
    before: datetime | None = None, kinds: Sequence[str] = (WINDOW,), with_data: bool = False,
) -> list[Run]:  # fmt: skip
    """The model's newest runs of these kinds (by default its windows), newest first;
    ``with_data``: only windows that held predictions."""
    query = select(Run).where(Run.model_id == model_id, Run.kind.in_(kinds))
    # a window being computed again keeps its earlier result until then
    query = query.where(Run.rows > 0) if with_data else query.where(Run.status == "done")
    if before is not None:
        query = query.where(Run.window_start < before)
    if with_distributions:
        query = query.options(undefer(Run.distributions))
    return list(session.scalars(query.order_by(Run.window_end.desc(), Run.id.desc()).limit(limit)))


def last_window_with_data(
    session: Session, *, model_id: int, before: datetime | None = None,
    with_distributions: bool = False,
) -> Run | None:  # fmt: skip
    """What the status, "last window" and the charts of the latest window speak of."""
    found = latest_runs(session, model_id=model_id, limit=1, before=before, with_data=True,
                        with_distributions=with_distributions)  # fmt: skip
    return found[0] if found else None


def run_with_distributions(session: Session, *, model_id: int, run_id: int) -> Run | None:
    query = (
        select(Run)
        .where(Run.model_id == model_id, Run.id == run_id)
        .options(undefer(Run.distributions))
    )
    return session.scalars(query).first()


def metric_series(
    session: Session, *, model_id: int, metric: str, limit: int
) -> list[tuple[datetime, float | None]]:
    """The newest values of one metric, oldest first."""
    query = (
        select(RunMetric.window_start, RunMetric.value)
        .where(RunMetric.model_id == model_id, RunMetric.metric == metric)
        .order_by(RunMetric.window_start.desc())
        .limit(limit)
    )
    return [(when, value) for when, value in reversed(session.execute(query).all())]


def metric_totals(
    session: Session, *, model_id: int, metrics: Sequence[str], since: datetime,
    strict: bool = False,
) -> dict[str, float]:  # fmt: skip
    """Sums of the windows' metrics from the window starting at ``since`` (after it when
    ``strict``)."""
    after = RunMetric.window_start > since if strict else RunMetric.window_start >= since
    query = (
        select(RunMetric.metric, func.sum(RunMetric.value))
        .where(RunMetric.model_id == model_id, RunMetric.metric.in_(metrics), after)
        .group_by(RunMetric.metric)
    )
    return {metric: float(total or 0) for metric, total in session.execute(query)}


def firing_counts(session: Session) -> dict[int, int]:
    query = (
        select(Alert.model_id, func.count()).where(Alert.state == "firing").group_by(Alert.model_id)
    )
    return {model_id: int(count) for model_id, count in session.execute(query)}


def list_models(session: Session) -> list[MonitoredModel]:
    return list(session.scalars(select(MonitoredModel).order_by(MonitoredModel.name)))


def recent_alerts(session: Session, *, model_id: int, limit: int) -> list[Alert]:
    """Alerts that fired or may fire (pending alerts that cleared are left out)."""
    query = (
        select(Alert)
        .where(Alert.model_id == model_id, Alert.state != "cleared")
        .order_by(Alert.id.desc())
        .limit(limit)
    )
    return list(session.scalars(query))


def baseline(session: Session, *, baseline_id: int | None) -> Baseline | None:
    return None if baseline_id is None else session.get(Baseline, baseline_id)


def alert_models(session: Session, alert_ids: Sequence[int]) -> dict[int, str]:
    """The model name of each alert."""
    if not alert_ids:
        return {}
    query = (
        select(Alert.id, MonitoredModel.name)
        .join(MonitoredModel, MonitoredModel.id == Alert.model_id)
        .where(Alert.id.in_(alert_ids))
    )
    return {alert_id: name for alert_id, name in session.execute(query)}


def deliveries_page(session: Session, *, limit: int, statuses: Sequence[str]) -> list[Delivery]:
    query = select(Delivery)
    if statuses:
        query = query.where(Delivery.status.in_(statuses))
    return list(session.scalars(query.order_by(Delivery.id.desc()).limit(limit)))


def version_metric_totals(
    session: Session, *, model_id: int, start: datetime, end: datetime
) -> dict[str, float]:
    """The sums of the model's ``version[...].rows`` and ``version[...].agreement`` metrics
    over the days of [start, end), read from the daily sums (a row a metric a day): which
    versions the range holds, how many rows each, and which of them are shadows."""
    first_day = start.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    query = (
        select(RunMetricDay.metric, func.sum(RunMetricDay.total))
        .where(
            RunMetricDay.model_id == model_id, RunMetricDay.day >= first_day,
            RunMetricDay.day < end, RunMetricDay.metric.like("version[%"),
            or_(RunMetricDay.metric.like("%].rows"), RunMetricDay.metric.like("%].agreement")),
        )
        .group_by(RunMetricDay.metric)
    )  # fmt: skip
    return {metric: float(total or 0) for metric, total in session.execute(query)}
