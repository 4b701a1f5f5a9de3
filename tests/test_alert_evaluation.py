"""The alert state machine, window by window (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from driftwatch.alerting.evaluate import AlertState, evaluate
from driftwatch.alerting.rules import Condition, Rule

T0 = datetime(2026, 11, 20, tzinfo=UTC)


def rule(*, for_windows: int = 1, repeat: timedelta | None = None) -> Rule:
    return Rule(name="r", model="*", when=Condition("dataset.drifted_share", ">", 0.3),
                path="rules/a.yaml", line=1, for_windows=for_windows, repeat=repeat)  # fmt: skip


def play(r: Rule, values: list[float | None], step: timedelta = timedelta(hours=1)
         ) -> tuple[list[str], AlertState]:  # fmt: skip
    """Feed one value per window, an hour apart; the events that happened, and the end state."""
    state, events = AlertState(), []
    for index, value in enumerate(values):
        end = T0 + (index + 1) * step
        state, transition = evaluate(r, state, value=value, window_end=end, now=end)
        events.append(transition.event if transition else "-")
    return events, state


@pytest.mark.parametrize(
    ("for_windows", "values", "events", "final"),
    [
        (1, [0.1, 0.5, 0.6, 0.1], ["-", "firing", "-", "resolved"], "ok"),
        (2, [0.5, 0.5, 0.5, 0.1], ["pending", "firing", "-", "resolved"], "ok"),
        (2, [0.5, 0.1, 0.5, 0.1], ["pending", "cleared", "pending", "cleared"], "ok"),
        (
            3,
            [0.5, 0.5, 0.1, 0.5, 0.5, 0.5],
            ["pending", "-", "cleared", "pending", "-", "firing"],
            "firing",
        ),
        # a missing metric neither breaches nor recovers
        (2, [0.5, None, 0.5], ["pending", "-", "firing"], "firing"),
        (1, [0.5, None, None, 0.6], ["firing", "-", "-", "-"], "firing"),
        (1, [None, None], ["-", "-"], "ok"),
        # the threshold itself does not breach "> 0.3"
        (1, [0.3, 0.30001], ["-", "firing"], "firing"),
    ],
)
def test_windows_move_the_alert(
    for_windows: int, values: list[float | None], events: list[str], final: str
) -> None:
    seen, state = play(rule(for_windows=for_windows), values)
    assert seen == events
    assert state.state == final


def test_repeat_renotifies_while_firing() -> None:
    events, _ = play(rule(repeat=timedelta(hours=3)), [0.5] * 8)
    assert events == ["firing", "-", "-", "repeat", "-", "-", "repeat", "-"]


def test_an_older_window_is_history_and_changes_nothing() -> None:
    r = rule()
    state, fired = evaluate(r, AlertState(), value=0.9, window_end=T0, now=T0)
    assert fired is not None
    assert fired.event == "firing"
    # a recomputed older window that no longer breaches does not resolve it
    later, transition = evaluate(r, state, value=0.0, window_end=T0 - timedelta(hours=1),
                                 now=T0)  # fmt: skip
    assert transition is None
    assert later == state
    same, transition = evaluate(r, state, value=0.0, window_end=T0, now=T0)
    assert transition is None
    assert same == state


def test_only_firing_resolved_and_repeat_notify() -> None:
    r = rule(for_windows=2)
    state, pending = evaluate(r, AlertState(), value=0.9, window_end=T0, now=T0)
    assert pending is not None
    assert not pending.notifies
    _, firing = evaluate(r, state, value=0.9, window_end=T0 + timedelta(hours=1), now=T0)
    assert firing is not None
    assert firing.notifies
    assert firing.value == 0.9


def test_a_window_without_the_metric_is_evaluated_when_its_labels_arrive() -> None:
    """Window 1 is computed before its labels (accuracy missing), window 2 too; when window 1
    is computed again with labels, it is newer than anything evaluated, so it counts."""
    r = Rule(name="f1", model="*", when=Condition("accuracy.f1", "<", 0.8),
             path="rules/a.yaml", line=1)  # fmt: skip
    w1, w2 = T0 + timedelta(hours=1), T0 + timedelta(hours=2)
    state, transition = evaluate(r, AlertState(), value=None, window_end=w1, now=w1)
    assert transition is None
    state, transition = evaluate(r, state, value=None, window_end=w2, now=w2)
    assert transition is None
    assert state.last_window_end is None
    state, transition = evaluate(r, state, value=0.5, window_end=w1, now=w2)
    assert transition is not None
    assert transition.event == "firing"
    assert state.last_window_end == w1
    # and window 1 computed once more (more labels) is history now
    again, transition = evaluate(r, state, value=0.95, window_end=w1, now=w2)
    assert transition is None
    assert again == state
