"""The dashboard's pages (CONTRACT section 3b), rendered on the server with their chart data."""

from __future__ import annotations

import hmac
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from driftwatch.alerting import repository as alerting_repository
from driftwatch.alerting import service as alerting
from driftwatch.core.specs import EmbeddingSpec, FeatureSpec
from driftwatch.core.time import format_duration, utcnow
from driftwatch.dashboard import evidently_report, repository, service
from driftwatch.dashboard.security import REPORT_POLICY
from driftwatch.dashboard.session import (
    COOKIE,
    LOGIN_COOKIE,
    LOGIN_FORM_SECONDS,
    SESSION_SECONDS,
    Viewer,
    ViewerDep,
    signed_in_viewer,
)
from driftwatch.db import session_scope
from driftwatch.deps import MAX_ID, OptionalIdQuery, RowId, SessionDep
from driftwatch.errors import Forbidden, InvalidPayload, NotFound
from driftwatch.models import MonitoredModel
from driftwatch.models.monitoring import CUSTOM, NO_TRAFFIC, WINDOW
from driftwatch.monitoring import moving
from driftwatch.registry import service as registry
from driftwatch.text import plural, redact_url, redact_urls_in

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
templates.env.filters["when"] = lambda moment, seconds=False: moment.strftime(
    "%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M") if moment else ""  # fmt: skip
templates.env.filters["clock"] = lambda moment, seconds=False: moment.strftime(
    "%H:%M:%S" if seconds else "%H:%M")  # fmt: skip
templates.env.filters["duration"] = format_duration
templates.env.filters["plural"] = plural
# webhook URLs and errors are shown without the secrets a URL may hold (tokens, passwords)
templates.env.filters["redact_url"] = redact_url
templates.env.filters["redact_urls"] = lambda text: redact_urls_in(text) if text else text
templates.env.filters["num"] = lambda value: "" if value is None else (
    f"{value:.4g}" if isinstance(value, float) else f"{value:,}" if isinstance(value, int)
    else str(value))  # fmt: skip
SILENCE_CHOICES = {"1h": timedelta(hours=1), "24h": timedelta(days=1), "7d": timedelta(days=7)}


def _page(request: Request, template: str, viewer: Viewer | None, started: float,
          **context: Any) -> HTMLResponse:  # fmt: skip
    response = templates.TemplateResponse(
        request, template, {"viewer": viewer, "path": request.url.path, **context}
    )
    # how long the server took, for the browser's devtools and for benchmarks/dashboard.py
    response.headers["server-timing"] = f"render;dur={(time.perf_counter() - started) * 1000:.1f}"
    return response


DOT_NAMES = (".", "..")  # a browser resolves these path segments, even percent-encoded


def feature_path(model: str, feature: str) -> tuple[str, dict[str, str]]:
    """A feature page's path and query, for any feature name: every character but letters,
    digits and ``-._~`` is percent-encoded, ``/`` too (the route takes the rest of the path);
    a feature named ``.`` or ``..`` is addressed by query (``/models/m/feature?feature=..``)."""
    if feature in DOT_NAMES:
        return f"/models/{quote(model, safe='')}/feature", {"feature": feature}
    return f"/models/{quote(model, safe='')}/features/{quote(feature, safe='')}", {}


def feature_url(model: str, feature: str) -> str:
    path, query = feature_path(model, feature)
    return path + ("?" + urlencode(query, quote_via=quote) if query else "")


templates.env.filters["feature_url"] = feature_url
templates.env.filters["feature_path"] = feature_path


def _check_csrf(viewer: Viewer, token: str) -> None:
    if not hmac.compare_digest(viewer.csrf, token):
        raise Forbidden("the form has expired: reload the page and try again")


