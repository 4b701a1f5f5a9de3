"""Typed factories shared by the tests: the records users send and a model driven through the
real API. Plain functions over plain data; each test says only what matters to it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient

from tests.conftest import create_model

T0 = datetime(2026, 11, 20, 10, tzinfo=UTC)
Record = dict[str, Any]
FEATURES: list[dict[str, str]] = [
    {"name": "age", "kind": "numerical"},
    {"name": "state", "kind": "categorical"},
]


def default_features(i: int) -> dict[str, Any]:
    return {"age": 20 + i % 50, "state": ("CA", "NY", "TX")[i % 3]}


def default_score(i: int) -> Any:
    return round((i * 37 % 100) / 100, 2)


def predictions(
    count: int, *, prefix: str = "p", start: datetime = T0, step: timedelta = timedelta(seconds=1),
    features: Callable[[int], dict[str, Any]] = default_features,
    prediction: Callable[[int], Any] = default_score, **fields: Any,
) -> list[Record]:  # fmt: skip
    """Prediction records as the contract writes them, ``step`` apart from ``start``."""
    return [
        {"prediction_id": f"{prefix}-{i}", "timestamp": (start + i * step).isoformat(),
         "features": features(i), "prediction": prediction(i), **fields}
        for i in range(count)
    ]  # fmt: skip


def labels(ids: Sequence[str], label: Callable[[int], Any] = lambda i: i % 2) -> list[Record]:
    return [{"prediction_id": pid, "label": label(i)} for i, pid in enumerate(ids)]


def baseline_records(
    count: int, *, features: Callable[[int], dict[str, Any]] = default_features,
    prediction: Callable[[int], Any] | None = default_score,
    label: Callable[[int], Any] | None = None,
) -> list[Record]:  # fmt: skip
    out: list[Record] = []
    for i in range(count):
        record: Record = {"features": features(i)}
        if prediction is not None:
            record["prediction"] = prediction(i)
        if label is not None:
            record["label"] = label(i)
        out.append(record)
    return out


@dataclass(frozen=True, slots=True)
class Model:
    """A registered model, driven through the real API as a user would."""

    api: TestClient
    name: str

    @property
    def path(self) -> str:
        return f"/api/v1/models/{self.name}"

    def _post(self, path: str, body: dict[str, Any], status: int) -> Any:
        response = self.api.post(self.path + path, json=body)
        assert response.status_code == status, response.text
        return response.json()

    def log(self, records: list[Record]) -> dict[str, Any]:
        answer: dict[str, Any] = self._post("/predictions", {"records": records}, 200)
        return answer

    def label(self, records: list[Record]) -> dict[str, Any]:
        answer: dict[str, Any] = self._post("/ground-truth", {"records": records}, 200)
        return answer

    def baseline(self, records: list[Record], *, name: str = "training") -> dict[str, Any]:
        answer: dict[str, Any] = self._post("/baselines", {"name": name, "records": records}, 201)
        return answer

    def run(self, start: datetime, end: datetime, *, status: int = 200) -> dict[str, Any]:
        answer: dict[str, Any] = self._post(
            "/runs", {"start": start.isoformat(), "end": end.isoformat()}, status
        )
        return answer


def model(api: TestClient, **fields: Any) -> Model:
    """A new model (a fresh name; the contract's defaults unless ``fields`` say otherwise)."""
    body = {"window": "1h", "features": FEATURES, **fields}
    return Model(api, create_model(api, **body)["name"])
