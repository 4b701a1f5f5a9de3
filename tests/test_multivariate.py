"""Multivariate drift (CONTRACT section 11): a classifier told apart window from baseline rows,
and the PCA reconstruction error against the baseline's components, with thresholds from the
baseline's own variation."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from driftwatch.config import Settings
from driftwatch.core.result import RunResult
from driftwatch.monitoring import service
from driftwatch.stats import multivariate as mv
from tests import factories
from tests.conftest import silenced_rule_app

HOUR = timedelta(hours=1)
START = datetime(2026, 11, 24, 10, tzinfo=UTC)
FEATURES = [
    {"name": "age", "kind": "numerical"},
    {"name": "income", "kind": "numerical"},
    {"name": "state", "kind": "categorical"},
]


def _pairs(rows: int, *, seed: int, rho: float) -> pd.DataFrame:
    """age and income standard normal with correlation ``rho``: the marginals are the same
    whatever ``rho``; state independent of both."""
    rng = np.random.default_rng(seed)
    age = rng.normal(size=rows)
    income = rho * age + np.sqrt(1 - rho**2) * rng.normal(size=rows)
    return pd.DataFrame({
        "age": age.round(4), "income": income.round(4),
        "state": rng.choice(["CA", "NY", "TX"], rows), "prediction": rng.random(rows).round(4),
    })  # fmt: skip


def _features(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in ("age", "income", "state")}


def _records(data: pd.DataFrame, prefix: str, start: datetime = START) -> list[dict[str, Any]]:
    step = HOUR / (len(data) + 1)
    return [
        {"prediction_id": f"{prefix}-{i}", "timestamp": (start + i * step).isoformat(),
         "features": _features(row), "prediction": row["prediction"]}
        for i, row in enumerate(data.to_dict("records"))
    ]  # fmt: skip


def _model(api: TestClient, name: str | None = None) -> factories.Model:
    fields: dict[str, Any] = {"features": FEATURES}
    if name is not None:
        fields["name"] = name
    model = factories.model(api, **fields)
    baseline = _pairs(3000, seed=1, rho=0.9)
    model.baseline([{"features": _features(r), "prediction": r["prediction"]}
                    for r in baseline.to_dict("records")])  # fmt: skip
    return model


def test_a_broken_correlation_is_found_by_the_multivariate_detectors_only(
    api: TestClient,
) -> None:
    """Same marginals, the correlation flipped: no column drifts, both detectors do, and the
    classifier names the broken pair."""
    model = _model(api)
    model.log(_records(_pairs(1500, seed=2, rho=-0.9), "w"))
    run = model.run(START, START + HOUR)
    assert [f["drifted"] for f in run["features"]] == [False, False, False]
    found = run["multivariate"]
    assert found["features"] == ["age", "income", "state"]
    assert found["sample_rows"] == max(s for s in mv.SIZE_GRID if s <= 1500)
    classifier, reconstruction = found["classifier"], found["reconstruction"]
    assert classifier["drifted"] is True
    assert classifier["verdict"] == "drift"
    assert classifier["score"] > 0.7 > classifier["threshold"] > 0.5
    assert set(classifier["top_features"]) == {"age", "income"}
    assert classifier["p_value"] < 1e-6  # calibrated: the AUC against its null
    assert reconstruction["drifted"] is True
    assert reconstruction["score"] > reconstruction["threshold"]
    metrics = RunResult.model_validate(run).metrics()
    assert metrics["multivariate.classifier.score"] == classifier["score"]
    assert metrics["multivariate.reconstruction.drifted"] == 1.0


def test_no_change_no_alarm_and_the_same_window_gives_the_same_result(api: TestClient) -> None:
    model = _model(api)
    model.log(_records(_pairs(1500, seed=3, rho=0.9), "w"))
    run = model.run(START, START + HOUR)
    found = run["multivariate"]
    assert found["classifier"]["drifted"] is False
    assert found["classifier"]["top_features"] == []
    assert found["reconstruction"]["drifted"] is False
    again = model.run(START, START + HOUR)
    assert again["multivariate"] == found


def test_the_nulls_a_run_measures_are_kept_with_the_baseline_for_other_processes(
    api: TestClient, engine: Engine
) -> None:
    """The first run against a baseline measures the classifier's null at its sample size
    (20 fits) and the reconstruction's out-of-fold errors; both are stored on the baseline's
    joint row, and a process that loads the baseline afresh restores them instead of
    measuring them again, with the same verdict."""
    from driftwatch.models import Baseline, BaselineColumn, MonitoredModel
    from driftwatch.monitoring import repository

    model = _model(api)
    model.log(_records(_pairs(1500, seed=3, rho=0.9), "w"))
    first = model.run(START, START + HOUR)["multivariate"]
    size = first["sample_rows"]
    with Session(engine) as session:
        [(baseline_id, kept)] = session.execute(
            select(BaselineColumn.baseline_id, BaselineColumn.prepared)
            .join(Baseline, Baseline.id == BaselineColumn.baseline_id)
            .join(MonitoredModel, MonitoredModel.id == Baseline.model_id)
            .where(MonitoredModel.name == model.name, BaselineColumn.position == -2)
        ).all()  # fmt: skip
        assert kept is not None
        assert set(kept["classifier_spread"]) == {str(size)}
        mean, spread, count = kept["reconstruction_errors"]
        assert spread > 0
        assert count == 3000
        # another process: the profile read from the database, not this one's cache
        fresh = repository.load_profile(session, baseline=session.get(Baseline, baseline_id))
    assert fresh.joint is not None
    detectors = fresh.joint.detectors
    assert detectors.unsaved() is None  # nothing measured that is not stored
    assert detectors.classifier_spread(size) == kept["classifier_spread"][str(size)]
    assert detectors.reconstruction()[1] == (mean, spread, count)
    service.PROFILES._items.clear()  # the next run loads the baseline as a new process would
    again = model.run(START, START + HOUR)["multivariate"]
    assert again == first


def test_too_few_rows_is_insufficient_not_a_number(api: TestClient) -> None:
    model = _model(api)
    model.log(_records(_pairs(60, seed=4, rho=0.9), "w"))
    found = model.run(START, START + HOUR)["multivariate"]
    for detector in (found["classifier"], found["reconstruction"]):
        assert detector["verdict"] == "insufficient"
        assert detector["score"] is None
        assert detector["drifted"] is None
        assert "fewer than 100 rows" in detector["reason"]


def test_missing_values_and_unseen_categories_are_compared(api: TestClient) -> None:
    """A window whose state is often a category the baseline never saw, and whose ages are
    often missing: both detectors run, and the classifier tells the two apart by state."""
    model = _model(api)
    window = _pairs(1500, seed=5, rho=0.9)
    rng = np.random.default_rng(5)
    window.loc[rng.random(1500) < 0.4, "state"] = "WA"
    records = _records(window, "w")
    for record in records[::4]:
        record["features"]["age"] = None
    model.log(records)
    found = model.run(START, START + HOUR)["multivariate"]
    assert found["classifier"]["drifted"] is True
    assert found["classifier"]["top_features"][0] in {"state", "age"}
    assert "state" in found["classifier"]["top_features"]
    assert found["reconstruction"]["score"] is not None


def test_a_model_with_one_feature_or_switched_off_has_no_multivariate_entry(
    api: TestClient,
) -> None:
    single = factories.model(api, features=[{"name": "age", "kind": "numerical"}])
    single.baseline(factories.baseline_records(300, features=lambda i: {"age": i % 40}))
    single.log(factories.predictions(200, features=lambda i: {"age": i % 40}, start=START))
    assert single.run(START, START + HOUR)["multivariate"] is None
    off = factories.model(api, features=FEATURES, drift={"multivariate": False})
    off.baseline([{"features": _features(r)} for r in _pairs(300, seed=6, rho=0.5)
                  .to_dict("records")])  # fmt: skip
    off.log(_records(_pairs(200, seed=7, rho=0.5), "w"))
    assert off.run(START, START + HOUR)["multivariate"] is None
    assert api.get(off.path).json()["drift"]["multivariate"] is False


def test_the_baseline_keeps_its_rows_and_reads_them_back(api: TestClient, engine: Engine) -> None:
    """The joint profile survives the database: the same rows and category codes, in a fresh
    read (not the cache)."""
    model = _model(api)
    with Session(engine) as session:
        from driftwatch.monitoring import repository
        from driftwatch.registry import service as registry

        stored = registry.get_by_name(session, name=model.name)
        baseline = service.active_baseline(session, model=stored)
        assert baseline is not None
        profile = repository.load_profile(session, baseline=baseline)
    assert profile.joint is not None
    assert profile.joint.names == ["age", "income", "state"]
    rows = profile.joint.detectors.rows
    assert rows.numerical.shape == (3000, 2)
    assert rows.categorical.shape == (3000, 1)
    expected = _pairs(3000, seed=1, rho=0.9)
    assert np.allclose(rows.numerical[:, 0], expected["age"])
    states = profile.categories()["state"]
    assert [states[c] for c in rows.categorical[:10, 0]] == list(expected["state"][:10])


@pytest.fixture
def rules_api(settings: Settings, engine: Engine, tmp_path: Path) -> Iterator[TestClient]:
    with silenced_rule_app(settings, engine, tmp_path, models="mvr-*",
                           when="multivariate.classifier.score > 0.6") as client:  # fmt: skip
        yield client


def test_a_rule_on_the_classifier_score_fires(rules_api: TestClient) -> None:
    model = _model(rules_api, name=f"mvr-{datetime.now(UTC).timestamp():.6f}")
    model.log(_records(_pairs(1500, seed=8, rho=0.9), "a"))
    model.log(_records(_pairs(1500, seed=9, rho=-0.9), "b", start=START + HOUR))
    quiet = model.run(START, START + HOUR)
    broken = model.run(START + HOUR, START + 2 * HOUR)
    alerts = rules_api.get("/api/v1/alerts", params={"model": model.name}).json()
    assert [(a["state"], a["run_id"]) for a in alerts] == [("firing", broken["id"])]
    assert quiet["multivariate"]["classifier"]["score"] < 0.6


# -- the statistics alone -------------------------------------------------------------------


def _nannyml_errors(reference: pd.DataFrame, current: pd.DataFrame) -> np.ndarray:
    """NannyML's DataReconstructionDriftCalculator, step by step with scikit-learn: impute
    (mean; most frequent), categories as their frequency in the reference, standardise on
    the reference, PCA keeping 65% of the variance, each row's Euclidean error."""
    from sklearn.decomposition import PCA
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import StandardScaler

    numbers = ["a", "b", "c"]

    def kinds(frame: pd.DataFrame) -> pd.DataFrame:  # missing as NaN, as SimpleImputer reads it
        return frame[["k"]].astype(object).where(frame[["k"]].notna(), np.nan)

    mean = SimpleImputer(strategy="mean").fit(reference[numbers])
    mode = SimpleImputer(strategy="most_frequent").fit(kinds(reference))

    def encoded(frame: pd.DataFrame) -> np.ndarray:
        imputed_reference = mode.transform(kinds(reference))[:, 0]
        frequency = pd.Series(imputed_reference).value_counts(normalize=True)
        kind = pd.Series(mode.transform(kinds(frame))[:, 0])
        return np.column_stack((mean.transform(frame[numbers]),
                                kind.map(frequency).fillna(0.0).to_numpy()))  # fmt: skip

    scaler = StandardScaler().fit(encoded(reference))
    pca = PCA(n_components=0.65).fit(scaler.transform(encoded(reference)))
    scaled = scaler.transform(encoded(current))
    rebuilt = pca.inverse_transform(pca.transform(scaled))
    return np.linalg.norm(scaled - rebuilt, axis=1)