def _safe_next(target: str | None) -> str:
    """Only a path on this site (no scheme, no host) is followed after signing in."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


# -- sign in and out -----------------------------------------------------------------------------


def _login_page(request: Request, started: float, next: str, error: str | None,
                status: int = 200) -> HTMLResponse:  # fmt: skip
    """The sign-in form, with its CSRF token in the form and in its cookie (the one the browser
    has while it is valid, so that two open forms both work)."""
    signer, engine = request.app.state.signer, request.app.state.engine
    token = request.cookies.get(LOGIN_COOKIE, "")
    if not signer.login_token_valid(engine, token, token):
        token = signer.login_token(engine)
    response = _page(request, "login.html", None, started, next=_safe_next(next), error=error,
                     login_token=token)  # fmt: skip
    response.status_code = status
    secure = request.app.state.settings.public_url.startswith("https://")
    response.set_cookie(LOGIN_COOKIE, token, max_age=LOGIN_FORM_SECONDS, httponly=True,
                        samesite="strict", path="/login", secure=secure)  # fmt: skip
    return response


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "/") -> HTMLResponse:
    return _login_page(request, time.perf_counter(), next, None)


@router.post("/login", response_model=None)
def login(
    request: Request, key: Annotated[str, Form()], next: Annotated[str, Form()] = "/",
    csrf: Annotated[str, Form()] = "",
) -> Response:  # fmt: skip
    started = time.perf_counter()
    engine, limiter = request.app.state.engine, request.app.state.login_limiter
    if not request.app.state.signer.login_token_valid(
        engine, request.cookies.get(LOGIN_COOKIE), csrf
    ):
        return _login_page(request, started, next, "The sign-in form had expired (or came from "
                           "another site): sign in again.", status=403)  # fmt: skip
    # while an address is over its failures, every attempt is refused unread: the answer to a
    # right key would tell it apart. Each attempt spends its failure up front (given back when
    # the key is right), so attempts made at the same moment cannot all pass the check.
    client = _client(request)
    wait = limiter.take(client, 1)
    if wait is not None:
        message = (f"Too many failed sign-ins from your address: try again in "
                   f"{plural(wait, 'second')}.")  # fmt: skip
        response = _login_page(request, started, next, message, status=429)
        response.headers["retry-after"] = str(wait)
        return response
    with session_scope(engine) as session:
        principal = request.app.state.key_verifier.verify(session, key.strip())
    key_id, scope = (principal.key_id, principal.scope) if principal else (None, None)
    error = None
    if key_id is None:
        error = "That key is not valid (or was revoked)."
    elif scope not in ("read", "admin"):
        error = f"This key has scope '{scope}'; the dashboard needs a 'read' or 'admin' key."
    if error is not None:
        return _login_page(request, started, next, error, status=401)
    limiter.refund(client, 1)
    redirect = RedirectResponse(_safe_next(next), status_code=303)
    assert key_id is not None
    redirect.set_cookie(
        COOKIE, request.app.state.signer.issue(request.app.state.engine, key_id=key_id),
        max_age=SESSION_SECONDS, httponly=True, samesite="lax",
        secure=request.app.state.settings.public_url.startswith("https://"),
    )  # fmt: skip
    redirect.delete_cookie(LOGIN_COOKIE, path="/login")
    return redirect


@router.post("/logout")
def logout(request: Request, csrf: Annotated[str, Form()] = "") -> RedirectResponse:
    """Signing out ends the session on the server: the cookie, if kept, is refused after."""
    viewer = signed_in_viewer(request)
    if viewer is None:  # signed out already (or the session expired)
        return RedirectResponse("/login", status_code=303)
    _check_csrf(viewer, csrf)
    request.app.state.signer.end(request.app.state.engine, request.cookies.get(COOKIE, ""))
    redirect = RedirectResponse("/login", status_code=303)
    redirect.delete_cookie(COOKIE)
    return redirect


# -- pages ---------------------------------------------------------------------------------------


@router.get("/", response_class=HTMLResponse)
def models_page(request: Request, viewer: ViewerDep, session: SessionDep) -> HTMLResponse:
    started = time.perf_counter()
    models = service.overview(session, now=utcnow())
    return _page(request, "models.html", viewer, started, models=models)


def _span(session: Session, model: MonitoredModel, range_: str | None, start: datetime | None,
          end: datetime | None) -> tuple[service.TimeRange, datetime | None]:  # fmt: skip
    """The page's time range, and the end of the model's newest window with data; the
    picker's times (no zone) are UTC, as every time shown."""
    start, end = (m.replace(tzinfo=UTC) if m is not None and m.tzinfo is None else m
                  for m in (start, end))  # fmt: skip
    last = repository.last_window_with_data(session, model_id=model.id)
    newest = last.window_end if last is not None else None
    span = service.time_range(range_, start, end, utcnow(), window_seconds=model.window_seconds,
                              newest=newest)  # fmt: skip
    return span, newest


RangeQuery = Annotated[str | None, Query(alias="range")]


