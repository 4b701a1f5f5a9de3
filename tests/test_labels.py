"""Labels (and predictions) normalised once, at ingest, to the model's task and classes; accuracy
computed on what compares, checked against scikit-learn on the same data."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sklearn import metrics
from sqlalchemy import Engine, event, select
from sqlalchemy.orm import Session

import driftwatch
from driftwatch.core.retention import KEEP_EVERYTHING
from driftwatch.core.specs import FeatureSpec
from driftwatch.ingest import repository
from driftwatch.ingest import service as ingest
from driftwatch.ingest.validation import (
    ModelClasses,
    RecordError,
    columns_from_records,
    label_value,
    prediction_value,
    validate_columns,
)
from driftwatch.models import GroundTruth, MonitoredModel
from tests.conftest import ADMIN_KEY, LiveServer, create_model

FEATURES = [{"name": "age", "kind": "numerical"}]
T0 = datetime(2026, 11, 20, 10, tzinfo=UTC)
WINDOW = {"start": T0.isoformat(), "end": (T0 + timedelta(hours=1)).isoformat()}


def post(api: TestClient, path: str, body: dict[str, Any], status: int = 200) -> Any:
    response = api.post(path, json=body)
    assert response.status_code == status, response.text
    return response.json()


def model_with_predictions(
    api: TestClient, task: str, predictions: list[Any], *, baseline: bool = True
) -> str:
    """A model with one prediction a second from T0 (ids p-0, p-1, ...) and a baseline of them."""
    model = create_model(api, features=FEATURES, task=task)["name"]
    records = [
        {"prediction_id": f"p-{i}", "timestamp": (T0 + timedelta(seconds=i)).isoformat(),
         "features": {"age": 20.0 + i}, "prediction": prediction}
        for i, prediction in enumerate(predictions)
    ]  # fmt: skip
    result = post(api, f"/api/v1/models/{model}/predictions", {"records": records})
    assert result["rejected"] == [], result["rejected"]
    if baseline:
        features = [{"features": r["features"]} for r in records]
        post(api, f"/api/v1/models/{model}/baselines", {"name": "b", "records": features}, 201)
    return model


def send_labels(api: TestClient, model: str, labels: list[Any]) -> dict[str, Any]:
    records = [{"prediction_id": f"p-{i}", "label": label} for i, label in enumerate(labels)]
    result: dict[str, Any] = post(api, f"/api/v1/models/{model}/ground-truth", {"records": records})
    return result


def run(api: TestClient, model: str) -> dict[str, Any]:
    result: dict[str, Any] = post(api, f"/api/v1/models/{model}/runs", WINDOW)
    return result


def binary_metrics(y_true: list[int], scores: list[float]) -> dict[str, float]:
    y_pred = [int(s >= 0.5) for s in scores]
    return {
        "accuracy": metrics.accuracy_score(y_true, y_pred),
        "precision": metrics.precision_score(y_true, y_pred),
        "recall": metrics.recall_score(y_true, y_pred),
        "f1": metrics.f1_score(y_true, y_pred),
        "roc_auc": metrics.roc_auc_score(y_true, scores),
        "log_loss": metrics.log_loss(y_true, scores),
    }


# twenty scores, each on the right side of 0.5 for its label
TRUTH = [0, 1] * 10
SCORES = [round(0.05 + 0.02 * i, 2) if t == 0 else round(0.95 - 0.02 * i, 2)
          for i, t in enumerate(TRUTH)]  # fmt: skip


def test_text_labels_score_twenty_correct_predictions_as_correct(api: TestClient) -> None:
    model = model_with_predictions(api, "binary_classification", SCORES)
    result = send_labels(api, model, [str(t) for t in TRUTH])
    assert result == {"accepted": 20, "duplicates": 0, "rejected": []}
    accuracy = run(api, model)["accuracy"]
    assert accuracy == pytest.approx(binary_metrics(TRUTH, SCORES))
    assert accuracy["accuracy"] == 1.0
    assert {"roc_auc", "log_loss"} <= set(accuracy)


def test_a_stray_label_is_rejected_naming_it_and_the_rest_scores_right(api: TestClient) -> None:
    model = model_with_predictions(api, "binary_classification", SCORES)
    labels: list[Any] = [str(t) for t in TRUTH]
    labels[7] = "maybe"
    result = send_labels(api, model, labels)
    error = "label: expected 0 or 1 (or true/false) for a binary classification model, got 'maybe'"
    assert result == {
        "accepted": 19, "duplicates": 0,
        "rejected": [{"index": 7, "prediction_id": "p-7", "error": error}],
    }  # fmt: skip
    kept = api.get(f"/api/v1/models/{model}/rejected").json()
    assert [(r["kind"], r["prediction_id"], r["error"]) for r in kept] == [
        ("ground_truth", "p-7", error)
    ]
    others = [i for i in range(20) if i != 7]
    finished = run(api, model)
    assert finished["labeled_rows"] == 19
    assert finished["accuracy"] == pytest.approx(
        binary_metrics([TRUTH[i] for i in others], [SCORES[i] for i in others])
    )


def test_every_spelling_of_a_binary_label_is_0_or_1(api: TestClient) -> None:
    spellings = {0: [0, 0.0, False, "0", "false", "FALSE", "0.0", " 0 "],
                 1: [1, 1.0, True, "1", "true", "True", "1.0", "1 "]}  # fmt: skip
    truth = [t for t in (0, 1) for _ in spellings[t]]
    sent = [label for t in (0, 1) for label in spellings[t]]
    scores = [0.2 if t == 0 else 0.7 for t in truth]
    scores[0], scores[-1] = 0.6, 0.4  # two wrong answers
    model = model_with_predictions(api, "binary_classification", scores)
    assert send_labels(api, model, sent)["rejected"] == []
    assert run(api, model)["accuracy"] == pytest.approx(binary_metrics(truth, scores))

    refused = send_labels(api, model, ["yes", 2, 0.5, "1_0", "nan"])["rejected"]
    assert [r["error"].rsplit("got ", 1)[1] for r in refused] == [
        "'yes'", "2", "0.5", "'1_0'", "'nan'"]  # fmt: skip
    assert all("expected 0 or 1 (or true/false)" in r["error"] for r in refused)


def test_a_prediction_given_as_text_is_a_score(api: TestClient) -> None:
    model = model_with_predictions(api, "binary_classification", [str(s) for s in SCORES])
    send_labels(api, model, TRUTH)
    assert run(api, model)["accuracy"] == pytest.approx(binary_metrics(TRUTH, SCORES))
    refused = post(api, f"/api/v1/models/{model}/predictions", {"records": [
        {"prediction_id": "name", "features": {"age": 1.0}, "prediction": "spam"},
        {"prediction_id": "word", "features": {"age": 1.0}, "prediction": "true"},
    ]})  # fmt: skip
    assert refused["accepted"] == 1
    assert refused["rejected"] == [{
        "index": 0, "prediction_id": "name",
        "error": "prediction: this binary classification model's predictions are scores (or "
                 "0/1), not class names; got 'spam'",
    }]  # fmt: skip


def test_a_binary_model_that_predicts_class_names_has_those_classes(api: TestClient) -> None:
    predicted = ["spam", "ham", "ham", "spam", "ham", "ham"]
    truth = ["spam", "ham", "spam", "spam", "ham", "ham"]
    model = model_with_predictions(api, "binary_classification", predicted)
    labels: list[Any] = [*truth, "maybe", 1]
    records = [{"prediction_id": f"p-{i}", "label": label} for i, label in enumerate(labels)]
    result = post(api, f"/api/v1/models/{model}/ground-truth", {"records": records})
    expected = "(the classes this binary classification model predicts)"
    assert result["accepted"] == 6
    assert [r["error"] for r in result["rejected"]] == [
        f"label: expected 'ham' or 'spam' {expected}, got 'maybe'",
        f"label: expected 'ham' or 'spam' {expected}, got 1",
    ]
    assert run(api, model)["accuracy"] == pytest.approx({
        "accuracy": metrics.accuracy_score(truth, predicted),
        "precision": metrics.precision_score(truth, predicted, average="macro"),
        "recall": metrics.recall_score(truth, predicted, average="macro"),
        "f1": metrics.f1_score(truth, predicted, average="macro"),
    })  # fmt: skip
    refused = post(api, f"/api/v1/models/{model}/predictions", {"records": [
        {"prediction_id": "score", "features": {"age": 1.0}, "prediction": 0.83},
        {"prediction_id": "third", "features": {"age": 1.0}, "prediction": "eggs"},
        {"prediction_id": "fine", "features": {"age": 1.0}, "prediction": "ham"},
    ]})  # fmt: skip
    assert refused["accepted"] == 1
    assert [r["error"] for r in refused["rejected"]] == [
        f"prediction: expected 'ham' or 'spam' {expected}, got 0.83",
        "prediction: a binary classification model has two classes, here 'ham' or 'spam'; "
        "got 'eggs'",
    ]


def test_the_classes_of_a_model_logging_now_are_those_of_its_latest_predictions(
    api: TestClient,
) -> None:
    model = create_model(api, features=FEATURES)["name"]
    now = datetime.now(UTC)
    for day, name in ((3, "ham"), (0, "spam"), (0, "ham")):  # older days, then today's
        records = [{"prediction_id": f"{day}-{name}", "features": {"age": 1.0}, "prediction": name,
                    "timestamp": (now - timedelta(days=day)).isoformat()}]  # fmt: skip
        assert post(api, f"/api/v1/models/{model}/predictions", {"records": records})["accepted"]
    result = send_labels(api, model, ["spam", "ham", "maybe", 0])
    assert result["accepted"] == 2
    assert [r["error"].split(" (")[0] for r in result["rejected"]] == [
        "label: expected 'ham' or 'spam'", "label: expected 'ham' or 'spam'"]  # fmt: skip


def test_a_label_before_any_prediction_is_kept_and_compared_when_it_can_be(
    api: TestClient,
) -> None:
    model = create_model(api, features=FEATURES)["name"]
    early = send_labels(api, model, [*[str(t) for t in TRUTH[:19]], "maybe"])
    assert early["accepted"] == 20  # nothing tells yet whether the model predicts names
    records = [
        {"prediction_id": f"p-{i}", "timestamp": (T0 + timedelta(seconds=i)).isoformat(),
         "features": {"age": 20.0 + i}, "prediction": s}
        for i, s in enumerate(SCORES)
    ]  # fmt: skip
    post(api, f"/api/v1/models/{model}/predictions", {"records": records})
    post(api, f"/api/v1/models/{model}/baselines",
         {"name": "b", "records": [{"features": r["features"]} for r in records]}, 201)  # fmt: skip
    finished = run(api, model)
    assert finished["labeled_rows"] == 20
    # 'maybe' cannot be compared with a score: left out, not counted as a wrong answer
    assert finished["accuracy"] == pytest.approx(binary_metrics(TRUTH[:19], SCORES[:19]))


@contextmanager
def classes_read(engine: Engine) -> Iterator[list[str]]:
    """The statements that read a model's classes (``model_classes``) while in the block."""
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "ORDER BY prediction_chunks.created_at DESC" in statement:
            statements.append(statement)

    event.listen(engine, "before_cursor_execute", seen)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", seen)


