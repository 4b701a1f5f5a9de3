"""Drift statistics: Evidently 0.7's per-column data drift tests, on pre-sorted samples.

Pure computation (numpy/scipy, no database, no Evidently). ``samples`` holds the two cleaned
samples of a column, ``registry`` the tests, Evidently's default choice among them and
``evaluate``; the other modules compute one family of tests each.
"""

from __future__ import annotations

from driftwatch.stats.registry import (
    STATTESTS,
    StatResult,
    StatTest,
    default_stattest,
    evaluate,
    get,
)
from driftwatch.stats.samples import CategoricalPair, NumericalPair, Pair

__all__ = [
    "STATTESTS",
    "CategoricalPair",
    "NumericalPair",
    "Pair",
    "StatResult",
    "StatTest",
    "default_stattest",
    "evaluate",
    "get",
]
