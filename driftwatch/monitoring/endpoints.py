"""HTTP: baselines (records, a window of traffic, or a CSV/Parquet upload) and runs."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from driftwatch.alerting.service import AlertingContext
from driftwatch.core.retention import Retention
from driftwatch.deps import AdminKey, ReadKey, RowId, SessionDep, SmallRowId
from driftwatch.errors import InvalidPayload, NotFound
from driftwatch.ingest.endpoints import read_json
from driftwatch.models import Baseline
from driftwatch.monitoring import files, moving, repository, service
from driftwatch.monitoring.schemas import (
    BaselineColumns,
    BaselineCreate,
    BaselineOut,
    RunCreate,
    RunKind,
    RunOut,
    TimeRange,
)
from driftwatch.registry import service as registry

router = APIRouter(prefix="/api/v1/models/{name}", tags=["monitoring"])


def _baseline_out(
    baseline: Baseline, active_id: int | None, now: tuple[datetime, datetime, int] | None = None
) -> BaselineOut:
    """``now``: a trailing or lag baseline's span for the current window, and its rows."""
    window = None
    if baseline.window_start and baseline.window_end:
        window = TimeRange(start=baseline.window_start, end=baseline.window_end)
    length = moving.length_text(baseline.span_seconds) if baseline.span_seconds else None
    return BaselineOut(id=baseline.id, name=baseline.name,
                       rows=now[2] if now else baseline.rows,
                       source=baseline.source, created_at=baseline.created_at,
                       active=baseline.id == active_id, window=window,
                       trailing=length if baseline.source == moving.TRAILING else None,
                       lag=length if baseline.source == moving.LAG else None,
                       span=TimeRange(start=now[0], end=now[1]) if now else None,
                       columns=BaselineColumns.model_validate(baseline.columns)
                       if baseline.columns else None,
                       warnings=baseline.warnings or [],
                       calibration=baseline.calibration)  # fmt: skip


_UPLOAD_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": BaselineCreate.model_json_schema()},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["name", "file"],
                    "properties": {
                        "name": {"type": "string"},
                        "file": {"type": "string", "format": "binary",
                                 "description": "CSV (with a header) or Parquet"},
                    },
                }
            },
        },
    }
}  # fmt: skip


@router.post("/baselines", status_code=201, response_model=BaselineOut, openapi_extra=_UPLOAD_DOC)
async def create_baseline(
    name: str, request: Request, session: SessionDep, _key: AdminKey
) -> BaselineOut:
    """A JSON body (records or from_window), or a multipart upload of a CSV/Parquet file."""
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        form = await request.form()
        upload, baseline_name = form.get("file"), form.get("name")
        if not isinstance(upload, UploadFile) or not isinstance(baseline_name, str):
            raise InvalidPayload("multipart upload: needs the fields 'file' and 'name'")
        if not baseline_name or "\x00" in baseline_name or len(baseline_name) > 200:
            raise InvalidPayload("name: 1 to 200 characters, no NUL")
        settings = request.app.state.settings
        limits = files.TableLimits(settings.max_baseline_cells, settings.max_baseline_decoded_bytes)
        baseline = await run_in_threadpool(
            _from_file, session, name, baseline_name, upload, limits, settings.max_features
        )  # fmt: skip
    else:
        try:
            body = BaselineCreate.model_validate(await read_json(request, per_record=False))
        except ValueError as error:
            raise InvalidPayload(f"body: {error}") from None
        settings = request.app.state.settings
        baseline = await run_in_threadpool(
            _from_body, session, name, body, settings.retention_policy(), settings.max_features,
            settings.summaries,
        )  # fmt: skip
    return _baseline_out(baseline, baseline.id, _moving_now(session, name, baseline))


def _moving_now(
    session: Any, name: str, baseline: Baseline
) -> tuple[datetime, datetime, int] | None:
    if baseline.source not in moving.MOVING:
        return None
    model = registry.get_by_name(session, name=name)
    return service.moving_now(session, model=model, baseline=baseline)


def _from_body(
    session: Any, name: str, body: BaselineCreate, retention: Retention, max_features: int,
    summaries: bool = True,
) -> Baseline:  # fmt: skip
    model = registry.get_by_name(session, name=name, for_update=True)
    for source, length in ((moving.TRAILING, body.trailing), (moving.LAG, body.lag)):
        if length is not None:
            return service.baseline_moving(session, model=model, name=body.name, source=source,
                                           length=length, summaries=summaries)  # fmt: skip
    if body.records is not None:
        return service.baseline_from_records(
            session, model=model, name=body.name, records=body.records, max_features=max_features
        )
    assert body.from_window is not None
    return service.baseline_from_window(
        session, model=model, name=body.name,
        start=body.from_window.start, end=body.from_window.end, retention=retention,
    )  # fmt: skip