def test_a_batch_that_fits_the_classes_read_a_moment_ago_reads_them_no_more(
    api: TestClient, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ingest.CLASSES, "seconds", 600.0)  # this test, however slow, within it
    model = model_with_predictions(api, "binary_classification", SCORES[:2], baseline=False)
    path = f"/api/v1/models/{model}/predictions"
    more = [{"prediction_id": f"m-{i}", "features": {"age": 1.0}, "prediction": 0.3}
            for i in range(3)]  # fmt: skip
    assert post(api, path, {"records": more[:1]})["accepted"] == 1  # its classes read, kept
    with classes_read(engine) as statements:
        assert post(api, path, {"records": more[1:]})["accepted"] == 2
        assert send_labels(api, model, [1, "0"])["accepted"] == 2
        assert statements == []
        # a batch that does not fit them (a class name for a model of scores) reads them again
        named = post(api, path, {"records": [
            {"prediction_id": "n", "features": {"age": 1.0}, "prediction": "spam"}]})  # fmt: skip
        assert named["accepted"] == 0
        assert statements != []


def test_classes_another_process_stored_count_for_a_batch_they_refuse(
    api: TestClient, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ingest.CLASSES, "seconds", 600.0)
    model = model_with_predictions(api, "binary_classification", ["ham"], baseline=False)
    path = f"/api/v1/models/{model}/predictions"
    ham = {"prediction_id": "p-1", "features": {"age": 1.0}, "prediction": "ham"}
    assert post(api, path, {"records": [ham]})["accepted"] == 1  # this process keeps {'ham'}
    # another process stores the model's other class, 'spam'
    spam = [{"prediction_id": "p-2", "features": {"age": 1.0}, "prediction": "spam"}]
    valid = validate_columns(
        columns_from_records(spam), [FeatureSpec("age", "numerical")],
        task="binary_classification", received_at=datetime.now(UTC),
    )  # fmt: skip
    assert valid.rejected == []
    with Session(engine) as session, session.begin():
        repository.insert_predictions(session, model_id=_model_id(engine, model),
                                      columns=valid.columns, retention=KEEP_EVERYTHING)  # fmt: skip
    labels = send_labels(api, model, ["eggs", "spam"])
    assert labels["accepted"] == 1
    assert labels["rejected"] == [{"index": 0, "prediction_id": "p-0", "error": (
        "label: expected 'ham' or 'spam' (the classes this binary classification model "
        "predicts), got 'eggs'")}]  # fmt: skip
    eggs = post(api, path, {"records": [
        {"prediction_id": "p-3", "features": {"age": 1.0}, "prediction": "eggs"}]})  # fmt: skip
    assert eggs["rejected"] == [{"index": 0, "prediction_id": "p-3", "error": (
        "prediction: a binary classification model has two classes, here 'ham' or 'spam'; "
        "got 'eggs'")}]  # fmt: skip


