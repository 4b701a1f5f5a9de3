"""A model's drift settings, as the run computation reads them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DEFAULT_DRIFT_SHARE = 0.5


@dataclass(frozen=True, slots=True)
class DriftSettings:
    num_stattest: str | None = None
    cat_stattest: str | None = None
    per_feature: dict[str, dict[str, Any]] = field(default_factory=dict)
    drift_share: float = DEFAULT_DRIFT_SHARE

    @classmethod
    def from_model(cls, drift: dict[str, Any] | None) -> DriftSettings:
        drift = drift or {}
        share = drift.get("drift_share")
        return cls(
            num_stattest=drift.get("num_stattest"),
            cat_stattest=drift.get("cat_stattest"),
            per_feature=dict(drift.get("per_feature") or {}),
            drift_share=DEFAULT_DRIFT_SHARE if share is None else float(share),
        )

    def choice(self, name: str | None, kind: str) -> tuple[str | None, float | None]:
        """The test and threshold set for a column (``name`` None: the prediction): per
        feature, else per kind, else None (Evidently's default rule decides)."""
        own = self.per_feature.get(name, {}) if name is not None else {}
        default = self.num_stattest if kind == "numerical" else self.cat_stattest
        return own.get("stattest") or default, own.get("threshold")
