"""The FastAPI application: API, health and metrics."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from driftwatch import __version__, db, openapi, runtime
from driftwatch.alerting.endpoints import router as alerting_router
from driftwatch.alerting.service import RulesSource
from driftwatch.auth import service as keys
from driftwatch.auth.ratelimit import RateLimiter
from driftwatch.config import Settings, get_settings
from driftwatch.dashboard import security
from driftwatch.dashboard.endpoints import error_page, login_redirect
from driftwatch.dashboard.endpoints import router as dashboard_router
from driftwatch.dashboard.security import SecurityHeaders
from driftwatch.dashboard.session import Signer, SignInRequired
from driftwatch.errors import (
    DriftwatchError,
    ErrorItem,
    ErrorOut,
    InvalidPayload,
    RetryLater,
    ServiceUnavailable,
)
from driftwatch.guard import RequestGuard
from driftwatch.ingest.endpoints import router as ingest_router
from driftwatch.monitoring.endpoints import router as monitoring_router
from driftwatch.monitoring.exporter import StateCollector
from driftwatch.registry.endpoints import router as registry_router
from driftwatch.registry.service import ModelCache
from driftwatch.text import RefuseNulInUrls

log = logging.getLogger("driftwatch")
STATIC_DIR = Path(__file__).parent / "dashboard" / "static"


def _location(loc: tuple[Any, ...]) -> str:
    parts = [str(part) for part in loc if part != "body"]
    return ".".join(parts) or "body"


def _message(error: dict[str, Any]) -> str:
    """pydantic's message without its "Value error, " prefix (our validators' own words)."""
    return str(error["msg"]).removeprefix("Value error, ")


async def _validation_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, RequestValidationError)
    problems = [f"{_location(e['loc'])}: {_message(e)}" for e in error.errors()]
    if _is_page(request):
        return await _driftwatch_error(request, InvalidPayload("; ".join(problems)))
    items = [ErrorItem(loc=list(e["loc"]), msg=_message(e), type=e["type"])
             for e in error.errors()]  # fmt: skip
    body = ErrorOut(detail="; ".join(problems), errors=items)
    return JSONResponse(status_code=422, content=body.model_dump())


def _is_page(request: Request) -> bool:
    return not request.url.path.startswith(
        ("/api/", "/healthz", "/readyz", "/metrics", "/static/", "/openapi.json")
    )


async def _http_error(request: Request, error: Exception) -> Response:
    """A path no route serves (404) or a method it does not take (405): a page for pages."""
    assert isinstance(error, StarletteHTTPException)
    if _is_page(request) and error.status_code in (404, 405):
        message = ("there is no such page" if error.status_code == 404
                   else f"this page does not take a {request.method} request")  # fmt: skip
        return await run_in_threadpool(error_page, request, error.status_code, message)
    return await http_exception_handler(request, error)


async def _driftwatch_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, DriftwatchError)
    if _is_page(request):  # a dashboard page: a page that says what is wrong
        return await run_in_threadpool(error_page, request, error.status_code, error.message)
    headers = {"WWW-Authenticate": "Bearer"} if error.status_code == 401 else None
    if isinstance(error, RetryLater):
        headers = {"Retry-After": str(error.retry_after)}
    body = ErrorOut(detail=error.message).model_dump(exclude_none=True)
    return JSONResponse(status_code=error.status_code, content=body, headers=headers)


async def _database_unavailable(request: Request, error: Exception) -> Response:
    """The database refused for now (SQLite's write lock held past its busy timeout by a long
    writer, a connection refused, the pool exhausted): 503, worth sending again, never a 500.
    Nothing of the request was committed: its transaction rolled back with the error."""
    unavailable = ServiceUnavailable(db.unavailable_message(error), retry_after=2)
    return await _driftwatch_error(request, unavailable)


async def _internal_error(request: Request, error: Exception) -> Response:
    """An unexpected failure: the documented error body, and the security headers every answer
    carries (this answer comes from Starlette's outermost layer, outside ``SecurityHeaders``).
    The error itself is logged by the server."""
    headers = {name.decode(): value.decode() for name, value in security.HEADERS.items()}
    headers["content-security-policy"] = security.PAGE_POLICY
    body = ErrorOut(detail="internal error: the server failed to answer; it is logged")
    return JSONResponse(status_code=500, content=body.model_dump(exclude_none=True),
                        headers=headers)  # fmt: skip


def ensure_admin_key(engine: Engine, settings: Settings) -> None:
    if settings.admin_key is None or not settings.admin_key.get_secret_value():
        return
    with db.session_scope(engine) as session:
        keys.ensure(
            session,
            plain=settings.admin_key.get_secret_value(),
            name="DRIFTWATCH_ADMIN_KEY",
            scope="admin",
        )


def create_app(
    settings: Settings | None = None, engine: Engine | None = None, *,
    workers: runtime.Workers = runtime.NO_WORKERS,
) -> FastAPI:  # fmt: skip
    """The app; while it runs (from its startup to its shutdown), the chosen ``workers``."""
    settings = settings or get_settings()
    engine = engine or db.get_engine(settings.database_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(ensure_admin_key, engine, settings)
        app.state.workers = await run_in_threadpool(runtime.start, engine, settings, workers)
        try:
            yield
        finally:
            await run_in_threadpool(runtime.stop, app.state.workers)

    # no /docs or /redoc: their pages load Swagger UI and ReDoc from a CDN; /openapi.json stays
    app = FastAPI(title="driftwatch", version=__version__, lifespan=lifespan, docs_url=None,
                  redoc_url=None)  # fmt: skip
    app.state.settings = settings
    app.state.engine = engine
    app.state.key_verifier = keys.KeyVerifier(settings.key_cache_seconds)
    app.state.model_cache = ModelCache()
    app.state.rate_limiter = RateLimiter(settings.ingest_rate_limit)
    # failed sign-ins per client address: a minute's allowance at most, refilled over a minute
    app.state.login_limiter = RateLimiter(settings.login_failures_per_minute / 60, 60)
    app.state.rules = RulesSource(settings.rules_dir)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(DriftwatchError, _driftwatch_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    for unavailable in db.UNAVAILABLE:
        app.add_exception_handler(unavailable, _database_unavailable)
    app.add_exception_handler(Exception, _internal_error)
    app.include_router(registry_router)
    app.include_router(ingest_router)
    app.include_router(monitoring_router)
    app.include_router(alerting_router)
    app.include_router(dashboard_router)
    app.add_middleware(RequestGuard)  # keys, then body limits, before any body is read
    app.add_middleware(RefuseNulInUrls)
    app.add_middleware(SecurityHeaders)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.state.signer = Signer()
    app.openapi = lambda: openapi.document(app)  # type: ignore[method-assign]

    @app.exception_handler(SignInRequired)
    async def _sign_in(_request: Request, error: SignInRequired) -> Response:
        return login_redirect(error.next_path)

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    def readyz() -> JSONResponse:
        try:
            db.ping(engine)
        except Exception as error:  # any failure to reach the database means "not ready"
            detail = f"the database cannot be reached ({type(error).__name__})"
            body = {"detail": detail, "status": "unavailable"}
            return JSONResponse(status_code=503, content=body)
        return JSONResponse({"status": "ok"})

    state = CollectorRegistry(auto_describe=False)
    state.register(StateCollector(engine, settings.metrics_cache_seconds))

    @app.get("/metrics", tags=["health"], response_class=PlainTextResponse)
    def prometheus_metrics() -> PlainTextResponse:
        """This process's counters, and the models' latest state from the database."""
        body = generate_latest() + generate_latest(state)
        return PlainTextResponse(body, media_type=CONTENT_TYPE_LATEST)

    return app