def _model_id(engine: Engine, name: str) -> int:
    with Session(engine) as session:
        found = session.scalar(select(MonitoredModel.id).where(MonitoredModel.name == name))
        assert found is not None
        return found


def _store_old_labels(engine: Engine, model: str, labels: dict[str, tuple[Any, Any]]) -> None:
    """Labels as the collector stored them before they were normalised: binary "0"/"1" kept as
    class names, a stray word, multiclass numbers as numbers."""
    rows = [(pid, value, name, T0) for pid, (value, name) in labels.items()]
    with Session(engine) as session, session.begin():
        repository.insert_ground_truth(session, model_id=_model_id(engine, model), rows=rows)


def test_labels_stored_before_normalisation_are_read_as_meant(
    api: TestClient, engine: Engine
) -> None:
    model = model_with_predictions(api, "binary_classification", SCORES)
    old = {f"p-{i}": (None, str(t)) for i, t in enumerate(TRUTH)}
    old["p-3"] = (None, "maybe")
    old["p-4"] = (0.5, None)
    _store_old_labels(engine, model, old)
    kept = [i for i in range(20) if i not in (3, 4)]
    finished = run(api, model)
    assert finished["labeled_rows"] == 20
    assert finished["accuracy"] == pytest.approx(
        binary_metrics([TRUTH[i] for i in kept], [SCORES[i] for i in kept])
    )

    nothing_compares = model_with_predictions(api, "binary_classification", SCORES[:2])
    _store_old_labels(engine, nothing_compares, {"p-0": (None, "maybe"), "p-1": (None, "no")})
    assert run(api, nothing_compares)["accuracy"] is None  # not 0.0

    multi = model_with_predictions(api, "multiclass_classification", ["1", "2", "cat"])
    _store_old_labels(engine, multi, {"p-0": (1.0, None), "p-1": (None, "2.0"),
                                      "p-2": (None, "cat")})  # fmt: skip
    assert run(api, multi)["accuracy"]["accuracy"] == 1.0


