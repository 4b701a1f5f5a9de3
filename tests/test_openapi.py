"""The OpenAPI document tells the errors as they are: one body (``ErrorOut``) for every error
status, on every operation that answers it. (``tests/test_hostile_input.py`` checks generated
requests against it; here, the answers a fuzzer with an admin key never sees.)"""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from driftwatch.app import create_app
from driftwatch.config import Settings
from driftwatch.errors import ErrorOut
from driftwatch.openapi import OWN_ERRORS
from tests.conftest import ADMIN_KEY, create_model
from tests.test_auth import as_key, make_key


def _document(api: TestClient) -> dict[str, Any]:
    document: dict[str, Any] = api.get("/openapi.json").json()
    return document


def test_every_error_status_of_every_operation_is_the_one_error_body(api: TestClient) -> None:
    document = _document(api)
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas  # FastAPI's own 422 body, which we never send
    assert schemas["ErrorOut"]["required"] == ["detail"]
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            errors = {code: answer for code, answer in operation["responses"].items()
                      if int(code) >= 400}  # fmt: skip
            assert "422" in errors, (method, path)  # a NUL in any URL is refused
            for code, answer in errors.items():
                assert answer["content"]["application/json"]["schema"] == {
                    "$ref": "#/components/schemas/ErrorOut"
                }, (method, path, code)
                assert answer["description"], (method, path, code)
    for method, path in OWN_ERRORS:  # the list of each operation's own errors is not stale
        assert method.lower() in document["paths"].get(path, {}), (method, path)


def _documented(document: dict[str, Any], method: str, path: str, response: Any) -> None:
    """The answer's status is documented for the operation, and its body is an ``ErrorOut``."""
    assert str(response.status_code) in document["paths"][path][method]["responses"], (
        method, path, response.status_code,
    )  # fmt: skip
    body = response.json()
    assert set(body) <= {"detail", "errors"}, body
    assert ErrorOut.model_validate(body).detail


def test_real_error_answers_are_documented_for_their_operations(
    api: TestClient, settings: Settings, engine: Engine
) -> None:
    document = _document(api)
    model = create_model(api, features=[{"name": "x", "kind": "numerical"}])["name"]
    models, one = "/api/v1/models", "/api/v1/models/{name}"
    predictions = "/api/v1/models/{name}/predictions"
    no_key = api.get(f"/api/v1/models/{model}", headers={"Authorization": ""})
    assert no_key.status_code == 401
    assert no_key.headers["WWW-Authenticate"] == "Bearer"
    _documented(document, "get", one, no_key)
    reader = as_key(make_key(engine, "read"))
    _documented(document, "post", models, api.post(models, json={}, headers=reader))  # 403
    _documented(document, "get", one, api.get(f"{models}/no-such-model"))  # 404
    taken = api.post(models, json={"name": model, "task": "regression"})
    assert taken.status_code == 409
    _documented(document, "post", models, taken)
    kind = api.patch(f"{models}/{model}", json={"features": [{"name": "x", "kind": "categorical"}]})
    assert kind.status_code == 400
    _documented(document, "patch", one, kind)
    shape = api.post(models, json={"name": 3})
    assert shape.status_code == 422
    [problem, *_] = shape.json()["errors"]
    assert (problem["loc"], problem["type"]) == (["body", "name"], "string_type")
    _documented(document, "post", models, shape)
    _documented(document, "get", "/healthz", api.get("/healthz?x=%00"))  # 422 before routing
    small = settings.model_copy(update={"max_body_bytes": 100, "ingest_rate_limit": 1.0})
    with TestClient(create_app(small, engine), headers=as_key(ADMIN_KEY)) as limited:
        path = f"{models}/{model}/predictions"
        big = limited.post(path, json={"records": [{"features": {"x": 1}, "prediction": 1}] * 9})
        assert big.status_code == 413
        _documented(document, "post", predictions, big)
        record = {"records": [{"features": {"x": 1}, "prediction": 1}] * 2}
        answers = [limited.post(path, json=record) for _ in range(3)]
        over = next(a for a in answers if a.status_code == 429)
        assert int(over.headers["Retry-After"]) >= 1
        _documented(document, "post", predictions, over)