def _from_file(
    session: Any, name: str, baseline_name: str, upload: UploadFile, limits: files.TableLimits,
    max_features: int,
) -> Baseline:  # fmt: skip
    model = registry.get_by_name(session, name=name, for_update=True)
    table = files.read_table(upload.file, upload.filename, limits)
    return service.baseline_from_table(
        session, model=model, name=baseline_name, table=table, max_features=max_features
    )


@router.get("/baselines", response_model=list[BaselineOut])
def list_baselines(name: str, session: SessionDep, _key: ReadKey) -> list[BaselineOut]:
    model = registry.get_by_name(session, name=name)
    active = service.active_baseline(session, model=model)
    return [_baseline_out(b, active.id if active else None,
                          service.moving_now(session, model=model, baseline=b))
            for b in repository.list_baselines(session, model_id=model.id)]  # fmt: skip


@router.put("/baselines/{baseline_id}/activate", response_model=BaselineOut)
def activate_baseline(
    name: str, baseline_id: SmallRowId, session: SessionDep, _key: AdminKey
) -> BaselineOut:
    model = registry.get_by_name(session, name=name, for_update=True)
    baseline = service.activate(session, model=model, baseline_id=baseline_id)
    return _baseline_out(baseline, baseline.id,
                         service.moving_now(session, model=model, baseline=baseline))  # fmt: skip


@router.delete(
    "/baselines/{baseline_id}",
    status_code=204,
    response_class=Response,
    responses={
        204: {"description": "Deleted: its data is removed; runs computed against it stay, "
              "naming it, and windows queued against it move to the active baseline"},
        404: {"description": "No such model, or no such baseline of it (or it was deleted)"},
        409: {"description": "The model's active baseline: activate another one first"},
    },
)  # fmt: skip
def delete_baseline(
    name: str, baseline_id: SmallRowId, session: SessionDep, _key: AdminKey
) -> Response:
    """Delete a baseline other than the model's active one."""
    model = registry.get_by_name(session, name=name, for_update=True)
    service.delete_baseline(session, model=model, baseline_id=baseline_id)
    return Response(status_code=204)


@router.post("/runs", response_model=RunOut)
def create_run(
    name: str, body: RunCreate, request: Request, session: SessionDep, _key: AdminKey
) -> RunOut:
    """Compute the window now and return the run (alert rules apply to it as to any run)."""
    model = registry.get_by_name(session, name=name)
    settings = request.app.state.settings
    context = AlertingContext(request.app.state.rules.current(), settings.public_url)
    run = service.run_now(session, model=model, start=body.start, end=body.end,
                          alerting=context, baseline_id=body.baseline,
                          retention=settings.retention_policy(), exact=body.exact,
                          exact_max_rows=settings.exact_max_rows,
                          label_horizon=settings.label_horizon)  # fmt: skip
    return service.run_out(session, model=model, run=run)


@router.get("/runs", response_model=list[RunOut])
def list_runs(
    name: str, session: SessionDep, _key: ReadKey,
    start: Annotated[datetime | None, Query(description="windows starting at or after")] = None,
    end: Annotated[datetime | None, Query(description="windows ending at or before")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    kind: Annotated[RunKind | None, Query(
        description="window: the model's windows; custom: ranges computed on demand that are "
        "not whole windows; no_traffic: stretches of windows without predictions (not "
        "computed); span: several whole windows, from their summaries"
    )] = None,
) -> list[RunOut]:  # fmt: skip
    model = registry.get_by_name(session, name=name)
    for label, moment in (("start", start), ("end", end)):
        if moment is not None and moment.tzinfo is None:
            raise InvalidPayload(f"{label}: give a time zone, such as 2026-11-20T10:00:00Z")
    runs = repository.list_runs(session, model_id=model.id, start=start, end=end, limit=limit,
                                kind=kind)  # fmt: skip
    baselines = {b.id: b for b in repository.list_baselines(session, model_id=model.id,
                                                            include_deleted=True)}  # fmt: skip
    return [service.to_out(r, model=model, baseline=baselines.get(r.baseline_id)) for r in runs]


@router.get("/runs/{run_id}", response_model=RunOut)
def get_run(name: str, run_id: RowId, session: SessionDep, _key: ReadKey) -> RunOut:
    model = registry.get_by_name(session, name=name)
    run = repository.get_run(session, model_id=model.id, run_id=run_id)
    if run is None:
        raise NotFound(f"model {name!r} has no run {run_id}")
    return service.run_out(session, model=model, run=run)