def _mixed(rows: int, seed: int, rho: float) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=rows)
    b = rho * a + np.sqrt(1 - rho**2) * rng.normal(size=rows)
    frame = pd.DataFrame({"a": a, "b": b, "c": rng.gamma(2, 1, rows),
                          "k": rng.choice(["x", "y", "z"], rows, p=[0.5, 0.3, 0.2])})  # fmt: skip
    frame.loc[rng.random(rows) < 0.05, "a"] = np.nan
    frame.loc[rng.random(rows) < 0.05, "k"] = None
    return frame


def _rows(frame: pd.DataFrame, names: list[str]) -> mv.Rows:
    lookup = {n: i for i, n in enumerate(names)}
    codes = [mv.MISSING if v is None else lookup.get(v, mv.UNSEEN) for v in frame["k"]]
    return mv.Rows(frame[["a", "b", "c"]].to_numpy(dtype=np.float64),
                   np.array(codes, dtype=np.int64)[:, None])  # fmt: skip


def test_reconstruction_error_is_nannymls() -> None:
    reference, current = _mixed(2000, 1, 0.8), _mixed(500, 2, -0.3)
    current.loc[:9, "k"] = "new"  # a category the reference never saw: frequency 0
    fitted = mv.fit_reconstruction(_rows(reference, ["x", "y", "z"]), [3])
    ours = fitted.errors(_rows(current, ["x", "y", "z"]))
    assert np.allclose(ours, _nannyml_errors(reference, current), rtol=1e-9, atol=1e-9)


