"""A run is one typed result: a column whose test cannot run says why, the others stand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from driftwatch.models import MonitoredModel
from tests import factories

T0 = datetime(2026, 11, 22, 10, tzinfo=UTC)


def test_a_test_that_cannot_apply_to_one_column_never_fails_the_run(
    api: TestClient, engine: Engine
) -> None:
    """fisher_exact needs two categories; a multiclass prediction has three. Settings saved
    before such settings were refused must still give a run, with that column's reason."""
    features = [{"name": "size", "kind": "numerical"}, {"name": "clinic", "kind": "categorical"}]
    model = factories.model(api, task="multiclass_classification", features=features)
    classes = ["a", "b", "c"]
    model.baseline(factories.baseline_records(
        90, features=lambda i: {"size": i % 7, "clinic": "x" if i % 2 else "y"},
        prediction=lambda i: classes[i % 3]))  # fmt: skip
    model.log(factories.predictions(
        60, start=T0, features=lambda i: {"size": i % 5, "clinic": "x" if i % 3 else "y"},
        prediction=lambda i: classes[i % 3]))  # fmt: skip
    name = model.name
    with Session(engine) as session:  # as a model saved before such settings were refused
        stored = session.scalars(select(MonitoredModel).where(MonitoredModel.name == name)).one()
        stored.drift = {"cat_stattest": "fisher_exact"}
        session.commit()
    run = model.run(T0, T0 + timedelta(hours=1))
    assert run["status"] == "done"
    prediction = run["prediction"]
    assert prediction["drifted"] is None
    assert prediction["score"] is None
    assert "fisher_exact" in prediction["error"] or "two" in prediction["error"]
    by_name = {f["name"]: f for f in run["features"]}
    assert by_name["clinic"]["drifted"] is not None  # two categories: fisher_exact applies
    assert by_name["size"]["score"] is not None
    assert run["dataset"]["drifted_share"] is not None
