"""A model's drift settings, as the run computation reads them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

DEFAULT_DRIFT_SHARE = 0.5

# CONTRACT section 7: how a column's drift is decided. "calibrated": p-values at the window's
# real sample sizes, Benjamini-Hochberg across the window's columns at a per-window level set
# by the false-alarm budget, and for distances a score at least the threshold; "evidently":
# Evidently 0.7's rule (score against threshold) exactly.
Verdict = Literal["calibrated", "evidently"]
CALIBRATED: Verdict = "calibrated"
EVIDENTLY: Verdict = "evidently"
# A model stored before verdicts existed has none in its settings: it keeps Evidently's rule.
# New models are created calibrated (the registry writes the verdict).
STORED_DEFAULT_VERDICT: Verdict = EVIDENTLY
NEW_MODEL_VERDICT: Verdict = CALIBRATED
DEFAULT_FALSE_ALARMS_PER_MONTH = 1.0
MONTH = timedelta(days=30)  # the budget's month (CONTRACT section 7)
# The per-window level never exceeds this, however long the window (a monthly model with a
# budget of one false alarm a month would otherwise test at level 1).
MAX_ALPHA_PER_WINDOW = 0.05


def windows_per_month(window: timedelta) -> float:
    return MONTH / window


def alpha_per_window(false_alarms_per_month: float, window: timedelta) -> float:
    """The level at which one window is tested: about ``false_alarms_per_month`` windows a
    month with any drifted column when nothing drifts, capped at ``MAX_ALPHA_PER_WINDOW``."""
    return min(MAX_ALPHA_PER_WINDOW, false_alarms_per_month / windows_per_month(window))


@dataclass(frozen=True, slots=True)
class DriftSettings:
    num_stattest: str | None = None
    cat_stattest: str | None = None
    per_feature: dict[str, dict[str, Any]] = field(default_factory=dict)
    drift_share: float = DEFAULT_DRIFT_SHARE
    verdict: Verdict = STORED_DEFAULT_VERDICT
    false_alarms_per_month: float = DEFAULT_FALSE_ALARMS_PER_MONTH
    # The level of one window under the calibrated verdict (from the budget and the window).
    alpha_per_window: float = MAX_ALPHA_PER_WINDOW
    # The feature naming the unit rows come in (a user, a session): not tested itself, and
    # under the calibrated verdict the no-drift null moves whole clusters of rows.
    cluster_by: str | None = None
    # CONTRACT section 11: the multivariate detectors on every run (a model may switch them
    # off: they cost a classifier's fits per run).
    multivariate: bool = True

    @classmethod
    def from_model(
        cls, drift: dict[str, Any] | None, window: timedelta | None = None
    ) -> DriftSettings:
        """The settings of a model's ``drift`` JSON; ``window``, the model's window length,
        sets the calibrated verdict's per-window level (without it: the cap)."""
        drift = drift or {}
        share = drift.get("drift_share")
        budget = drift.get("false_alarms_per_month")
        budget = DEFAULT_FALSE_ALARMS_PER_MONTH if budget is None else float(budget)
        verdict = drift.get("verdict") or STORED_DEFAULT_VERDICT
        return cls(
            num_stattest=drift.get("num_stattest"),
            cat_stattest=drift.get("cat_stattest"),
            per_feature=dict(drift.get("per_feature") or {}),
            drift_share=DEFAULT_DRIFT_SHARE if share is None else float(share),
            verdict=CALIBRATED if verdict == CALIBRATED else EVIDENTLY,
            false_alarms_per_month=budget,
            alpha_per_window=(
                alpha_per_window(budget, window) if window is not None else MAX_ALPHA_PER_WINDOW
            ),
            cluster_by=drift.get("cluster_by"),
            multivariate=drift.get("multivariate") is not False,
        )

    @property
    def calibrated(self) -> bool:
        return self.verdict == CALIBRATED

    def choice(self, name: str | None, kind: str) -> tuple[str | None, float | None]:
        """The test and threshold set for a column (``name`` None: the prediction): per
        feature, else per kind, else None (Evidently's default rule decides)."""
        own = self.per_feature.get(name, {}) if name is not None else {}
        default = self.num_stattest if kind == "numerical" else self.cat_stattest
        return own.get("stattest") or default, own.get("threshold")


# CONTRACT section 9: performance before labels arrive.
DEFAULT_DECISION_THRESHOLD = 0.5
DEFAULT_LABEL_COVERAGE_MIN = 0.8


@dataclass(frozen=True, slots=True)
class PerformanceSettings:
    # A binary score at or above it is the positive class.
    decision_threshold: float = DEFAULT_DECISION_THRESHOLD
    # A window whose labeled share reached it is mature (its labels are as good as complete).
    label_coverage_min: float = DEFAULT_LABEL_COVERAGE_MIN

    @classmethod
    def from_model(cls, performance: dict[str, Any] | None) -> PerformanceSettings:
        stored = performance or {}
        threshold = stored.get("decision_threshold")
        coverage = stored.get("label_coverage_min")
        return cls(
            decision_threshold=DEFAULT_DECISION_THRESHOLD if threshold is None else threshold,
            label_coverage_min=DEFAULT_LABEL_COVERAGE_MIN if coverage is None else coverage,
        )
