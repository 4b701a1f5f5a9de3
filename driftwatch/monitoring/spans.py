"""Spans: runs over several whole windows of a model (CONTRACT section 8), computed from the
merged summaries of their buckets, so that a day of an hourly model, or a week, costs one
summary merge per column and one test, as one window from summaries does.

A span is any range whose bounds are window bounds and that covers two windows or more
(``POST .../runs`` over one is a run of kind ``span``). The scheduler also keeps the spans the
dashboard's long ranges draw: per model, each closed day and week (aligned to the epoch, as
windows are: weeks start on Thursdays, 00:00 UTC) that held predictions, over the last
``KEEP``; such a span is computed again, as a window is, when labels or predictions reach it
later (within the label horizon). Spans are not windows: they have no place in the window
series, the daily sums, the status, ``/metrics`` or the rules (the windows they cover are
evaluated one by one).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from driftwatch.core.result import Span
from driftwatch.core.time import EPOCH, iso, window_start
from driftwatch.models import MonitoredModel
from driftwatch.models.monitoring import SPAN
from driftwatch.monitoring import repository

DAY = 86_400
WEEK = 7 * DAY
CANDIDATES = (DAY, WEEK)  # the spans a long range is drawn with, the shortest that fits
MIN_POINTS, MAX_POINTS = 12, 100  # points a chart of spans shows: a readable number
MAX_WINDOW_COLUMNS = 366  # a range of at most this many windows shows each window
LONG_RANGES = (timedelta(days=30), timedelta(days=90), timedelta(days=365))
KEEP = timedelta(days=366)  # how far back the scheduler keeps a model's day and week spans


def span_for_range(window_seconds: int, range_length: timedelta) -> int | None:
    """The span (seconds) a chart over ``range_length`` draws a point per: None when the range
    shows each window (at most MAX_WINDOW_COLUMNS of them), else the shortest candidate that
    is a whole number of windows and gives MIN_POINTS to MAX_POINTS points (30d of an hourly
    model: a day, 30 points; 90d: 90 days; 365d: a week, 53 points); None if none does."""
    seconds = range_length.total_seconds()
    if seconds / window_seconds <= MAX_WINDOW_COLUMNS:
        return None
    for length in CANDIDATES:
        if length % window_seconds or length <= window_seconds:
            continue
        if MIN_POINTS <= seconds / length <= MAX_POINTS:
            return length
    return None


def lengths(window_seconds: int) -> list[int]:
    """The spans the scheduler keeps for a model: those its long ranges draw."""
    found = {span_for_range(window_seconds, length) for length in LONG_RANGES}
    return sorted(length for length in found if length is not None)


def is_span(start: datetime, end: datetime, window: timedelta) -> bool:
    """Whether ``start``-``end`` is two or more whole windows of this length."""
    return (
        end - start > window
        and (end - start) % window == timedelta(0)
        and window_start(start, window) == start
    )


def on_bucket_bounds(start: datetime, end: datetime, bucket_seconds: int) -> bool:
    """Whether a range starts and ends on summary bucket bounds: then the merge of the
    buckets starting in it is exactly its data."""
    bucket = timedelta(seconds=bucket_seconds)
    return window_start(start, bucket) == start and window_start(end, bucket) == end


def aligned_range(start: datetime, end: datetime, window: timedelta) -> tuple[datetime, datetime]:
    """The smallest range of whole windows holding ``start``-``end`` (for a refusal to name)."""
    first = window_start(start, window)
    last = window_start(end, window)
    return first, last if last == end else last + window


def coverage(
    session: Session, *, model: MonitoredModel, start: datetime, end: datetime,
    buckets: int | None,
) -> Span:  # fmt: skip
    """What a span covers: its windows, those that held predictions, the buckets merged."""
    window = timedelta(seconds=model.window_seconds)
    busy = repository.busy_windows(session, model_id=model.id, start=start, end=end,
                                   length=window)  # fmt: skip
    return Span(start=iso(start), end=iso(end), window_seconds=model.window_seconds,
                windows=int((end - start) / window), windows_with_data=len(busy),
                buckets=buckets)  # fmt: skip


def plan(
    session: Session, *, model: MonitoredModel, baseline_id: int, since: datetime | None,
    until: datetime, now: datetime,
) -> int:  # fmt: skip
    """Queue the model's day and week spans that closed after ``since`` (the end of the
    windows planned before: None, or a model without spans yet, catches up over ``KEEP``)
    and by ``until``, and that hold predictions. Returns how many were queued."""
    if since is None or not repository.has_runs(session, model_id=model.id, kind=SPAN):
        since = EPOCH
    since = max(since, now - KEEP)
    queued = 0
    for seconds in lengths(model.window_seconds):
        length = timedelta(seconds=seconds)
        first = window_start(since, length)  # the span holding ``since`` closes after it
        last = window_start(until, length)  # spans starting before it have closed by then
        if first >= last:
            continue
        busy = repository.busy_windows(session, model_id=model.id, start=first, end=last,
                                       length=length)  # fmt: skip
        queued += repository.enqueue(
            session, model_id=model.id, baseline_id=baseline_id,
            windows=[(moment, moment + length) for moment in busy], kind=SPAN,
        )  # fmt: skip
    return queued


def queue_containing(
    session: Session, *, model: MonitoredModel, baseline_id: int, moments: list[datetime],
    now: datetime,
) -> int:  # fmt: skip
    """Queue the closed day and week spans holding these moments (windows that predictions
    came into late, after their span closed without any: it had no span run)."""
    if not moments:
        return 0
    queued = 0
    for seconds in lengths(model.window_seconds):
        length = timedelta(seconds=seconds)
        starts = {window_start(moment, length) for moment in moments}
        closed = [(s, s + length) for s in sorted(starts) if s + length <= now and s >= now - KEEP]
        queued += repository.enqueue(session, model_id=model.id, baseline_id=baseline_id,
                                     windows=closed, kind=SPAN)  # fmt: skip
    return queued
