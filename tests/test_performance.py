"""Label coverage and maturity, and the realized metrics' 95% intervals (CONTRACT section 9):
the intervals checked by simulation (they cover the population's value at about their
nominal rate), and end to end through the API as labels arrive."""

from __future__ import annotations

import math
import textwrap
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from scipy import stats
from sklearn import metrics
from sqlalchemy import Engine, select

from driftwatch.alerting import rules
from driftwatch.alerting.evaluate import AlertState, evaluate
from driftwatch.alerting.service import AlertingContext
from driftwatch.core.time import utcnow
from driftwatch.db import session_scope
from driftwatch.models import AlertRuleState
from driftwatch.monitoring import accuracy, intervals, service
from driftwatch.monitoring.accuracy import Scored
from driftwatch.registry import service as registry
from tests import factories

# A recent hour: windows here must not be past the label horizon (30 days), which would make
# them mature whatever their labels.
T0 = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
WINDOWS = 400  # simulated windows per check
ROWS = 400  # labeled rows per window
# 95% of 400 windows: the binomial standard error is 1.1 points; 2.7 of them either side
LOW, HIGH = 0.92, 0.98


def _binary_population(rng: np.random.Generator, n: int) -> tuple[Any, Any]:
    x = rng.normal(size=n)
    p = 1 / (1 + np.exp(-(1.5 * x - 0.5)))
    return (rng.random(n) < p).astype(float), p


def _binary_truth() -> dict[str, float]:
    y, p = _binary_population(np.random.default_rng(1), 2_000_000)
    predicted = (p >= 0.5).astype(int)
    return {
        "accuracy": metrics.accuracy_score(y, predicted),
        "precision": metrics.precision_score(y, predicted),
        "recall": metrics.recall_score(y, predicted),
        "f1": metrics.f1_score(y, predicted),
        "roc_auc": metrics.roc_auc_score(y, p),
        "log_loss": metrics.log_loss(y, p),
    }


def _coverage(truth: dict[str, float], windows: list[dict[str, tuple[float, float]]]) -> dict:
    return {
        name: float(np.mean([w[name][0] <= value <= w[name][1] for w in windows]))
        for name, value in truth.items()
    }


def test_binary_intervals_cover_the_population_value_at_95_percent() -> None:
    truth = _binary_truth()
    rng = np.random.default_rng(7)
    found = []
    for _ in range(WINDOWS):
        y, p = _binary_population(rng, ROWS)
        scored = Scored("binary", y, (p >= 0.5).astype(float), p)
        found.append(intervals.intervals(scored, dict.fromkeys(truth, 0.0)))
    coverage = _coverage(truth, found)
    assert all(LOW <= share <= HIGH for share in coverage.values()), coverage


def test_regression_intervals_cover_the_population_value_at_95_percent() -> None:
    def draw(rng: np.random.Generator, n: int) -> tuple[Any, Any]:
        x = rng.normal(size=n)
        # truth far from 0, so that MAPE has a population value worth estimating
        return 10 + x + rng.normal(size=n) * 0.5, 10 + 0.9 * x + 0.1

    y, predicted = draw(np.random.default_rng(1), 2_000_000)
    truth = {
        "mae": metrics.mean_absolute_error(y, predicted),
        "rmse": math.sqrt(metrics.mean_squared_error(y, predicted)),
        "r2": metrics.r2_score(y, predicted),
        "mape": metrics.mean_absolute_percentage_error(y, predicted),
    }
    rng = np.random.default_rng(8)
    found = []
    for _ in range(WINDOWS):
        y, predicted = draw(rng, ROWS)
        scored = Scored("regression", y, predicted)
        found.append(intervals.intervals(scored, dict.fromkeys(truth, 0.0)))
    coverage = _coverage(truth, found)
    assert all(LOW <= share <= HIGH for share in coverage.values()), coverage