@router.get("/models/{name}", response_class=HTMLResponse)
def model_page(
    request: Request, name: str, viewer: ViewerDep, session: SessionDep,
    range_: RangeQuery = None, start: datetime | None = None, end: datetime | None = None,
    segment: str | None = None, segment_metric: str | None = None,
) -> HTMLResponse:  # fmt: skip
    started = time.perf_counter()
    model = registry.get_by_name(session, name=name)
    span, newest = _span(session, model, range_, start, end)
    data = service.model_page(session, model=model, span=span)
    # CONTRACT section 10: the picker's segment replaces the heatmap's rows by that segment's
    segment = segment or None
    if segment is not None:
        data["heatmap"] = service.segment_heatmap(session, model=model, span=span,
                                                  segment=segment)  # fmt: skip
    if segment_metric not in service.SEGMENT_METRICS:
        segment_metric = "score"
    latest = repository.last_window_with_data(session, model_id=model.id, before=span.end)
    data["segment_matrix"] = service.segment_matrix(latest, segment_metric)
    data["segment_options"] = service.segment_options(model, latest)
    data["segment"], data["segment_metric"] = segment, segment_metric
    # the window series (stretches without traffic included), and apart from it custom ranges
    runs = repository.latest_runs(session, model_id=model.id, limit=12, before=span.end,
                                  kinds=(WINDOW, NO_TRAFFIC))  # fmt: skip
    custom = repository.latest_runs(session, model_id=model.id, limit=12, before=span.end,
                                    kinds=(CUSTOM,))  # fmt: skip
    firing = repository.firing_counts(session).get(model.id, 0)
    last = repository.last_window_with_data(session, model_id=model.id)
    features: list[FeatureSpec | EmbeddingSpec] = [
        *registry.feature_specs(model), *registry.embedding_specs(model),
    ]  # fmt: skip
    baseline = repository.baseline(session, baseline_id=model.active_baseline_id)
    return _page(
        request, "model.html", viewer, started, model=model, span=span, data=data,
        ranges=service.presets(model.window_seconds), runs=runs, custom_runs=custom,
        newest=newest, alerts=repository.recent_alerts(session, model_id=model.id, limit=10),
        baseline=baseline,
        baseline_note=moving.describe(baseline.source, baseline.span_seconds) if baseline else None,
        status=service.status(last, firing),
        note=service.traffic_note(session, model=model, now=utcnow()),
        features=features, precise=model.window_seconds < 60,
        feature_urls={f.name: feature_url(model.name, f.name) for f in features},
        setup=service.setup(session, model=model, newest=newest, now=utcnow()),
        # the address this page was reached at, which the user's client can reach too
        public_url=str(request.base_url).rstrip("/"),
    )  # fmt: skip


@router.get("/models/{name}/features/{feature:path}", response_class=HTMLResponse)
def feature_page(
    request: Request, name: str, feature: str, viewer: ViewerDep, session: SessionDep,
    range_: RangeQuery = None, start: datetime | None = None, end: datetime | None = None,
    run: OptionalIdQuery = None,
) -> HTMLResponse:  # fmt: skip
    return _feature_page(request, name, feature, viewer, session, range_, start, end, run)


@router.get("/models/{name}/feature", response_class=HTMLResponse)
def feature_page_by_query(
    request: Request, name: str, feature: str, viewer: ViewerDep, session: SessionDep,
    range_: RangeQuery = None, start: datetime | None = None, end: datetime | None = None,
    run: OptionalIdQuery = None,
) -> HTMLResponse:  # fmt: skip
    """The same page, the feature named in the query: for ``.`` and ``..``, which a browser
    would resolve away in a path."""
    return _feature_page(request, name, feature, viewer, session, range_, start, end, run)


def _feature_page(
    request: Request, name: str, feature: str, viewer: Viewer, session: Session,
    range_: str | None, start: datetime | None, end: datetime | None, run: int | None,
) -> HTMLResponse:  # fmt: skip
    started = time.perf_counter()
    model = registry.get_by_name(session, name=name)
    specs: list[FeatureSpec | EmbeddingSpec] = [
        *registry.feature_specs(model), *registry.embedding_specs(model),
    ]  # fmt: skip
    spec = next((f for f in specs if f.name == feature), None)
    if spec is None:
        raise NotFound(f"model {name!r} has no feature {feature!r}")
    span, newest = _span(session, model, range_, start, end)
    runs = repository.latest_runs(session, model_id=model.id, limit=48, before=span.end,
                                  with_data=True)  # fmt: skip
    chosen = None
    if run is not None:
        chosen = repository.run_with_distributions(session, model_id=model.id, run_id=run)
        if chosen is None:
            raise NotFound(f"model {name!r} has no run {run}")
        if chosen.id not in {r.id for r in runs}:  # a custom range, or an older window
            runs.insert(0, chosen)
    elif runs:
        chosen = repository.run_with_distributions(session, model_id=model.id, run_id=runs[0].id)
    data = service.feature_page(session, model=model, feature=feature, span=span, run=chosen)
    return _page(request, "feature.html", viewer, started, model=model, feature=spec, span=span,
                 data=data, ranges=service.presets(model.window_seconds), runs=runs,
                 chosen=chosen, newest=newest, precise=model.window_seconds < 60)  # fmt: skip


