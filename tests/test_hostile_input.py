"""Hostile input: schemathesis generates requests from ``/openapi.json`` (a bounded number per
operation): no answer is a 5xx, and every answer matches its documented schema. Plus the
shapes a fuzzer rarely finds: huge, deeply nested and non-finite bodies."""

from __future__ import annotations

import os
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import Engine

from driftwatch.app import create_app
from driftwatch.config import Settings
from tests.conftest import ADMIN_KEY, create_model


@pytest.fixture
def api_schema(settings: Settings, engine: Engine) -> Any:
    app = create_app(settings, engine)
    with TestClient(app, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as client:
        create_model(client, name="fuzzed", features=[{"name": "x", "kind": "numerical"}]) if (
            client.get("/api/v1/models/fuzzed").status_code == 404) else None  # fmt: skip
    return schemathesis.openapi.from_asgi("/openapi.json", app)


# every answer, errors included: its status documented for the operation, its body and headers
# as documented for that status
CONFORMANCE = [status_code_conformance, content_type_conformance, response_schema_conformance,
               response_headers_conformance]  # fmt: skip
EXAMPLES = int(os.environ.get("DRIFTWATCH_FUZZ_EXAMPLES", "25"))  # per operation


@pytest.mark.slow
def test_no_request_makes_a_5xx_or_an_undocumented_answer(api_schema: Any) -> None:
    """Every operation of the OpenAPI document, 25 generated requests each (valid and not),
    sent as the admin: no 5xx, and every answer, errors included, is one the document gives
    for that operation (status, content type, headers and body). Every operation that breaks
    this is reported."""
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 20
    failures = []
    for operation in operations:

        @settings(max_examples=EXAMPLES, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))  # fmt: skip
        @given(case=operation.as_strategy())
        def check(case: Any) -> None:
            if "name" in (case.path_parameters or {}):
                case.path_parameters["name"] = "fuzzed"  # also reach past "no such model"
            response = case.call(headers={"Authorization": f"Bearer {ADMIN_KEY}"})
            assert response.status_code < 500, (
                f"{case.method} {case.formatted_path}: {response.status_code} {response.text}"
            )
            case.validate_response(response, checks=CONFORMANCE)

        try:
            check()
        except Exception as error:  # every failing operation is reported, not only the first
            failures.append(f"{operation.method.upper()} {operation.path}: {error}")
    assert not failures, "\n\n".join(failures)


def test_huge_deep_and_non_finite_bodies_get_clear_answers(api: TestClient) -> None:
    model = create_model(api, features=[{"name": "x", "kind": "numerical"}])["name"]
    path = f"/api/v1/models/{model}/predictions"
    deep = "[" * 100_000 + "]" * 100_000
    response = api.post(path, content=deep, headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert "not valid JSON" in response.json()["detail"]
    too_big = b'{"records": [' + b"1," * 40_000_000 + b"1]}"
    response = api.post(path, content=too_big, headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    for value, message in (("NaN", "not valid JSON"), ("Infinity", "not valid JSON"),
                           ("1e400", "infinity")):  # fmt: skip
        body = ('{"records": [{"prediction_id": "p", "features": {"x": ' + value
                + '}, "prediction": 1}]}')  # fmt: skip
        response = api.post(path, content=body, headers={"Content-Type": "application/json"})
        text = response.text
        assert response.status_code in (200, 422), text
        assert message in text, text


def test_nul_characters_are_refused_per_record_and_kept_with_the_rejection(
    api: TestClient,
) -> None:
    model = create_model(api, features=[{"name": "x", "kind": "numerical"},
                                        {"name": "c", "kind": "categorical"}])["name"]  # fmt: skip
    records = [
        {"prediction_id": "ok", "features": {"x": 1, "c": "a"}, "prediction": 1},
        {"prediction_id": "nul\x00id", "features": {"x": 1, "c": "a"}, "prediction": 1},
        {"prediction_id": "p2", "features": {"x": 1, "c": "a\x00b"}, "prediction": 1},
        {"prediction_id": "p3", "features": {"x": 1}, "prediction": "cl\x00ass"},
        {"prediction_id": "p4", "features": {"x": 1}, "prediction": 1, "model_version": "v\x00"},
    ]
    result = api.post(f"/api/v1/models/{model}/predictions", json={"records": records}).json()
    assert result["accepted"] == 1
    assert [r["index"] for r in result["rejected"]] == [1, 2, 3, 4]
    assert all("NUL" in r["error"] for r in result["rejected"])
    labels = api.post(
        f"/api/v1/models/{model}/ground-truth",
        json={
            "records": [
                {"prediction_id": "ok", "label": "x\x00"},
                {"prediction_id": "\x00", "label": 1},
            ]
        },
    )
    assert labels.status_code == 200
    assert [r["index"] for r in labels.json()["rejected"]] == [0, 1]
    kept = api.get(f"/api/v1/models/{model}/rejected").json()
    assert len(kept) == 6
    assert any(r["prediction_id"] == "nul\\x00id" for r in kept)


def test_nul_characters_in_urls_and_bodies_are_refused(api: TestClient) -> None:
    for url in ("/api/v1/alerts?rule=%00", "/api/v1/models/a%00b", "/models/x%00"):
        response = api.get(url)
        assert response.status_code == 422, url
        assert "NUL" in response.json()["detail"]
    silence = api.post("/api/v1/silences", json={"model": "m\x00", "rule": "*",
                                                 "until": "2099-01-01T00:00:00Z"})  # fmt: skip
    assert silence.status_code == 422
    assert "NUL" in silence.json()["detail"]