def test_multiclass_labels_1_and_text_1_agree(api: TestClient, engine: Engine) -> None:
    predicted: list[Any] = [1, "1", "2", 2.0, "cat", 3, "dog"]
    labels: list[Any] = ["1", 1, 2, "2.0", "cat", 3.0, "cat"]
    model = model_with_predictions(api, "multiclass_classification", predicted)
    assert send_labels(api, model, labels)["rejected"] == []
    with Session(engine) as session:
        stored = session.execute(
            select(GroundTruth.label_value, GroundTruth.label_class)
            .where(GroundTruth.model_id == _model_id(engine, model))
            .order_by(GroundTruth.prediction_id)
        ).all()
    assert [tuple(row) for row in stored] == [
        (None, "1"), (None, "1"), (None, "2"), (None, "2"), (None, "cat"), (None, "3"),
        (None, "cat")]  # fmt: skip
    y_true = ["1", "1", "2", "2", "cat", "3", "cat"]
    y_pred = ["1", "1", "2", "2", "cat", "3", "dog"]
    assert run(api, model)["accuracy"] == pytest.approx({
        "accuracy": metrics.accuracy_score(y_true, y_pred),
        "precision": metrics.precision_score(y_true, y_pred, average="macro", zero_division=0),
        "recall": metrics.recall_score(y_true, y_pred, average="macro", zero_division=0),
        "f1": metrics.f1_score(y_true, y_pred, average="macro", zero_division=0),
    })  # fmt: skip


