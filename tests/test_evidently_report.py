"""Evidently's report of a run is computed on the run's own data, or says it is a sample, and
leads back to the dashboard."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from driftwatch.app import create_app
from driftwatch.config import Settings
from driftwatch.dashboard import evidently_report
from driftwatch.db import session_scope
from driftwatch.models import Baseline
from driftwatch.monitoring import service as monitoring
from driftwatch.registry import service as registry
from tests import factories
from tests.conftest import sign_in

os.environ.setdefault("DO_NOT_TRACK", "1")
T0 = datetime(2026, 11, 23, 10, tzinfo=UTC)
FEATURES = [{"name": "age", "kind": "numerical"}, {"name": "income", "kind": "numerical"},
            {"name": "state", "kind": "categorical"}]  # fmt: skip


def _values(seed: int, shift: float) -> Any:
    rng = np.random.default_rng(seed)

    def features(i: int) -> dict[str, Any]:
        state = ("CA", "NY", "TX")[int(rng.integers(0, 3))] if i % 17 else None
        return {"age": round(float(rng.normal(40 + shift, 10)), 1),
                "income": round(float(rng.lognormal(10, 0.5)), 2), "state": state}  # fmt: skip

    return features


def _model_with_a_run(api: TestClient, baseline_rows: int) -> tuple[str, dict[str, Any]]:
    model = factories.model(api, features=FEATURES)
    model.baseline(factories.baseline_records(baseline_rows, features=_values(1, 0.0)))
    model.log(factories.predictions(120, start=T0, features=_values(2, 3.0)))
    return model.name, model.run(T0, T0 + timedelta(hours=1))


def _sides(engine: Engine, name: str, run: dict[str, Any]) -> evidently_report.Sides:
    with session_scope(engine) as session:
        model = registry.get_by_name(session, name=name)
        baseline = session.get(Baseline, run["baseline"]["id"])
        assert baseline is not None
        profile = monitoring.PROFILES.get(session, baseline)
        window = monitoring.read_window(session, model=model, start=T0,
                                        end=T0 + timedelta(hours=1))  # fmt: skip
        return evidently_report.frames(window, profile, registry.feature_specs(model),
                                       seed=run["id"])  # fmt: skip


def test_a_small_baseline_is_used_whole_so_the_report_agrees_with_the_run(
    api: TestClient, engine: Engine
) -> None:
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    name, run = _model_with_a_run(api, baseline_rows=80)
    sides = _sides(engine, name, run)
    assert not sides.sampled
    assert (len(sides.reference), len(sides.current)) == (80, 120)
    # the baseline's own values, each once (never drawn with replacement)
    sent = [r["features"] for r in factories.baseline_records(80, features=_values(1, 0.0))]
    assert sorted(sides.reference["age"].tolist()) == sorted(r["age"] for r in sent)
    assert sorted(sides.reference["state"].dropna().tolist()) == sorted(
        r["state"] for r in sent if r["state"] is not None)  # fmt: skip
    # and Evidently, on them, finds the run's own scores for the KS-tested columns
    definition = DataDefinition(numerical_columns=["age", "income"],
                                categorical_columns=["state"])  # fmt: skip
    snapshot = Report([DataDriftPreset()]).run(
        Dataset.from_pandas(sides.current, data_definition=definition),
        Dataset.from_pandas(sides.reference, data_definition=definition),
    )
    evidently = {}
    for metric in snapshot.dict()["metrics"]:
        if metric["config"]["type"].endswith(":ValueDrift"):
            evidently[metric["config"]["column"]] = float(metric["value"])
    for entry in run["features"]:
        if entry["kind"] == "numerical":
            assert entry["stattest"] == "ks"
            assert evidently[entry["name"]] == pytest.approx(entry["score"], rel=1e-6)


def test_the_report_page_says_what_it_ran_on_and_leads_back(
    api: TestClient, engine: Engine, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    name, run = _model_with_a_run(api, baseline_rows=80)
    with TestClient(create_app(settings, engine)) as browser:
        sign_in(browser, follow_redirects=False)
        whole = browser.get(f"/models/{name}/evidently", params={"run": run["id"]})
        monkeypatch.setattr(evidently_report, "SAMPLE_ROWS", 50)
        sampled = browser.get(f"/models/{name}/evidently", params={"run": run["id"]})
    assert whole.status_code == 200
    assert "the run&#x27;s own data: the window&#x27;s 120 predictions" in whole.text
    assert f'href="/models/{name}"' in whole.text
    assert f"<title>Evidently: {name}, run {run['id']} · driftwatch</title>" in whole.text
    assert sampled.status_code == 200
    assert "a sample of 50 of the window&#x27;s 120 predictions and 50 of the baseline" in (
        sampled.text)  # fmt: skip
    assert "may differ from the run" in sampled.text