def test_reconstruction_error_has_the_known_answer_of_a_line() -> None:
    """Reference rows on the line b = 2a: one component explains everything; a row's error
    is then |u - v| / sqrt(2) for its standardised values (u, v)."""
    rng = np.random.default_rng(3)
    a = rng.normal(size=1000)
    reference = mv.Rows(np.column_stack((a, 2 * a)), np.empty((1000, 0), dtype=np.int64))
    fitted = mv.fit_reconstruction(reference, [])
    assert fitted.components.shape == (1, 2)
    assert np.allclose(fitted.errors(reference), 0, atol=1e-9)
    point = mv.Rows(np.array([[1.0, -2.0]]), np.empty((1, 0), dtype=np.int64))
    u, v = (np.array([1.0, -2.0]) - fitted.center) / fitted.scale
    assert fitted.errors(point)[0] == pytest.approx(abs(u - v) / np.sqrt(2))


def test_independent_features_keep_every_component_and_the_reconstruction_says_so() -> None:
    """Two independent features: one component explains about half their variance, so PCA at
    65% keeps both, every row is rebuilt exactly and the error is rounding noise (about
    1e-16). The detector gives no score instead of a verdict on that noise."""
    rng = np.random.default_rng(5)
    empty = np.empty((2000, 0), dtype=np.int64)
    baseline = mv.MultivariateBaseline.of(mv.Rows(rng.normal(size=(2000, 2)), empty), [])
    fitted, _ = baseline.reconstruction()
    assert not fitted.informative
    assert fitted.components.shape == (2, 2)
    window = mv.Rows(rng.normal(loc=(3.0, 0.0), size=(300, 2)), empty[:300])
    outcome = mv.detect(baseline, window, level=0.01)
    assert outcome is not None
    assert outcome.reconstruction is None
    assert outcome.classifier.drifted  # the classifier still sees the shift
    # correlated features share a component: the detector is informative there
    a = rng.normal(size=2000)
    line = mv.Rows(np.column_stack((a, a + rng.normal(scale=0.2, size=2000))), empty)
    assert mv.MultivariateBaseline.of(line, []).reconstruction()[0].informative


