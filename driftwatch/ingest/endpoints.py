"""HTTP: predictions and ground truth in batches, and the rejected-records listing."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from driftwatch.auth.service import Principal
from driftwatch.deps import MAX_ID, IngestKey, ReadKey, SessionDep
from driftwatch.errors import InvalidPayload, TooManyRequests
from driftwatch.ingest import jsontext, repository, service
from driftwatch.ingest.schemas import (
    GroundTruthBatch,
    IngestResult,
    PredictionBatch,
    RejectedRecordOut,
    ShadowPredictionBatch,
    inline_schema,
)
from driftwatch.registry import service as registry

router = APIRouter(prefix="/api/v1/models/{name}", tags=["ingest"])


async def read_json(request: Request, *, per_record: bool = True) -> Any:
    """The body parsed as JSON (``guard.RequestGuard`` bounds its size and the time it takes to
    arrive). ``per_record``: a batch record that is not JSON by itself is an ``Unreadable`` in
    its place, rejected alone; else the whole body must be JSON."""
    raw = await request.body()
    if not raw:
        raise InvalidPayload('body: empty; expected JSON {"records": [...]}')
    try:
        return jsontext.loads(raw) if per_record else orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise InvalidPayload(f"body: not valid JSON ({error})") from None


def _body_doc(model: type[Any]) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": inline_schema(model)}},
        }
    }


def _within_rate(request: Request, key: Principal, records: int) -> None:
    wait = request.app.state.rate_limiter.take(key.key_id, records)
    if wait is not None:
        raise TooManyRequests(
            f"this key is over its rate of {request.app.state.rate_limiter.rate:g} records a "
            f"second: retry in {wait} s",
            retry_after=wait,
        )


@router.post("/predictions", response_model=IngestResult, openapi_extra=_body_doc(PredictionBatch))
async def post_predictions(
    name: str, request: Request, session: SessionDep, key: IngestKey
) -> IngestResult:
    body = await read_json(request)
    batch = service.prediction_batch(body, max_records=request.app.state.settings.max_batch_records)
    _within_rate(request, key, batch.count)
    return await run_in_threadpool(
        service.log_predictions,
        session,
        model_name=name,
        batch=batch,
        models=request.app.state.model_cache,
        retention=request.app.state.settings.retention_policy(),
        limits=service.Limits.of(request.app.state.settings, len(await request.body())),
    )


@router.post(
    "/ground-truth", response_model=IngestResult, openapi_extra=_body_doc(GroundTruthBatch)
)
async def post_ground_truth(
    name: str, request: Request, session: SessionDep, key: IngestKey
) -> IngestResult:
    records = await _keyed_records(request, key)
    return await run_in_threadpool(
        service.log_ground_truth, session, model_name=name, records=records,
        retention=request.app.state.settings.retention_policy(),
        limits=service.Limits.of(request.app.state.settings),
    )  # fmt: skip


@router.post(
    "/shadow-predictions", response_model=IngestResult,
    openapi_extra=_body_doc(ShadowPredictionBatch),
)  # fmt: skip
async def post_shadow_predictions(
    name: str, request: Request, session: SessionDep, key: IngestKey
) -> IngestResult:
    """What shadow versions predicted for served predictions, joined by prediction id."""
    records = await _keyed_records(request, key)
    return await run_in_threadpool(
        service.log_shadow_predictions, session, model_name=name, records=records
    )


async def _keyed_records(request: Request, key: Principal) -> list[Any]:
    """The records of a batch keyed by prediction id (labels, shadow predictions), within the
    batch size limit and the key's rate."""
    body = await read_json(request)
    records = service.batch_records(body, max_records=request.app.state.settings.max_batch_records)
    _within_rate(request, key, len(records))
    return records


@router.get("/rejected", response_model=list[RejectedRecordOut])
def list_rejected(
    name: str,
    session: SessionDep,
    _key: ReadKey,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before_id: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="page: ids below this one")
    ] = None,
) -> list[RejectedRecordOut]:
    model = registry.get_by_name(session, name=name)
    rows = repository.list_rejections(session, model_id=model.id, limit=limit, before_id=before_id)
    return [
        RejectedRecordOut(
            id=r.id,
            kind=r.kind,
            index=r.batch_index,
            prediction_id=r.prediction_id,
            error=r.error,
            record=r.record,
            received_at=r.received_at,
        )
        for r in rows
    ]