def test_multiclass_intervals_cover_the_population_value_at_95_percent() -> None:
    confusion = np.array([[0.30, 0.04, 0.02], [0.05, 0.25, 0.05], [0.03, 0.06, 0.20]])

    def macro(counts: Any) -> dict[str, float]:
        tp = np.diag(counts)
        precision, recall = tp / counts.sum(axis=0), tp / counts.sum(axis=1)
        return {
            "accuracy": float(tp.sum() / counts.sum()),
            "precision": float(precision.mean()),
            "recall": float(recall.mean()),
            "f1": float(np.mean(2 * precision * recall / (precision + recall))),
        }

    truth = macro(confusion)
    rng = np.random.default_rng(9)
    found = []
    for _ in range(WINDOWS):
        cells = rng.choice(9, size=ROWS, p=confusion.ravel())
        scored = Scored("classes", (cells // 3).astype(float), (cells % 3).astype(float),
                        classes=3)  # fmt: skip
        found.append(intervals.intervals(scored, dict.fromkeys(truth, 0.0)))
    coverage = _coverage(truth, found)
    assert all(LOW <= share <= HIGH for share in coverage.values()), coverage


@pytest.mark.parametrize(("successes", "trials"), [(0, 10), (3, 10), (50, 100), (999, 1000)])
def test_wilson_is_the_score_interval(successes: int, trials: int) -> None:
    """The Wilson interval's ends are where the score test z = 1.96 (checked by solving)."""
    low, high = intervals.wilson(successes, trials) or (math.nan, math.nan)
    share = successes / trials

    def z(p: float) -> float:
        return (share - p) / math.sqrt(p * (1 - p) / trials)

    if successes > 0:
        assert z(low) == pytest.approx(stats.norm.ppf(0.975), rel=1e-9)
    else:
        assert low == 0
    assert z(high) == pytest.approx(-stats.norm.ppf(0.975), rel=1e-9)


def test_the_row_bootstrap_keeps_its_cost_bounded_on_large_windows() -> None:
    seen = []

    def statistic(index: Any) -> Any:
        seen.append(index.shape)
        return np.zeros(index.shape[0])

    values = intervals.row_bootstrap(1_000_000, statistic, np.random.default_rng(0))
    assert len(values) == intervals.MIN_ROW_DRAWS
    resampled = seen[:-1]  # then the full sample, once
    assert sum(rows * draws for draws, rows in resampled) <= intervals.BOOTSTRAP_CELLS
    assert seen[-1] == (1, 1_000_000)


def test_the_m_out_of_n_bootstrap_keeps_the_spread_of_the_full_one() -> None:
    """Over MAX_RESAMPLED_ROWS rows, the rescaled m-out-of-n interval of a mean is the normal
    one (sd / sqrt(n)) within a few percent of its width."""
    rng = np.random.default_rng(3)
    values = rng.exponential(size=400_000)
    draws = intervals.row_bootstrap(len(values), lambda i: values[i].mean(axis=1), rng)
    low, high = np.percentile(draws, [2.5, 97.5])
    half = 1.959964 * values.std() / math.sqrt(len(values))
    assert (high - low) / 2 == pytest.approx(half, rel=0.12)
    assert (low + high) / 2 == pytest.approx(values.mean(), abs=half * 0.2)


# -- rules --------------------------------------------------------------------------------------


def _parse(extra: str, when: str = "accuracy.f1 < 0.8") -> tuple[Any, list[Any]]:
    text = (
        textwrap.dedent(f"""\
        channels:
          ml: {{type: slack, channel: "#ml"}}
        rules:
          - name: f1
            model: '*'
            when: {when}
            notify: [ml]
        """)
        + extra
    )
    return rules.parse_files([("rules/a.yaml", text)])


def test_min_label_coverage_is_read_and_bad_values_are_named() -> None:
    ruleset, problems = _parse("    min_label_coverage: 0.5\n")
    assert problems == []
    assert ruleset.rules[0].min_label_coverage == 0.5
    for bad in ("1.5", "half", "[0.5]"):
        _, problems = _parse(f"    min_label_coverage: {bad}\n")
        assert len(problems) == 1
        assert "rule 'f1': min_label_coverage: must be a number from 0 to 1" in str(problems[0])
        assert problems[0].line == 8
    _, problems = _parse("    min_label_coverage: 0.5\n", when="dataset.drifted_share > 0.3")
    assert "applies to rules on accuracy.* metrics only" in str(problems[0])


def test_a_window_below_min_label_coverage_is_not_evaluated() -> None:
    ruleset, _ = _parse("    min_label_coverage: 0.5\n")
    rule = ruleset.rules[0]
    end, now = T0, utcnow()
    state, transition = evaluate(rule, AlertState(), value=0.1, window_end=end, now=now,
                                 label_coverage=0.3)  # fmt: skip
    assert (state, transition) == (AlertState(), None)  # not even counted as evaluated
    state, transition = evaluate(rule, AlertState(), value=0.1, window_end=end, now=now,
                                 label_coverage=0.6)  # fmt: skip
    assert state.state == "firing"
    assert transition is not None
    assert transition.event == "firing"


# -- through the API ----------------------------------------------------------------------------


def _model(api: TestClient, **fields: Any) -> factories.Model:
    model = factories.model(api, **fields)
    model.baseline(factories.baseline_records(300, label=lambda i: int(i * 37 % 100 >= 50)))
    return model


def test_coverage_and_maturity_move_as_labels_arrive(api: TestClient) -> None:
    model = _model(api)
    sent = factories.predictions(200, start=T0, step=timedelta(seconds=10))
    model.log(sent)
    end = T0 + timedelta(hours=1)
    first = model.run(T0, end)
    assert first["labels"] == {"coverage": 0.0, "mature": False}
    assert first["accuracy"] is None
    assert first["accuracy_intervals"] is None
    truth = lambda i: int((i * 37 % 100) >= 40)  # noqa: E731 (wrong on 10% of rows)
    model.label(factories.labels([r["prediction_id"] for r in sent[:100]], label=truth))
    half = model.run(T0, end)
    assert half["labels"] == {"coverage": 0.5, "mature": False}
    assert set(half["accuracy_intervals"]) == set(half["accuracy"])
    for name, (low, high) in half["accuracy_intervals"].items():
        assert low <= half["accuracy"][name] <= high, name
    assert half["accuracy_intervals"]["accuracy"] == pytest.approx(
        intervals.wilson(round(half["accuracy"]["accuracy"] * 100), 100)
    )
    model.label(factories.labels([r["prediction_id"] for r in sent[100:170]], label=truth))
    most = model.run(T0, end)
    assert most["labels"] == {"coverage": 0.85, "mature": True}  # the default minimum, 0.8
    low, high = most["accuracy_intervals"]["accuracy"]
    half_low, half_high = half["accuracy_intervals"]["accuracy"]
    assert high - low < half_high - half_low  # more labels, a narrower interval


def test_label_coverage_min_and_decision_threshold_are_model_settings(api: TestClient) -> None:
    model = _model(api, label_coverage_min=0.4, decision_threshold=0.7)
    shown = api.get(model.path).json()
    assert (shown["label_coverage_min"], shown["decision_threshold"]) == (0.4, 0.7)
    sent = factories.predictions(100, start=T0, step=timedelta(seconds=30))
    model.log(sent)
    model.label(factories.labels([r["prediction_id"] for r in sent[:50]], label=lambda i: 1))
    run = model.run(T0, T0 + timedelta(hours=1))
    assert run["labels"] == {"coverage": 0.5, "mature": True}
    scores = [factories.default_score(i) for i in range(50)]
    assert run["accuracy"]["recall"] == pytest.approx(np.mean(np.array(scores) >= 0.7))
    patched = api.patch(model.path, json={"label_coverage_min": 0.9})
    assert patched.status_code == 200, patched.text
    assert patched.json()["decision_threshold"] == 0.7  # kept
    assert model.run(T0, T0 + timedelta(hours=1))["labels"]["mature"] is False
    refused = api.patch(model.path, json={"decision_threshold": 1.5})
    assert refused.status_code == 422
    assert "decision_threshold" in refused.text


def test_a_window_older_than_the_label_horizon_is_mature_without_labels(
    api: TestClient,
) -> None:
    model = _model(api)
    old = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=40)
    model.log(factories.predictions(50, start=old, prefix="old"))
    run = model.run(old, old + timedelta(hours=1))
    assert run["labels"] == {"coverage": 0.0, "mature": True}


