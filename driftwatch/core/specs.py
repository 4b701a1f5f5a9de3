"""What a model is made of: its task, its features and their kinds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

Task = Literal["binary_classification", "multiclass_classification", "regression"]
FeatureKind = Literal["numerical", "categorical"]
TASKS: tuple[str, ...] = get_args(Task)
FEATURE_KINDS: tuple[str, ...] = get_args(FeatureKind)
# CONTRACT section 11: a feature whose values are arrays of a fixed number of numbers. It is
# kept apart from the tabular kinds above: their tests, summaries and charts never see it.
EMBEDDING = "embedding"
MAX_EMBEDDING_DIMENSIONS = 4096


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    name: str
    kind: FeatureKind


@dataclass(frozen=True, slots=True)
class EmbeddingSpec:
    name: str
    dimensions: int

    @property
    def kind(self) -> str:
        return EMBEDDING


def is_classification(task: str) -> bool:
    return task != "regression"
