"""Monitoring windows: fixed lengths aligned to the Unix epoch, so every replica agrees on them."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def window_start(moment: datetime, length: timedelta) -> datetime:
    """The start of the window that contains ``moment``."""
    seconds = int((moment - EPOCH) // timedelta(seconds=1))
    size = int(length.total_seconds())
    return EPOCH + timedelta(seconds=seconds - seconds % size)


def is_window(start: datetime, end: datetime, length: timedelta) -> bool:
    """Whether ``start``-``end`` is exactly one of the windows of this length."""
    return end - start == length and window_start(start, length) == start


def spans_between(
    start: datetime, end: datetime, length: timedelta, taken: Iterable[datetime]
) -> list[tuple[datetime, datetime]]:
    """The stretches of consecutive windows from ``start`` to ``end`` (both window bounds) left
    once the windows starting at ``taken`` are set apart."""
    spans = []
    cursor = start
    for taken_start in sorted(set(taken)):
        if taken_start < cursor or taken_start >= end:
            continue
        if taken_start > cursor:
            spans.append((cursor, taken_start))
        cursor = taken_start + length
    if cursor < end:
        spans.append((cursor, end))
    return spans
