"""Baselines say which columns of their data they used and which they ignored, refuse what
cannot be right (a misnamed prediction, none of the model's features, an empty file), and can be
deleted while their runs stay."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from driftwatch import db
from driftwatch.alerting.service import AlertingContext
from driftwatch.app import create_app
from driftwatch.config import Settings
from driftwatch.models import BaselineColumn, MonitoredModel, Run
from driftwatch.monitoring import service
from driftwatch.monitoring.scheduler import Scheduler
from tests.conftest import ADMIN_KEY, create_model, sign_in
from tests.factories import frame, post
from tests.factories import frame_baseline as baseline_records
from tests.test_scheduler import model_with_history, runs_of

FEATURES = [{"name": "age", "kind": "numerical"}, {"name": "state", "kind": "categorical"}]
T0 = datetime(2026, 11, 20, 10, tzinfo=UTC)


def upload(api: TestClient, model: str, content: bytes, filename: str = "train.csv") -> Any:
    return api.post(f"/api/v1/models/{model}/baselines", data={"name": "train"},
                    files={"file": (filename, content)})  # fmt: skip


def csv(rows: list[str]) -> bytes:
    return ("\n".join(rows) + "\n").encode()


def test_an_upload_says_which_columns_it_used_and_which_it_ignored(api: TestClient) -> None:
    model = create_model(api, features=FEATURES)["name"]
    response = upload(api, model, csv([
        "age,state,prediction,label,extra,State,prediction_id",
        "31,CA,0.2,0,x,1,p-1",
        "40,NY,0.7,1,y,2,p-2",
    ]))  # fmt: skip
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["columns"] == {
        "features": ["age", "state"],
        "prediction": "prediction",
        "label": "label",
        "ignored": ["extra", "State", "prediction_id"],
    }
    assert body["warnings"] == [
        f"column 'extra' is not a feature of model {model!r} (its features: age, state): ignored",
        f"column 'State' is not a feature of model {model!r} (its features: age, state): "
        "ignored; did you mean 'state'?",
    ]
    listed = api.get(f"/api/v1/models/{model}/baselines").json()
    assert listed[0]["columns"] == body["columns"]
    assert listed[0]["warnings"] == body["warnings"]


def test_a_feature_misspelled_in_case_is_refused_not_left_out(api: TestClient) -> None:
    """A column that is a feature the data lacks under another spelling would make the
    active baseline test one feature less without a word: refused, naming both."""
    model = create_model(api, features=FEATURES)["name"]
    response = upload(api, model, csv(["age,State,prediction", "31,CA,0.2", "40,NY,0.7"]))
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert "column 'State' is not a feature" in detail
    assert "name the column 'state'" in detail
    assert api.get(f"/api/v1/models/{model}/baselines").json() == []


@pytest.mark.parametrize("column", ["pred", "score", "y_pred", "Prediction", "predicted_proba"])
def test_a_misnamed_prediction_column_is_refused(api: TestClient, column: str) -> None:
    model = create_model(api, features=FEATURES)["name"]
    response = upload(api, model, csv([f"age,state,{column}", "31,CA,0.2", "40,NY,0.7"]))
    assert response.status_code == 422, response.text
    assert response.json()["detail"] == (
        f"column {column!r} is not used: name the prediction column 'prediction' "
        f"(it is not one of model {model!r}'s features either)"
    )


def test_a_prediction_like_name_is_a_feature_when_the_model_says_so(api: TestClient) -> None:
    model = create_model(api, features=[{"name": "score", "kind": "numerical"}])["name"]
    response = upload(api, model, csv(["score,pred", "600,0.2", "710,0.9"]))
    # 'score' is a feature; with no 'prediction' column, 'pred' is taken for a misnamed one
    assert response.status_code == 422
    assert "column 'pred' is not used" in response.json()["detail"]
    response = upload(api, model, csv(["score,pred,prediction", "600,0.2,0.2", "710,0.9,0.9"]))
    assert response.status_code == 201, response.text
    assert response.json()["columns"]["features"] == ["score"]
    assert response.json()["columns"]["ignored"] == ["pred"]


def test_a_file_without_any_of_the_features_is_refused(api: TestClient) -> None:
    model = create_model(api, features=FEATURES)["name"]
    response = upload(api, model, csv(["Age_years,region,prediction", "31,CA,0.2"]))
    assert response.status_code == 422
    assert response.json()["detail"] == (
        f"none of model {model!r}'s features (age, state) is a column of the file "
        "(found: Age_years, region)"
    )


def test_a_file_with_some_features_is_compared_on_those(api: TestClient) -> None:
    model = create_model(api, features=FEATURES)["name"]
    response = upload(api, model, csv(["age,prediction", "31,0.2", "45,0.4", "38,0.9"]))
    assert response.status_code == 201, response.text
    assert response.json()["columns"]["features"] == ["age"]
    assert response.json()["warnings"] == [
        "feature 'state' is not in the file: runs against this baseline do not test its drift"
    ]
    logged = api.post(f"/api/v1/models/{model}/predictions", json={"records": [
        {"timestamp": (T0 + timedelta(minutes=i)).isoformat(), "prediction": 0.5,
         "features": {"age": 30 + i, "state": "CA"}} for i in range(5)]})  # fmt: skip
    assert logged.status_code == 200, logged.text
    run = api.post(
        f"/api/v1/models/{model}/runs",
        json={"start": T0.isoformat(), "end": (T0 + timedelta(hours=1)).isoformat()},
    )
    assert run.status_code == 200, run.text
    assert [f["name"] for f in run.json()["features"]] == ["age"]


@pytest.mark.parametrize(
    ("content", "filename", "message"),
    [
        (b"", "train.csv", "file: empty (a CSV needs a header line, then a line per record)"),
        (b"age,state,prediction\n", "train.csv", "file: no rows after its header line"),
        (b"", "train.parquet", "file: empty"),
    ],
)
def test_an_empty_file_is_refused(
    api: TestClient, content: bytes, filename: str, message: str
) -> None:
    model = create_model(api, features=FEATURES)["name"]
    response = upload(api, model, content, filename)
    assert response.status_code == 422
    assert response.json()["detail"].startswith(message), response.json()["detail"]


def test_an_empty_parquet_file_is_refused(api: TestClient) -> None:
    model = create_model(api, features=FEATURES)["name"]
    buffer = io.BytesIO()
    pd.DataFrame({"age": pd.Series([], dtype=float), "state": pd.Series([], dtype=str)}).to_parquet(
        buffer
    )
    response = upload(api, model, buffer.getvalue(), "train.parquet")
    assert response.status_code == 422
    assert response.json()["detail"] == "file: no rows"


def test_a_model_without_features_takes_every_other_column_but_reserved_ones(
    api: TestClient,
) -> None:
    model = create_model(api)["name"]
    response = upload(api, model, csv([
        "prediction_id,timestamp,age,state,target,prediction",
        "p-1,2026-11-01T00:00:00Z,31,CA,1,0.8",
        "p-2,2026-11-01T00:01:00Z,40,NY,0,0.3",
    ]))  # fmt: skip
    assert response.status_code == 201, response.text
    assert response.json()["columns"] == {
        "features": ["age", "state"],
        "prediction": "prediction",
        "label": None,
        "ignored": ["prediction_id", "timestamp", "target"],
    }
    assert response.json()["warnings"] == [
        "column 'target' is not used: name the label column 'label'"
    ]
    assert api.get(f"/api/v1/models/{model}").json()["features"] == FEATURES


def test_a_model_without_features_refuses_a_misnamed_prediction(api: TestClient) -> None:
    model = create_model(api)["name"]
    response = upload(api, model, csv(["age,score", "31,0.8", "40,0.3"]))
    assert response.status_code == 422
    assert response.json()["detail"] == (
        "column 'score' is not used: name the prediction column 'prediction'; or, if 'score' "
        f"is a feature, declare model {model!r}'s features first (PATCH /api/v1/models/{model})"
    )
    assert api.get(f"/api/v1/models/{model}").json()["features"] == []  # nothing inferred


def test_a_file_with_nothing_but_reserved_columns_has_no_features(api: TestClient) -> None:
    model = create_model(api)["name"]
    response = upload(api, model, csv(["prediction,label", "0.8,1"]))
    assert response.status_code == 422
    assert response.json()["detail"] == (
        f"there are no features in the file (found: prediction, label), and model {model!r} "
        "declares none"
    )


def test_records_say_what_they_used_and_ignored(api: TestClient) -> None:
    model = create_model(api, features=FEATURES)["name"]
    path = f"/api/v1/models/{model}/baselines"
    response = api.post(path, json={"name": "r", "records": [
        {"features": {"age": 31, "state": "CA", "colour": "red"}, "label": 1, "weight": 2},
        {"features": {"age": 40, "state": "NY"}, "label": 0},
    ]})  # fmt: skip
    assert response.status_code == 201, response.text
    assert response.json()["columns"] == {
        "features": ["age", "state"], "prediction": None, "label": "label",
        "ignored": ["weight", "colour"],
    }  # fmt: skip
    assert response.json()["warnings"] == [
        "key 'weight' is not used (a baseline record has 'features', 'prediction' and 'label')",
        f"key 'colour' is not a feature of model {model!r} (its features: age, state): ignored",
        "no record has a 'prediction': runs against this baseline do not test the prediction's "
        "drift",
    ]
    misnamed = api.post(path, json={"name": "r", "records": [
        {"features": {"age": 31, "state": "CA"}, "y_pred": 0.3}]})  # fmt: skip
    assert misnamed.status_code == 422
    assert misnamed.json()["detail"].startswith(
        "key 'y_pred' is not used: name the prediction key 'prediction'"
    )
    empty = api.post(path, json={"name": "r", "records": []})
    assert empty.status_code == 422
    assert "records: the baseline has no records" in empty.json()["detail"]


def test_a_baseline_warns_of_settings_its_data_cannot_take(api: TestClient) -> None:
    drift = {"per_feature": {"state": {"stattest": "fisher_exact"}}}
    model = create_model(api, features=FEATURES, drift=drift)["name"]
    response = upload(api, model, csv([
        "age,state,prediction", "31,CA,0.2", "40,NY,0.7", "52,TX,0.1", "47,,0.4"]))  # fmt: skip
    assert response.status_code == 201, response.text
    assert response.json()["warnings"] == [
        "feature 'state': 'fisher_exact' compares at most 2 categories, and this baseline holds "
        "3: its drift cannot be tested (choose another test in the model's drift settings)"
    ]
    empty = upload(api, model, csv(["age,state,prediction", "31,,0.2", "40,,0.7"]))
    assert empty.status_code == 201, empty.text
    assert empty.json()["warnings"] == ["feature 'state': every value is missing in this baseline"]


@pytest.mark.slow
def test_the_baselines_command_prints_what_it_used(
    api: TestClient, database_url: str, tmp_path: Any
) -> None:
    model = create_model(api, features=FEATURES)["name"]
    path = tmp_path / "train.csv"
    path.write_bytes(csv(["age,state,prediction,extra", "31,CA,0.2,x", "40,NY,0.7,y"]))
    command = [sys.executable, "-m", "driftwatch.cli", "baselines", "create", model,
               "--name", "small", "--file", str(path)]  # fmt: skip
    env = {**os.environ, "DRIFTWATCH_DATABASE_URL": database_url}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120,
                          check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[1:] == [
        "  features: age, state",
        "  prediction: prediction",
        "  label: (none)",
        "  ignored: extra",
    ]
    assert (
        f"warning: column 'extra' is not a feature of model {model!r} (its features: age, "
        "state): ignored"
    ) in done.stderr
    path.write_bytes(csv(["age,state,pred", "31,CA,0.2"]))
    refused = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120,
                             check=False)  # fmt: skip
    assert refused.returncode == 1
    assert "column 'pred' is not used: name the prediction column 'prediction'" in refused.stderr
    path.write_bytes(b"")
    empty = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120,
                           check=False)  # fmt: skip
    assert empty.returncode == 1
    assert "driftwatch baselines create: file: empty" in empty.stderr


# -- deleting baselines --------------------------------------------------------------------------


def window_run(api: TestClient, model: str, baseline: int | None = None) -> Any:
    body: dict[str, Any] = {"start": T0.isoformat(), "end": (T0 + timedelta(hours=1)).isoformat()}
    if baseline is not None:
        body["baseline"] = baseline
    response = api.post(f"/api/v1/models/{model}/runs", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def model_with_two_baselines(api: TestClient) -> tuple[str, int, int]:
    """A model with traffic in the hour from T0, and baselines old (inactive) and new (active)."""
    model = create_model(api, features=FEATURES)["name"]
    ids = []
    for name in ("old", "new"):
        created = api.post(f"/api/v1/models/{model}/baselines", json={"name": name, "records": [
            {"features": {"age": 30 + i, "state": "CA"}, "prediction": i / 10}
            for i in range(10)]})  # fmt: skip
        assert created.status_code == 201, created.text
        ids.append(created.json()["id"])
    logged = api.post(
        f"/api/v1/models/{model}/predictions",
        json={
            "records": [
                {
                    "prediction_id": f"p-{i}",
                    "timestamp": (T0 + timedelta(minutes=i)).isoformat(),
                    "prediction": 0.5,
                    "features": {"age": 35 + i, "state": "NY"},
                }
                for i in range(8)
            ]
        },
    )
    assert logged.status_code == 200, logged.text
    return model, ids[0], ids[1]


def test_a_baseline_is_deleted_and_its_runs_stay(
    api: TestClient, engine: Engine, settings: Settings
) -> None:
    model, old, new = model_with_two_baselines(api)
    path = f"/api/v1/models/{model}/baselines"
    run = window_run(api, model, baseline=old)
    assert run["baseline"] == {"id": old, "name": "old"}

    deleted = api.delete(f"{path}/{old}")
    assert deleted.status_code == 204, deleted.text
    assert deleted.content == b""
    assert [b["id"] for b in api.get(path).json()] == [new]
    # the run computed against it stays, and still names it
    kept = api.get(f"/api/v1/models/{model}/runs/{run['id']}").json()
    assert kept["baseline"] == {"id": old, "name": "old"}
    assert kept["features"] == run["features"]
    listed = api.get(f"/api/v1/models/{model}/runs").json()
    assert [(r["id"], r["baseline"]) for r in listed] == [(run["id"], {"id": old, "name": "old"})]
    # its prepared data is gone
    with Session(engine) as session:
        left = session.scalar(
            select(func.count())
            .select_from(BaselineColumn)
            .where(BaselineColumn.baseline_id == old)
        )
    assert left == 0
    # and it can no longer be used, activated or deleted again
    gone = f"model {model!r} has no baseline {old}"
    hour = {"start": T0.isoformat(), "end": (T0 + timedelta(hours=1)).isoformat()}
    for response in (
        api.delete(f"{path}/{old}"),
        api.put(f"{path}/{old}/activate"),
        api.post(f"/api/v1/models/{model}/runs", json={**hour, "baseline": old}),
    ):
        assert response.status_code == 404, response.text
        assert response.json()["detail"] == gone
    assert window_run(api, model)["baseline"] == {"id": new, "name": "new"}
    # Evidently's report of the kept run cannot be made: it says why
    with TestClient(create_app(settings, engine)) as browser:
        signed_in = sign_in(browser, follow_redirects=False)
        assert signed_in.status_code == 303
        report = browser.get(f"/models/{model}/evidently", params={"run": run["id"]})
    assert report.status_code == 404
    assert f"baseline {old} (&#39;old&#39;) was deleted: its data is gone" in report.text


def test_the_active_baseline_cannot_be_deleted(api: TestClient) -> None:
    model, old, new = model_with_two_baselines(api)
    path = f"/api/v1/models/{model}/baselines"
    refused = api.delete(f"{path}/{new}")
    assert refused.status_code == 409
    assert refused.json()["detail"] == (
        f"baseline {new} ('new') is model {model!r}'s active baseline: its runs compare with "
        f"it. Activate another one first (PUT /api/v1/models/{model}/baselines/ID/activate), "
        "or create a new one, then delete this one"
    )
    assert [b["id"] for b in api.get(path).json()] == [new, old]
    assert api.put(f"{path}/{old}/activate").status_code == 200
    assert api.delete(f"{path}/{new}").status_code == 204
    assert api.delete(f"{path}/{old}").status_code == 409  # now the active one
    assert api.delete(f"{path}/999999").status_code == 404
    assert api.delete(f"/api/v1/models/no-such-model/baselines/{old}").status_code == 404


def test_the_openapi_document_has_the_delete_and_its_answers(api: TestClient) -> None:
    paths = api.get("/openapi.json").json()["paths"]
    operation = paths["/api/v1/models/{name}/baselines/{baseline_id}"]["delete"]
    assert {"204", "404", "409"} <= set(operation["responses"])
    assert "content" not in operation["responses"]["204"]
    assert "active" in operation["responses"]["409"]["description"]


@contextmanager
def scheduled_model(
    own_database: str, *, windows: int
) -> Iterator[tuple[Scheduler, TestClient, Engine, str, datetime]]:
    """A scheduler, the app and a model with a baseline and ``windows`` closed windows of
    traffic, all queued (none computed), in a database of their own; the model's name and its
    first window's start."""
    settings = Settings(database_url=own_database, admin_key=ADMIN_KEY)  # type: ignore[arg-type]
    engine = db.get_engine(own_database)
    ticker = Scheduler(engine, settings.model_copy(update={"window_grace_seconds": 0.0}),
                       owner="test")  # fmt: skip
    with TestClient(create_app(settings, engine),
                    headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as api:  # fmt: skip
        history = model_with_history(api, windows=windows)
        with Session(engine) as session:
            model_id = session.scalars(
                select(MonitoredModel.id).where(MonitoredModel.name == history["name"])
            ).one()
        ticker.plan(model_id, datetime.now(UTC))
        yield ticker, api, engine, history["name"], history["first"]


def only_baseline(api: TestClient, name: str) -> int:
    """The id of the model's (first, only) baseline."""
    return int(api.get(f"/api/v1/models/{name}/baselines").json()[0]["id"])


def test_the_scheduler_keeps_runs_of_a_deleted_baseline_and_moves_its_queue(
    own_database: str,
) -> None:
    with scheduled_model(own_database, windows=3) as (ticker, api, engine, name, start):
        path, first = f"/api/v1/models/{name}/baselines", only_baseline(api, name)
        model_id = runs_of(engine, name)[0].model_id
        computed = window_run_at(api, name, start, start + timedelta(minutes=1))
        second = post(api, path, {"name": "second", "records": baseline_records(
            frame(200, seed=30))}, 201)["id"]  # fmt: skip
        assert api.delete(f"{path}/{first}").status_code == 204
        runs = runs_of(engine, name)
        # the computed window keeps its run; the queued ones move to the active baseline
        assert (runs[0].id, runs[0].baseline_id, runs[0].status) == (computed, first, "done")
        assert {(r.baseline_id, r.status) for r in runs[1:]} == {(second, "pending")}
        ticker.work(deadline=time.monotonic() + 60)
        assert {(r.baseline_id, r.status, r.error) for r in runs_of(engine, name)[1:]} == {
            (second, "done", None)}  # fmt: skip
        # late labels for the kept window do not requeue it against data that is gone
        post(
            api,
            f"/api/v1/models/{name}/ground-truth",
            {"records": [{"prediction_id": f"h-{i}", "label": i % 2} for i in range(5)]},
        )
        ticker.plan(model_id, datetime.now(UTC))
        assert runs_of(engine, name)[0].status == "done"
        with Session(engine) as session:  # and were it computed again, it would stay as it was
            run = session.get(Run, computed)
            model = session.get(MonitoredModel, model_id)
            assert run is not None
            assert model is not None
            with pytest.raises(service.BaselineDeleted, match=f"baseline {first} .* deleted"):
                service.compute_run(session, model=model, run=run, alerting=AlertingContext())
        ticker.tick()
        kept = runs_of(engine, name)[0]
        assert (kept.id, kept.status, kept.computations, kept.labeled_rows, kept.error) == (
            computed, "done", 1, 0, None)  # fmt: skip
        assert kept.result is not None


def window_run_at(api: TestClient, model: str, start: datetime, end: datetime) -> int:
    run = post(api, f"/api/v1/models/{model}/runs",
               {"start": start.isoformat(), "end": end.isoformat()})  # fmt: skip
    assert run["status"] == "done"
    return int(run["id"])


def test_a_window_claimed_while_its_baseline_is_deleted_is_computed_against_the_active_one(
    own_database: str,
) -> None:
    with scheduled_model(own_database, windows=2) as (ticker, api, engine, name, start):
        path, first = f"/api/v1/models/{name}/baselines", only_baseline(api, name)
        second = post(api, path, {"name": "second", "records": baseline_records(
            frame(200, seed=30))}, 201)["id"]  # fmt: skip
        # the active baseline has a run of the first window already, none of the second
        on_second = window_run_at(api, name, start, start + timedelta(minutes=1))
        claimed = [ticker._claim(), ticker._claim()]  # the scheduler is on both windows
        assert None not in claimed
        assert api.delete(f"{path}/{first}").status_code == 204
        for run_id in claimed:
            assert run_id is not None
            ticker._compute(run_id)
        runs = runs_of(engine, name)
        assert [(r.id, r.baseline_id, r.window_start, r.status, r.error) for r in runs] == [
            (on_second, second, start, "done", None),
            (claimed[1], second, start + timedelta(minutes=1), "done", None),
        ]
        assert runs[1].computations == 1
        assert runs[1].rows == 20
        assert ticker.work(deadline=time.monotonic() + 30) == 0  # nothing left to retry
