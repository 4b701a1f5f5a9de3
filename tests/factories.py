"""Typed factories shared by the tests: the records users send and a model driven through the
real API. Plain functions over plain data; each test says only what matters to it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from fastapi.testclient import TestClient

from tests.conftest import create_model

T0 = datetime(2026, 11, 20, 10, tzinfo=UTC)
Record = dict[str, Any]
FEATURES: list[dict[str, str]] = [
    {"name": "age", "kind": "numerical"},
    {"name": "state", "kind": "categorical"},
]
# The drift settings of a model whose runs must decide drift as Evidently 0.7 does (new models
# are calibrated, CONTRACT section 7): a test of parity with Evidently's verdicts creates its
# model with these.
EVIDENTLY_RULE: dict[str, str] = {"verdict": "evidently"}


# -- the monitored model most tests use: two numbers, one category, a score, drawn at random


MONITORED: list[dict[str, str]] = [
    {"name": "age", "kind": "numerical"},
    {"name": "income", "kind": "numerical"},
    {"name": "state", "kind": "categorical"},
]


def frame(
    rows: int, *, seed: int, shift: float = 0.0, states: tuple[str, ...] = ("CA", "NY", "TX")
          ) -> pd.DataFrame:  # fmt: skip
    rng = np.random.default_rng(seed)
    data = pd.DataFrame({
        "age": rng.normal(40 + shift * 10, 10, rows).round(1),
        "income": rng.lognormal(10 + shift, 0.5, rows).round(2),
        "state": rng.choice(states, rows),
        "prediction": rng.random(rows).round(4),
    })  # fmt: skip
    data.loc[rng.random(rows) < 0.05, "age"] = np.nan  # some missing values
    data.loc[rng.random(rows) < 0.03, "state"] = None
    return data


def frame_records(data: pd.DataFrame, *, prefix: str, start: datetime = T0) -> list[dict[str, Any]]:
    out = []
    for i, row in enumerate(data.to_dict("records")):
        features = {k: (None if pd.isna(row[k]) else row[k]) for k in ("age", "income", "state")}
        out.append({
            "prediction_id": f"{prefix}-{i}",
            "timestamp": (start + timedelta(seconds=i)).isoformat(),
            "features": features,
            "prediction": row["prediction"],
        })  # fmt: skip
    return out


def post(api: TestClient, path: str, body: dict[str, Any], status: int = 200) -> Any:
    response = api.post(path, json=body)
    assert response.status_code == status, response.text
    return response.json()


def log(api: TestClient, model: str, recs: list[dict[str, Any]]) -> None:
    for start in range(0, len(recs), 5000):
        result = post(api, f"/api/v1/models/{model}/predictions",
                      {"records": recs[start : start + 5000]})  # fmt: skip
        assert not result["rejected"], result["rejected"][:3]


def frame_baseline(data: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        {"features": {k: (None if pd.isna(r[k]) else r[k]) for k in ("age", "income", "state")},
         "prediction": r["prediction"]}
        for r in data.to_dict("records")
    ]  # fmt: skip


# -- records of any shape, from functions of their index


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
