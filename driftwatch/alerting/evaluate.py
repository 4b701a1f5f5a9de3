"""Alert rules applied to a run: the state machine of one (rule, model) alert. Pure.

An alert moves ok -> pending -> firing -> ok (resolved). ``for`` windows breaching in a row
make it fire; a window that does not breach resolves a firing alert (and clears a pending one);
``repeat`` re-notifies while it keeps firing. A window older than (or as old as) the newest one
already evaluated is history and changes nothing, and neither does a window where the metric is
missing (no data, no labels): it neither counts as a breach nor as a recovery, and it does not
count as evaluated, so that a window whose labels arrive later is evaluated when it is computed
again with them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

from driftwatch.alerting.rules import Rule

State = Literal["ok", "pending", "firing"]
Event = Literal["pending", "firing", "resolved", "repeat", "cleared"]  # cleared: pending, then not
NOTIFYING: frozenset[Event] = frozenset({"firing", "resolved", "repeat"})


@dataclass(frozen=True, slots=True)
class AlertState:
    state: State = "ok"
    breaches: int = 0  # consecutive breaching windows
    last_window_end: datetime | None = None  # the newest window evaluated
    last_notified_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Transition:
    event: Event
    value: float
    window_end: datetime

    @property
    def notifies(self) -> bool:
        return self.event in NOTIFYING


def evaluate(
    rule: Rule, current: AlertState, *, value: float | None, window_end: datetime, now: datetime,
    label_coverage: float | None = None,
) -> tuple[AlertState, Transition | None]:  # fmt: skip
    """The alert's next state after one window, and what happened (None: nothing to record).
    A rule with ``min_label_coverage`` skips a window whose ``label_coverage`` is below it, as
    if its metric were missing (computed again once more labels came, it is evaluated then)."""
    if current.last_window_end is not None and window_end <= current.last_window_end:
        return current, None  # history: an older window recomputed changes no alert
    if value is None:
        return current, None  # no data or no labels: neither a breach nor a recovery
    if rule.min_label_coverage is not None and (
        label_coverage is None or label_coverage < rule.min_label_coverage
    ):
        return current, None  # too few labels yet: the metric says too little
    moved = replace(current, last_window_end=window_end)
    if not rule.when.holds(value):
        if current.state == "firing":
            resolved = replace(moved, state="ok", breaches=0, last_notified_at=now)
            return resolved, Transition("resolved", value, window_end)
        cleared = Transition("cleared", value, window_end) if current.state == "pending" else None
        return replace(moved, state="ok", breaches=0), cleared
    breaches = current.breaches + 1
    if current.state == "firing":
        due = rule.repeat is not None and (
            current.last_notified_at is None or now - current.last_notified_at >= rule.repeat
        )
        if due:
            return replace(moved, breaches=breaches, last_notified_at=now), Transition(
                "repeat", value, window_end
            )
        return replace(moved, breaches=breaches), None
    if breaches >= rule.for_windows:
        fired = replace(moved, state="firing", breaches=breaches, last_notified_at=now)
        return fired, Transition("firing", value, window_end)
    pending = replace(moved, state="pending", breaches=breaches)
    return pending, Transition("pending", value, window_end) if current.state == "ok" else None
