"""What a model is made of: its task, its features and their kinds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

Task = Literal["binary_classification", "multiclass_classification", "regression"]
FeatureKind = Literal["numerical", "categorical"]
TASKS: tuple[str, ...] = get_args(Task)
FEATURE_KINDS: tuple[str, ...] = get_args(FeatureKind)


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    name: str
    kind: FeatureKind


def is_classification(task: str) -> bool:
    return task != "regression"
