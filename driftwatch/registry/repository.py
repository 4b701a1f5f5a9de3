"""Every query of the model registry."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from driftwatch.models import GroundTruth, MonitoredModel, PredictionKey


def get_by_name(session: Session, *, name: str, for_update: bool = False) -> MonitoredModel | None:
    query = select(MonitoredModel).where(MonitoredModel.name == name)
    if for_update:
        # NO KEY UPDATE: rows that refer to the model (runs, baselines) may still be inserted
        query = query.with_for_update(key_share=True)
    return session.scalars(query).one_or_none()


def list_all(session: Session) -> list[MonitoredModel]:
    return list(session.scalars(select(MonitoredModel).order_by(MonitoredModel.name)))


def count_predictions(session: Session, *, model_id: int) -> int:
    query = (
        select(func.count()).select_from(PredictionKey).where(PredictionKey.model_id == model_id)
    )
    return int(session.scalar(query) or 0)


def count_labeled(session: Session, *, model_id: int) -> int:
    query = (
        select(func.count())
        .select_from(PredictionKey)
        .join(
            GroundTruth,
            (GroundTruth.model_id == PredictionKey.model_id)
            & (GroundTruth.prediction_id == PredictionKey.prediction_id),
        )
        .where(PredictionKey.model_id == model_id)
    )
    return int(session.scalar(query) or 0)
