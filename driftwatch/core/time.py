"""Time: aware UTC moments, ISO 8601 as every answer writes it, durations as users write them,
and the half-open time range ``[start, end)`` that windows, runs and baselines use."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import numpy.typing as npt

DAY = timedelta(days=1)
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """ISO 8601 in UTC with a ``Z``, as every API answer and message writes time."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_duration(text: str) -> timedelta:
    """``30s``, ``15m``, ``1h``, ``1d``, ``2w`` (windows, rule repeats)."""
    match = _DURATION.match(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(
            f"{text!r} is not a duration: write a whole number and a unit s, m, h, d or w, "
            "such as '15m', '1h' or '1d'"
        )
    seconds = int(match.group(1)) * UNITS[match.group(2)]
    if seconds <= 0:
        raise ValueError(f"{text!r}: a duration must be longer than zero")
    return timedelta(seconds=seconds)


def format_duration(seconds: int) -> str:
    """The shortest way to write a whole number of seconds in the units above (90 -> ``90s``)."""
    for unit, size in sorted(UNITS.items(), key=lambda item: -item[1]):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@dataclass(frozen=True, slots=True)
class TimeRange:
    """``[start, end)``, both aware, ``end`` after ``start``."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("a time range needs timezone-aware moments")
        if self.end <= self.start:
            raise ValueError(f"'end' ({iso(self.end)}) must be after 'start' ({iso(self.start)})")

    @property
    def length(self) -> timedelta:
        return self.end - self.start

    def contains(self, moment: datetime) -> bool:
        return self.start <= moment < self.end

    def as_json(self) -> dict[str, str]:
        return {"start": iso(self.start), "end": iso(self.end)}


def day_start(moment: datetime) -> datetime:
    """Midnight UTC of the day that contains ``moment``."""
    moment = moment.astimezone(UTC)
    return datetime(moment.year, moment.month, moment.day, tzinfo=UTC)


DAY_US = 86_400_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def day_numbers(timestamps_us: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Each Unix-microsecond time's day, counted from 1970-01-01 (floor, also before 1970)."""
    return timestamps_us // DAY_US


def days_of(timestamps_us: npt.NDArray[np.int64]) -> list[datetime]:
    """The distinct days (midnights UTC) of these Unix-microsecond times, in order."""
    return [_EPOCH + timedelta(days=int(d)) for d in np.unique(day_numbers(timestamps_us))]


# -- monitoring windows: fixed lengths aligned to the Unix epoch, so every replica agrees

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