def test_auc_score_is_scikit_learns() -> None:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(4)
    labels = rng.random(300) < 0.4
    scores = np.round(rng.random(300) + labels * 0.2, 1)  # with ties
    assert mv.auc_score(labels, scores) == pytest.approx(roc_auc_score(labels, scores))


def test_sample_sizes_sit_on_the_grid() -> None:
    assert mv.sample_size(99, 10_000) is None
    assert mv.sample_size(10_000, 150) is None  # half the baseline's sample is too few
    assert mv.sample_size(10**6, 10**6) == mv.SAMPLE_ROWS
    assert mv.sample_size(1000, 10**6) in mv.SIZE_GRID
    assert 900 < mv.sample_size(1000, 10**6) <= 1000  # type: ignore[operator]


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_false_alarms_are_near_the_level_when_nothing_changes() -> None:
    """Windows from the baseline's own distribution, tested at level 0.05: each detector
    calls about 5% of them drifted (300 windows, 100 against each of three baselines)."""
    alarms = {"classifier": 0, "reconstruction": 0}
    windows = 0
    for seed in (10, 20, 30):
        frame = _mixed(2000, seed, 0.6)
        baseline = mv.MultivariateBaseline.of(_rows(frame, ["x", "y", "z"]),
                                              [np.array([5, 3, 2])])  # fmt: skip
        for repeat in range(100):
            window = _rows(_mixed(200, seed * 1000 + repeat, 0.6), ["x", "y", "z"])
            outcome = mv.detect(baseline, window, level=0.05, seed=repeat)
            assert outcome is not None
            alarms["classifier"] += outcome.classifier.drifted
            assert outcome.reconstruction is not None
            alarms["reconstruction"] += outcome.reconstruction.drifted
            windows += 1
    rates = {name: count / windows for name, count in alarms.items()}
    # 300 windows: a binomial's 95% range around 0.05 is about 0.025-0.075
    assert 0.02 <= rates["classifier"] <= 0.085, rates
    assert 0.02 <= rates["reconstruction"] <= 0.085, rates


@pytest.fixture
def small_limit(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    from driftwatch.app import create_app
    from tests.conftest import ADMIN_KEY

    custom = settings.model_copy(update={"exact_max_rows": 500})
    with TestClient(
        create_app(custom, engine), headers={"Authorization": f"Bearer {ADMIN_KEY}"}
    ) as client:
        yield client


def test_a_run_from_summaries_says_why_it_has_no_multivariate_scores(
    small_limit: TestClient,
) -> None:
    model = _model(small_limit)
    model.log(_records(_pairs(1500, seed=11, rho=-0.9), "w"))
    window = {"start": START.isoformat(), "end": (START + HOUR).isoformat()}
    summarised = small_limit.post(f"{model.path}/runs", json=window).json()
    assert summarised["source"] == "summaries"
    found = summarised["multivariate"]
    assert found["classifier"]["score"] is None
    assert found["classifier"]["verdict"] is None
    assert '"exact": true' in found["classifier"]["reason"]
    assert found["reconstruction"]["reason"] == found["classifier"]["reason"]
    exact = small_limit.post(f"{model.path}/runs", json={**window, "exact": True}).json()
    assert exact["source"] == "rows"
    assert exact["multivariate"]["classifier"]["drifted"] is True