def test_a_rule_with_min_label_coverage_waits_for_the_labels(
    api: TestClient, engine: Engine
) -> None:
    """Through the real run path: the rule sees the window once its coverage reached 0.5."""
    ruleset, problems = _parse("    min_label_coverage: 0.5\n", when="accuracy.accuracy < 2")
    assert problems == []
    model = _model(api)
    sent = factories.predictions(100, start=T0, step=timedelta(seconds=30))
    model.log(sent)
    end = T0 + timedelta(hours=1)

    def run_and_state() -> tuple[str, Any]:
        with session_scope(engine) as session:
            stored = registry.get_by_name(session, name=model.name)
            service.run_now(session, model=stored, start=T0, end=end,
                            alerting=AlertingContext(ruleset))  # fmt: skip
            state = session.scalars(
                select(AlertRuleState).where(AlertRuleState.model_id == stored.id)
            ).one()
            return state.state, state.last_window_end

    model.label(factories.labels([r["prediction_id"] for r in sent[:30]]))
    assert run_and_state() == ("ok", None)  # 30% labeled: not evaluated, not even seen
    model.label(factories.labels([r["prediction_id"] for r in sent[30:60]]))
    assert run_and_state() == ("firing", end)


@pytest.mark.parametrize(
    ("rows", "seed", "positives"),
    [(2, 0, 0.5), (7, 1, 0.3), (100, 2, 0.5), (1000, 3, 0.05), (1000, 4, 0.97), (50, 5, 0.0),
     (50, 6, 1.0), (5000, 7, 0.4)],
)  # fmt: skip
def test_binary_metrics_are_scikit_learn_s(rows: int, seed: int, positives: float) -> None:
    """The counts-and-ranks binary metrics against scikit-learn's own functions, ties in the
    scores (rounded to two places), one class only, and predictions that call nothing."""
    rng = np.random.default_rng(seed)
    y_true = (rng.random(rows) < positives).astype(int)
    scores = np.clip(np.round(rng.beta(2, 2, rows) * 0.6 + 0.3 * y_true, 2), 0, 1)
    for threshold in (0.5, 0.99):
        y_pred = (scores >= threshold).astype(int)
        found = accuracy.binary_metrics(y_true, y_pred, scores)
        expected = {
            "accuracy": metrics.accuracy_score(y_true, y_pred),
            "precision": metrics.precision_score(y_true, y_pred, zero_division=0),
            "recall": metrics.recall_score(y_true, y_pred, zero_division=0),
            "f1": metrics.f1_score(y_true, y_pred, zero_division=0),
        }
        if 0 < y_true.sum() < rows:
            expected["roc_auc"] = metrics.roc_auc_score(y_true, scores)
            expected["log_loss"] = metrics.log_loss(
                y_true, np.clip(scores, 1e-15, 1 - 1e-15), labels=[0, 1])  # fmt: skip
        assert found == pytest.approx(expected, rel=1e-12, abs=1e-12)