@router.get("/models/{name}/evidently", response_class=HTMLResponse)
async def evidently_page(
    request: Request, name: str, viewer: ViewerDep, run: Annotated[int, Query(ge=1, le=MAX_ID)]
) -> HTMLResponse:
    """Evidently's own report (DataDriftPreset) for a run's window against its baseline, on a
    bounded sample of both."""
    html = await run_in_threadpool(
        evidently_report.render, request.app.state.engine, model_name=name, run_id=run
    )
    # Evidently's HTML runs its own inline scripts: in a sandbox (an opaque origin, without the
    # viewer's cookies or access to the dashboard), never framed, sending nothing anywhere
    return HTMLResponse(html, headers={"content-security-policy": REPORT_POLICY})


@router.get("/alerts", response_class=HTMLResponse)
def alerts_page(
    request: Request, viewer: ViewerDep, session: SessionDep, state: str = "open",
    model: str | None = None,
) -> HTMLResponse:  # fmt: skip
    started = time.perf_counter()
    states = {"open": ("pending", "firing"), "firing": ("firing",), "resolved": ("resolved",),
              "all": ()}.get(state, ("pending", "firing"))  # fmt: skip
    model_id = registry.get_by_name(session, name=model).id if model else None
    found = alerting_repository.list_alerts(session, model_id=model_id, states=states, limit=300)
    silences = alerting_repository.active_silences(session, now=utcnow())
    rows = [{"alert": alert, "model": model_name,
             "silence": alerting_repository.matching_silence(silences, model=model_name,
                                                             rule=alert.rule)}
            for alert, model_name in found]  # fmt: skip
    return _page(request, "alerts.html", viewer, started, rows=rows, state=state,
                 silences=silences, choices=list(SILENCE_CHOICES), model=model)  # fmt: skip


@router.post("/alerts/{alert_id}/silence")
def silence_alert(
    alert_id: RowId, viewer: ViewerDep, session: SessionDep, csrf: Annotated[str, Form()],
    duration: Annotated[str, Form()] = "24h", reason: Annotated[str, Form()] = "",
) -> RedirectResponse:  # fmt: skip
    _check_csrf(viewer, csrf)
    if not viewer.is_admin:
        raise Forbidden("silencing needs an admin key")
    found = alerting_repository.get_alert(session, alert_id=alert_id)
    if found is None:
        raise NotFound(f"there is no alert {alert_id}")
    alert, model = found
    length = SILENCE_CHOICES.get(duration)
    if length is None:
        raise InvalidPayload(f"duration: one of {', '.join(SILENCE_CHOICES)}")
    alerting.create_silence(session, model=model, rule=alert.rule, until=utcnow() + length,
                            reason=reason or None, created_by=viewer.name)  # fmt: skip
    return RedirectResponse("/alerts?" + urlencode({"state": "open"}), status_code=303)


@router.get("/deliveries", response_class=HTMLResponse)
def deliveries_page(
    request: Request, viewer: ViewerDep, session: SessionDep, status: str = "all"
) -> HTMLResponse:
    started = time.perf_counter()
    statuses = () if status == "all" else (status,)
    deliveries = repository.deliveries_page(session, limit=300, statuses=statuses)
    attempts: dict[int, list[Any]] = {}
    for attempt in alerting_repository.attempts_of(
        session, delivery_ids=[d.id for d in deliveries]
    ):
        attempts.setdefault(attempt.delivery_id, []).append(attempt)  # fmt: skip
    breakers = {e.key: e.state for e in alerting_repository.list_endpoints(session)}
    models = repository.alert_models(session, sorted({d.alert_id for d in deliveries}))
    return _page(request, "deliveries.html", viewer, started, deliveries=deliveries,
                 attempts=attempts, breakers=breakers, models=models, status=status)  # fmt: skip


@router.post("/deliveries/{delivery_id}/redeliver")
def redeliver(
    delivery_id: RowId, viewer: ViewerDep, session: SessionDep, csrf: Annotated[str, Form()]
) -> RedirectResponse:
    _check_csrf(viewer, csrf)
    if not viewer.is_admin:
        raise Forbidden("redelivering needs an admin key")
    alerting.redeliver(session, delivery_id=delivery_id)
    return RedirectResponse(f"/deliveries#delivery-{delivery_id}", status_code=303)


def error_page(request: Request, status: int, message: str) -> HTMLResponse:
    """A page that says what is wrong, with the navigation when signed in."""
    viewer = signed_in_viewer(request)
    response = _page(request, "error.html", viewer, time.perf_counter(), status=status,
                     message=message)  # fmt: skip
    response.status_code = status
    return response


def login_redirect(next_path: str) -> RedirectResponse:
    return RedirectResponse("/login?next=" + quote(next_path, safe="/"), status_code=303)
