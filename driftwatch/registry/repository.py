"""Every query of the model registry."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from driftwatch.models import MonitoredModel


def get_by_name(session: Session, *, name: str, for_update: bool = False) -> MonitoredModel | None:
    query = select(MonitoredModel).where(MonitoredModel.name == name)
    if for_update:
        query = query.with_for_update()
    return session.scalars(query).one_or_none()


def list_all(session: Session) -> list[MonitoredModel]:
    return list(session.scalars(select(MonitoredModel).order_by(MonitoredModel.name)))
