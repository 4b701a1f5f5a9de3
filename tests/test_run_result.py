"""A run is one typed result: a column whose test cannot run says why, the others stand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from driftwatch.models import MonitoredModel
from tests.conftest import create_model

T0 = datetime(2026, 11, 22, 10, tzinfo=UTC)


def test_a_test_that_cannot_apply_to_one_column_never_fails_the_run(
    api: TestClient, engine: Engine
) -> None:
    """fisher_exact needs two categories; a multiclass prediction has three. Settings saved
    before such settings were refused must still give a run, with that column's reason."""
    features = [{"name": "size", "kind": "numerical"}, {"name": "clinic", "kind": "categorical"}]
    name = create_model(api, task="multiclass_classification", window="1h",
                        features=features)["name"]  # fmt: skip
    classes = ["a", "b", "c"]
    baseline = [{"features": {"size": i % 7, "clinic": "x" if i % 2 else "y"},
                 "prediction": classes[i % 3]} for i in range(90)]  # fmt: skip
    assert api.post(f"/api/v1/models/{name}/baselines",
                    json={"name": "b", "records": baseline}).status_code == 201  # fmt: skip
    records = [{"prediction_id": f"p{i}", "timestamp": (T0 + timedelta(seconds=i)).isoformat(),
                "features": {"size": i % 5, "clinic": "x" if i % 3 else "y"},
                "prediction": classes[i % 3]} for i in range(60)]  # fmt: skip
    api.post(f"/api/v1/models/{name}/predictions", json={"records": records})
    with Session(engine) as session:  # as a model saved before such settings were refused
        model = session.scalars(select(MonitoredModel).where(MonitoredModel.name == name)).one()
        model.drift = {"cat_stattest": "fisher_exact"}
        session.commit()
    response = api.post(f"/api/v1/models/{name}/runs",
                        json={"start": T0.isoformat(),
                              "end": (T0 + timedelta(hours=1)).isoformat()})  # fmt: skip
    assert response.status_code == 200, response.text
    run = response.json()
    assert run["status"] == "done"
    prediction = run["prediction"]
    assert prediction["drifted"] is None
    assert prediction["score"] is None
    assert "fisher_exact" in prediction["error"] or "two" in prediction["error"]
    by_name = {f["name"]: f for f in run["features"]}
    assert by_name["clinic"]["drifted"] is not None  # two categories: fisher_exact applies
    assert by_name["size"]["score"] is not None
    assert run["dataset"]["drifted_share"] is not None