def test_regression_labels_and_predictions_as_text(api: TestClient) -> None:
    truth = [3.0, 5.0, 2.0, 8.0, 4.5]
    predicted = [2.5, 5.5, 2.0, 7.0, 4.0]
    model = model_with_predictions(api, "regression", [str(p) for p in predicted])
    result = send_labels(api, model, [*["3", "5.0", " 2 ", "8e0", "4.5"], "high", True])
    assert result["accepted"] == 5
    assert [r["error"] for r in result["rejected"]] == [
        "label: a regression model's labels are numbers, got 'high'",
        "label: a regression model's labels are numbers, got True",
    ]
    assert run(api, model)["accuracy"] == pytest.approx({
        "mae": metrics.mean_absolute_error(truth, predicted),
        "rmse": float(metrics.root_mean_squared_error(truth, predicted)),
        "mape": metrics.mean_absolute_percentage_error(truth, predicted),
        "r2": metrics.r2_score(truth, predicted),
    })  # fmt: skip


def _upload(api: TestClient, model: str, name: str, content: bytes) -> Any:
    return api.post(f"/api/v1/models/{model}/baselines", data={"name": "b"},
                    files={"file": (name, content)})  # fmt: skip


def test_a_baseline_file_with_text_labels(api: TestClient) -> None:
    model = create_model(api, features=FEATURES)["name"]
    csv = b"age,prediction,label\n31,0.2,0\n40,0.9,1\n52,0.7,true\n"
    assert _upload(api, model, "train.csv", csv).status_code == 201
    frame = pd.DataFrame({"age": [31.0, 40.0], "prediction": [0.2, 0.9], "label": ["0", "1"]})
    buffer = io.BytesIO()
    frame.to_parquet(buffer)
    uploaded = _upload(api, model, "train.parquet", buffer.getvalue())
    assert uploaded.status_code == 201, uploaded.text
    assert uploaded.json()["rows"] == 2

    bad = _upload(api, model, "train.csv", b"age,prediction,label\n31,0.2,0\n40,0.9,maybe\n")
    assert bad.status_code == 422
    assert bad.json()["detail"] == (
        "1 of 2 baseline records are invalid: line 3: label: expected 0 or 1 (or true/false) "
        "for a binary classification model, got 'maybe'"
    )
    multi = create_model(api, features=FEATURES, task="multiclass_classification")["name"]
    csv = b"age,prediction,label\n31,cat,cat\n40,dog,1\n"
    assert _upload(api, multi, "train.csv", csv).status_code == 201


