"""One metric vocabulary: what a real run computes is what rules accept and the README lists."""

from __future__ import annotations

import re
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from driftwatch.alerting import rules
from driftwatch.core import vocabulary
from driftwatch.core.result import RunResult
from tests import factories

T0 = datetime(2026, 11, 21, 10, tzinfo=UTC)
README = Path(__file__).resolve().parent.parent / "README.md"


def _rule(metric: str) -> str:
    return textwrap.dedent(f"""\
        channels:
          ml: {{type: slack, channel: "#ml"}}
        rules:
          - name: r
            model: '*'
            when: {metric} > 0
            notify: [ml]
        """)


def _computed_run(api: TestClient) -> dict[str, Any]:
    model = factories.model(api, segments=["state"], segment_min_rows=20)
    model.baseline(factories.baseline_records(
        200, features=lambda i: {"age": 30 + i % 20, "state": "CA" if i % 3 else "NY"},
        label=lambda i: i % 2))  # fmt: skip
    sent = factories.predictions(150, start=T0, features=lambda i: {
        "age": 35 + i % 30, "state": "TX" if i % 5 == 0 else "CA"},
        model_version="v1")  # fmt: skip
    assert model.log(sent)["accepted"] == 150
    model.label(factories.labels([r["prediction_id"] for r in sent[:100]]))
    shadow = [{"prediction_id": r["prediction_id"], "model_version": "v2",
               "prediction": 1 - r["prediction"]} for r in sent]  # fmt: skip
    assert api.post(f"{model.path}/shadow-predictions",
                    json={"records": shadow}).json()["accepted"] == 150  # fmt: skip
    return model.run(T0, T0 + timedelta(hours=1))


def test_every_number_a_run_computes_is_a_metric_rules_accept(api: TestClient) -> None:
    answered = _computed_run(api)
    result = RunResult.model_validate(answered)
    produced = result.metrics()
    # the names the issue found refused by `rules check` though runs compute them
    for name in ("labeled_rows", "quality.rejected", "prediction.drifted",
                 "feature.age.missing_share", "feature.state.missing_share",
                 "version[v1].accuracy.f1", "version[v2].delta.f1.lower",
                 "segment[state=CA].dataset.drifted_share", "segment[state=TX].rows"):  # fmt: skip
        assert name in produced
    assert produced["rows"] == 150
    assert produced["labeled_rows"] == 100
    assert produced["quality.new_categories"] == 1  # TX
    for name in produced:
        assert vocabulary.metric_problem(name) is None, name
        _, problems = rules.parse_files([("rules/a.yaml", _rule(name))])
        assert problems == [], (name, problems)
    # and every entry of the vocabulary is something a run produces
    for metric in vocabulary.METRICS:
        assert any(metric.pattern.match(name) for name in produced), metric.name


@pytest.mark.parametrize(
    ("metric", "problem"),
    [
        ("accuracy.f2", "unknown accuracy metric 'f2'"),
        ("feature.age.mean", "unknown metric 'feature.age.mean'"),
        ("drifted_share", "unknown metric 'drifted_share'"),
        ("feature.a.b.score", None),  # a feature name may hold dots
        ("accuracy.roc_auc", None),
    ],
)
def test_names_outside_the_vocabulary_are_refused_with_the_list(
    metric: str, problem: str | None
) -> None:
    found = vocabulary.metric_problem(metric)
    if problem is None:
        assert found is None
    else:
        assert found is not None
        assert found.startswith(problem)
    _, problems = rules.parse_files([("rules/a.yaml", _rule(metric))])
    assert bool(problems) == (problem is not None)


def test_the_readme_lists_exactly_the_vocabulary() -> None:
    text = README.read_text()
    block = re.search(r"<!-- metrics:[^>]*-->\n(.*?)\n<!-- /metrics -->", text, re.S)
    assert block is not None, "README has no generated metrics table"
    assert block.group(1).strip() == vocabulary.markdown_table()


def test_the_runs_api_answers_the_typed_result_it_stores(api: TestClient) -> None:
    answered = _computed_run(api)
    listed = api.get(f"/api/v1/models/{answered['model']}/runs").json()
    assert listed[0] == answered | {"computed_at": listed[0]["computed_at"]}
    assert {f["name"] for f in answered["features"]} == {"age", "state"}
    for entry in answered["features"]:
        assert set(entry) == {"name", "kind", "stattest", "score", "threshold", "drifted",
                              "missing_share", "error", "p_value", "verdict", "detectable",
                              "effect_interval", "max_error"}  # fmt: skip
        assert entry["max_error"] is None  # a run from rows (CONTRACT section 8)
    assert (answered["source"], answered["max_error"]) == ("rows", {})
    # every field of the result, whatever it grows, is answered; the run's own fields first
    assert set(RunResult.model_fields) <= set(answered)
    assert list(answered)[:6] == ["id", "model", "kind", "window", "baseline", "status"]
    schema = api.get("/openapi.json").json()["components"]["schemas"]
    assert {"RunOut", "FeatureDrift", "DatasetDrift", "Quality"} <= set(schema)


def test_a_result_stored_by_an_older_version_reads_back() -> None:
    stored = {"rows": 3, "labeled_rows": 0,
              "features": [{"name": "age", "kind": "numerical", "stattest": "ks", "score": 0.5,
                            "threshold": 0.05, "drifted": False, "missing_share": 0.0}],
              "prediction": None,
              "dataset": {"drifted_features": 0, "drifted_share": 0.0, "drifted": False},
              "accuracy": None,
              "quality": {"missing_share": 0.0, "new_categories": {}, "out_of_range": {},
                          "rejected": 0, "retired_field": 1}}  # fmt: skip
    result = RunResult.model_validate(stored)
    assert result.features[0].error is None
    assert result.metrics()["feature.age.drifted"] == 0.0
    assert (result.source, result.max_error, result.features[0].max_error) == ("rows", {}, None)


def test_prometheus_exports_the_vocabulary_of_the_last_window(api: TestClient) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    answered = _computed_run(api)
    expected = {k: v for k, v in RunResult.model_validate(answered).metrics().items()
                if v is not None}  # fmt: skip
    exported = {
        sample.labels["metric"]: sample.value
        for family in text_string_to_metric_families(api.get("/metrics").text)
        for sample in family.samples
        if sample.name == "driftwatch_run_metric" and sample.labels["model"] == answered["model"]
    }
    assert exported == pytest.approx(expected)
