"""How long raw predictions are kept. Pure.

Raw data is kept by whole UTC days: with a retention of ``age``, the days that ended before
``now - age`` are removed (so a prediction is kept at least ``age`` and less than a day more),
and a record older than that is refused when it arrives, since it would be removed at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from driftwatch.core.time import DAY, day_start


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