def test_text_labels_in_a_baseline_without_a_prediction_meet_the_model_s_scores(
    api: TestClient,
) -> None:
    model = model_with_predictions(api, "binary_classification", SCORES, baseline=False)
    path = f"/api/v1/models/{model}/baselines"
    refused = _upload(api, model, "train.csv", b"age,label\n31,0\n40,1\n52,maybe\n47,perhaps\n")
    expected = "label: expected 0 or 1 (or true/false) for a binary classification model, got"
    assert refused.status_code == 422, refused.text
    assert refused.json()["detail"] == (
        f"2 of 4 baseline records are invalid: line 4: {expected} 'maybe'; "
        f"line 5: {expected} 'perhaps'"
    )
    records = [{"features": {"age": 31}, "label": 1}, {"features": {"age": 40}, "label": "maybe"}]
    response = api.post(path, json={"name": "b", "records": records})
    assert response.status_code == 422, response.text
    assert response.json()["detail"] == (
        f"1 of 2 baseline records are invalid: record 1: {expected} 'maybe'"
    )
    assert api.get(path).json() == []  # nothing became active
    assert _upload(api, model, "train.csv", b"age,label\n31,0\n40,true\n").status_code == 201


def test_a_binary_baseline_names_at_most_two_classes(api: TestClient) -> None:
    model = create_model(api, features=FEATURES)["name"]  # no prediction tells its classes yet
    refused = _upload(api, model, "train.csv",
                      b"age,label\n31,spam\n40,ham\n52,spam\n47,eggs\n58,bacon\n")  # fmt: skip
    two = "label: a binary classification model has two classes, here 'ham' or 'spam'; got"
    assert refused.status_code == 422, refused.text
    assert refused.json()["detail"] == (
        f"2 of 5 baseline records are invalid: line 5: {two} 'eggs'; line 6: {two} 'bacon'"
    )
    assert _upload(api, model, "train.csv", b"age,label\n31,spam\n40,ham\n").status_code == 201
    # a model whose predictions name one class so far: the labels may name the other one
    named = model_with_predictions(api, "binary_classification", ["ham"], baseline=False)
    refused = _upload(api, named, "train.csv", b"age,label\n31,spam\n40,ham\n52,eggs\n")
    assert refused.status_code == 422, refused.text
    assert refused.json()["detail"] == f"1 of 3 baseline records are invalid: line 4: {two} 'eggs'"


def test_ground_truth_before_any_prediction_names_at_most_two_classes(api: TestClient) -> None:
    model = create_model(api, features=FEATURES)["name"]
    path = f"/api/v1/models/{model}/ground-truth"
    two = "label: a binary classification model has two classes, here 'ham' or 'spam'; got"
    labels = ["spam", "ham", "eggs", "spam", 1]
    records = [{"prediction_id": f"p-{i}", "label": label} for i, label in enumerate(labels)]
    first = post(api, path, {"records": records})
    assert first == {"accepted": 4, "duplicates": 0, "rejected": [
        {"index": 2, "prediction_id": "p-2", "error": f"{two} 'eggs'"}]}  # fmt: skip
    # the classes its stored labels name count for the next batch
    later = post(
        api,
        path,
        {
            "records": [
                {"prediction_id": "q-0", "label": "bacon"},
                {"prediction_id": "q-1", "label": "ham"},
            ]
        },
    )
    assert later == {"accepted": 1, "duplicates": 0, "rejected": [
        {"index": 0, "prediction_id": "q-0", "error": f"{two} 'bacon'"}]}  # fmt: skip


