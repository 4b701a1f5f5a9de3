"""Declarative base and the column types that differ between Postgres and SQLite."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel
from sqlalchemy import JSON, BigInteger, DateTime, Dialect, Integer, MetaData, String
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

from driftwatch.core.time import iso, utcnow

__all__ = ["Base", "BigIntPK", "Name", "TypedJSON", "UTCDateTime", "iso", "utcnow"]

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every dialect.

    SQLite has no timezone type: values are stored as naive UTC and given their zone back on read.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: every timestamp must be timezone-aware")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


ModelT = TypeVar("ModelT", bound=BaseModel)


class TypedJSON(TypeDecorator[ModelT], Generic[ModelT]):
    """A pydantic model stored as JSON: written with ``model_dump(mode="json")``, read back
    validated, so what storage keeps is the type the code computes and the API answers."""

    impl = JSON
    cache_ok = True

    def __init__(self, model: type[ModelT]) -> None:
        super().__init__()
        self.model = model

    def process_bind_param(self, value: ModelT | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, self.model):
            raise TypeError(f"expected a {self.model.__name__}, got {type(value).__name__}")
        return value.model_dump(mode="json")

    def process_result_value(self, value: Any, dialect: Dialect) -> ModelT | None:
        return None if value is None else self.model.model_validate(value)


# Big surrogate keys on Postgres; SQLite only auto-increments a column declared INTEGER.
BigIntPK = BigInteger().with_variant(Integer(), "sqlite")

Name = String(200)
