"""How long raw predictions are kept, and how time is cut into partitions. Pure: no database.

Raw data is kept by whole UTC days: with a retention of ``age``, the days that ended before
``now - age`` are removed (so a prediction is kept at least ``age`` and less than a day more),
and a record older than that is refused when it arrives, since it would be removed at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import numpy.typing as npt

DAY = timedelta(days=1)
# Days before today, and after it, that get a partition of their own when retention is off;
# data further back (a backfill) or ahead (a clock gone wrong) shares monthly partitions.
DAILY_BACK_WITHOUT_RETENTION = timedelta(days=60)
DAILY_AHEAD = timedelta(days=8)


def day_start(moment: datetime) -> datetime:
    """Midnight UTC of the day that contains ``moment``."""
    moment = moment.astimezone(UTC)
    return datetime(moment.year, moment.month, moment.day, tzinfo=UTC)


def describe(age: timedelta) -> str:
    if age % DAY == timedelta(0):
        days = age // DAY
        return f"{days} day" + ("" if days == 1 else "s")
    return f"{age.total_seconds() / 86_400:g} days"


@dataclass(frozen=True, slots=True)
class Retention:
    """The retention policy: ``age`` None keeps everything."""

    age: timedelta | None = None

    def cutoff(self, now: datetime) -> datetime | None:
        """Raw data before this instant (a midnight UTC) is removed, and refused on arrival."""
        if self.age is None:
            return None
        return day_start(now - self.age)

    def expired(self, start: datetime, now: datetime) -> datetime | None:
        """The cutoff, if raw data from ``start`` on is no longer (wholly) kept at ``now``."""
        cutoff = self.cutoff(now)
        return cutoff if cutoff is not None and start < cutoff else None

    def refusal(self, cutoff: datetime) -> str:
        """Why a record older than ``cutoff`` is not accepted."""
        assert self.age is not None
        return (
            f"older than the retention period ({describe(self.age)}): predictions before "
            f"{cutoff.isoformat().replace('+00:00', 'Z')} are no longer kept"
        )


KEEP_EVERYTHING = Retention()


@dataclass(frozen=True, order=True, slots=True)
class TimeRange:
    """A partition's span ``[low, high)``: midnights UTC."""

    low: datetime
    high: datetime

    def __contains__(self, moment: object) -> bool:
        assert isinstance(moment, datetime)
        return self.low <= moment < self.high


def _month(moment: datetime) -> TimeRange:
    low = datetime(moment.year, moment.month, 1, tzinfo=UTC)
    high = (
        datetime(moment.year + 1, 1, 1, tzinfo=UTC) if moment.month == 12
        else datetime(moment.year, moment.month + 1, 1, tzinfo=UTC)
    )  # fmt: skip
    return TimeRange(low, high)


def daily_zone(now: datetime, retention: Retention) -> TimeRange:
    """Days that get a partition each: the whole retention period (or the last 60 days when
    there is none) up to a week ahead."""
    today = day_start(now)
    back = retention.age + DAY if retention.age is not None else DAILY_BACK_WITHOUT_RETENTION
    return TimeRange(day_start(today - back), today + DAILY_AHEAD)


def plan_range(day: datetime, existing: Sequence[TimeRange], zone: TimeRange) -> TimeRange:
    """The partition to create for ``day`` (a midnight UTC that no existing range covers).

    A day of the daily zone gets itself; a day outside shares its calendar month, cut short
    where the month meets the daily zone or a partition that exists already, so that ranges
    never overlap and the daily zone stays free for daily partitions.
    """
    assert not any(day in known for known in existing), f"{day} has a partition already"
    if day in zone:
        wanted = TimeRange(day, day + DAY)
    else:
        month = _month(day)
        if day < zone.low:
            wanted = TimeRange(month.low, min(month.high, zone.low))
        else:
            wanted = TimeRange(max(month.low, zone.high), month.high)
    low = max([wanted.low, *(r.high for r in existing if r.high <= day)])
    high = min([wanted.high, *(r.low for r in existing if r.low > day)])
    return TimeRange(low, high)


DAY_US = 86_400_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def day_numbers(timestamps_us: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Each Unix-microsecond time's day, counted from 1970-01-01 (floor, also before 1970)."""
    return timestamps_us // DAY_US


def days_of(timestamps_us: npt.NDArray[np.int64]) -> list[datetime]:
    """The distinct days (midnights UTC) of these Unix-microsecond times, in order."""
    return [_EPOCH + timedelta(days=int(d)) for d in np.unique(day_numbers(timestamps_us))]
