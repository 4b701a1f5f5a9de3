"""HTTP: register, list, read and update models."""

from __future__ import annotations

from fastapi import APIRouter, Request

from driftwatch.deps import AdminKey, ReadKey, SessionDep
from driftwatch.registry import repository, service
from driftwatch.registry.schemas import ModelCreate, ModelOut, ModelUpdate

router = APIRouter(prefix="/api/v1/models", tags=["models"])


@router.post("", status_code=201, response_model=ModelOut)
def create_model(
    body: ModelCreate, request: Request, session: SessionDep, _key: AdminKey
) -> ModelOut:
    retention = request.app.state.settings.retention_policy()
    model = service.create(session, body=body, retention=retention,
                           max_features=request.app.state.settings.max_features)  # fmt: skip
    return service.to_out(model)


@router.get("", response_model=list[ModelOut])
def list_models(session: SessionDep, _key: ReadKey) -> list[ModelOut]:
    return [service.to_out(model) for model in repository.list_all(session)]


@router.get("/{name}", response_model=ModelOut)
def get_model(name: str, session: SessionDep, _key: ReadKey) -> ModelOut:
    model = service.get_by_name(session, name=name)
    return service.to_out(model, service.counts(session, model=model))


@router.patch("/{name}", response_model=ModelOut)
def update_model(
    name: str, body: ModelUpdate, request: Request, session: SessionDep, _key: AdminKey
) -> ModelOut:
    retention = request.app.state.settings.retention_policy()
    model = service.update(session, name=name, body=body, retention=retention,
                           max_features=request.app.state.settings.max_features)  # fmt: skip
    request.app.state.model_cache.forget(name)
    return service.to_out(model, service.counts(session, model=model))
