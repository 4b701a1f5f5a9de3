"""The OpenAPI document, with the error answers each operation really gives, all in the one
body they share (``ErrorOut``).

Most statuses follow from how an operation is reached, and are found from its route: every
operation may answer 422 (a NUL in any URL is refused before routing; a body or parameter of
the wrong shape), one that needs a key 401, 403 and 429 (its key's requests in progress at once,
``guard.RequestGuard``), one with path parameters 404, one that takes a body (POST, PUT, PATCH)
408 and 413 (a body too slow to arrive or too large, ``guard.RequestGuard``). What an
operation's own logic refuses is listed in ``OWN_ERRORS``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from driftwatch.errors import ErrorOut

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})  # the methods whose requests carry a body

# (method, path) -> statuses its own logic answers, beyond those its route implies
OWN_ERRORS: dict[tuple[str, str], tuple[int, ...]] = {
    ("POST", "/api/v1/models"): (400, 409),
    ("PATCH", "/api/v1/models/{name}"): (400,),
    ("GET", "/api/v1/alerts"): (404,),
    ("POST", "/api/v1/models/{name}/predictions"): (409,),
    ("POST", "/api/v1/models/{name}/baselines"): (409,),
    ("DELETE", "/api/v1/models/{name}/baselines/{baseline_id}"): (409,),
    ("POST", "/api/v1/models/{name}/runs"): (400, 409, 503),
    ("POST", "/api/v1/deliveries/{delivery_id}/redeliver"): (409,),
    ("GET", "/readyz"): (503,),
}

DESCRIPTIONS = {
    400: "The request cannot apply as it stands (a setting for a column of another kind, a "
    "window longer than the retention period, ...): `detail` says why",
    401: "No API key, or one that is not valid or was revoked",
    403: "The key's scope does not allow this operation",
    404: "No such model, or no such item of it, as named in the path",
    409: "In conflict with what is stored (it exists already, it is being sent, its raw data "
    "was removed by retention, ...): `detail` says what",
    408: "The body did not arrive within `DRIFTWATCH_BODY_TIMEOUT_SECONDS` of the request's start",
    413: "The body is larger than `DRIFTWATCH_MAX_BODY_BYTES`, (predictions) the batch needs "
    "more new time partitions than `DRIFTWATCH_MAX_BATCH_PARTITIONS` (send it in smaller "
    "batches: the SDK splits it), or (a baseline file) it decodes to more than "
    "`DRIFTWATCH_MAX_BASELINE_CELLS` values or `DRIFTWATCH_MAX_BASELINE_DECODED_BYTES`",
    422: "The request is not of the documented shape (its body, a parameter, or a NUL "
    "character in the URL): `detail` says what is wrong, and `errors` lists each problem of "
    "a body or parameter with its location",
    429: "Over this key's ingest rate (`DRIFTWATCH_INGEST_RATE_LIMIT`), or this key has "
    "`DRIFTWATCH_MAX_REQUESTS_PER_KEY` requests in progress already: send again after "
    "`Retry-After` seconds",
    503: "Not available now: the database is busy (SQLite's write lock held past its busy "
    "timeout) or cannot be reached, or another process is computing the window: ask again "
    "after `Retry-After` seconds",
}

ERROR_OUT = "#/components/schemas/ErrorOut"
_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"description": "`Bearer`", "schema": {"type": "string"}}},
    429: {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}},
    503: {"Retry-After": {"description": "seconds to wait, when waiting helps",
                          "schema": {"type": "integer"}}},
}  # fmt: skip


def _needs_key(dependant: Dependant) -> bool:
    """Whether the operation depends on ``deps.require`` (which marks its checks)."""
    return any(
        hasattr(dependency.call, "required_scope") or _needs_key(dependency)
        for dependency in dependant.dependencies
    )


def error_statuses(route: APIRoute, method: str, path: str) -> list[int]:
    statuses = {422, *OWN_ERRORS.get((method, path), ())}
    if _needs_key(route.dependant):  # the key is looked up in the database: 503 when it is busy
        statuses |= {401, 403, 429, 503}
    if method in BODY_METHODS:
        statuses |= {408, 413}
    if route.dependant.path_params:
        statuses.add(404)
    return sorted(statuses)


def api_routes(routes: Sequence[BaseRoute], prefix: str = "") -> Iterator[tuple[str, APIRoute]]:
    """Every operation's full path and route, those of included routers too (FastAPI keeps
    an included router whole, behind an ``original_router``)."""
    for route in routes:
        if isinstance(route, APIRoute) and route.include_in_schema:
            yield prefix + route.path_format, route
        included = getattr(route, "original_router", None)
        if included is not None:
            context_prefix = getattr(getattr(route, "include_context", None), "prefix", "")
            yield from api_routes(included.routes, prefix + context_prefix)


def document(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI document (made once), every error answer documented as ``ErrorOut``."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    schema = FastAPI.openapi(app)  # FastAPI's own document, kept on the app
    body = ErrorOut.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(body.pop("$defs", {}))
    schemas["ErrorOut"] = body
    for name in ("HTTPValidationError", "ValidationError"):  # FastAPI's 422, not what we send
        schemas.pop(name, None)
    for path, route in api_routes(app.routes):
        for method in route.methods or ():
            responses = schema["paths"][path][method.lower()]["responses"]
            for status in error_statuses(route, method, path):
                own = responses.get(str(status), {}) if status != 422 else {}  # 422: FastAPI's
                responses[str(status)] = {
                    "description": own.get("description", DESCRIPTIONS[status]),
                    "content": {"application/json": {"schema": {"$ref": ERROR_OUT}}},
                } | ({"headers": _HEADERS[status]} if status in _HEADERS else {})
    return schema
