"""Monitoring windows: fixed lengths aligned to the Unix epoch, so every replica agrees on them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def window_start(moment: datetime, length: timedelta) -> datetime:
    """The start of the window that contains ``moment``."""
    seconds = int((moment - EPOCH) // timedelta(seconds=1))
    size = int(length.total_seconds())
    return EPOCH + timedelta(seconds=seconds - seconds % size)


def closed_windows(
    first: datetime, now: datetime, length: timedelta, *, limit: int
) -> Iterator[tuple[datetime, datetime]]:
    """Windows from the one containing ``first`` that ended at or before ``now``, at most
    ``limit`` of them (the newest ones when there are more)."""
    start = window_start(first, length)
    last_end = window_start(now, length)  # the window containing ``now`` is still open
    count = int((last_end - start) / length)
    if count > limit:
        start = last_end - limit * length
    while start + length <= last_end:
        yield start, start + length
        start += length