def test_the_sdk_sends_labels_from_a_frame_as_they_are(
    api: TestClient, live_server: LiveServer, tmp_path: Path
) -> None:
    model = model_with_predictions(api, "binary_classification", SCORES)
    frame = pd.DataFrame({"prediction_id": [f"p-{i}" for i in range(20)],
                          "label": [str(t) for t in TRUTH]})  # fmt: skip
    frame.loc[7, "label"] = "maybe"
    with driftwatch.Client(live_server.url, api_key=ADMIN_KEY, spool_dir=tmp_path) as client:
        assert client.log_ground_truths(model, frame) == 20
        assert client.flush(timeout=30)
        assert [(r.prediction_id, r.error) for r in client.rejected] == [(
            "p-7",
            "label: expected 0 or 1 (or true/false) for a binary classification model, "
            "got 'maybe'",
        )]  # fmt: skip
    others = [i for i in range(20) if i != 7]
    assert run(api, model)["accuracy"] == pytest.approx(
        binary_metrics([TRUTH[i] for i in others], [SCORES[i] for i in others])
    )


# -- the rules, value by value (pure) ---------------------------------------------------------

NAMES = ModelClasses(names=frozenset({"ham", "spam"}))
SCORED = ModelClasses(scores=True)


@pytest.mark.parametrize(
    ("value", "task", "classes", "stored"),
    [
        ("1", "binary_classification", SCORED, (1.0, None)),
        (False, "binary_classification", SCORED, (0.0, None)),
        ("TRUE", "binary_classification", SCORED, (1.0, None)),
        ("spam", "binary_classification", NAMES, (None, "spam")),
        ("spam", "binary_classification", ModelClasses(), (None, "spam")),
        ("ham", "binary_classification", ModelClasses(names=frozenset({"spam"})), (None, "ham")),
        (1, "multiclass_classification", ModelClasses(), (None, "1")),
        ("1.0", "multiclass_classification", ModelClasses(), (None, "1")),
        (2.5, "multiclass_classification", ModelClasses(), (None, "2.5")),
        ("Cat", "multiclass_classification", ModelClasses(), (None, "Cat")),
        ("3.5", "regression", ModelClasses(), (3.5, None)),
        (-2, "regression", ModelClasses(), (-2.0, None)),
    ],
)
def test_a_label_is_stored_in_the_form_of_its_task(
    value: Any, task: str, classes: ModelClasses, stored: tuple[Any, Any]
) -> None:
    assert label_value(value, task, classes) == stored


@pytest.mark.parametrize(
    ("value", "task", "classes", "error"),
    [
        ("yes", "binary_classification", SCORED, "expected 0 or 1 (or true/false)"),
        (0.7, "binary_classification", ModelClasses(), "expected 0 or 1 (or true/false)"),
        ("maybe", "binary_classification", NAMES, "expected 'ham' or 'spam'"),
        (0, "binary_classification", NAMES, "expected 'ham' or 'spam'"),
        ("inf", "regression", ModelClasses(), "labels are numbers, got 'inf'"),
        (False, "regression", ModelClasses(), "labels are numbers, got False"),
        ("", "multiclass_classification", ModelClasses(), "label: must not be empty"),
    ],
)
def test_a_label_that_cannot_be_right_is_refused(
    value: Any, task: str, classes: ModelClasses, error: str
) -> None:
    with pytest.raises(RecordError, match=error.replace("(", r"\(").replace(")", r"\)")):
        label_value(value, task, classes)


@pytest.mark.parametrize(
    ("value", "task", "stored"),
    [
        ("0.83", "binary_classification", (0.83, None)),
        ("false", "binary_classification", (0.0, None)),
        ("spam", "binary_classification", (None, "spam")),
        ("2", "multiclass_classification", (2.0, None)),
        ("true", "multiclass_classification", (None, "true")),
        (" 7.5", "regression", (7.5, None)),
    ],
)
def test_a_prediction_given_as_text(value: Any, task: str, stored: tuple[Any, Any]) -> None:
    assert prediction_value(value, task) == stored
