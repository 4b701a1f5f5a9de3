"""API keys, stored only as SHA-256 hashes of the key."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from driftwatch.models.base import Base, Name, UTCDateTime, utcnow


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(Name)
    scope: Mapped[str] = mapped_column(String(20))
    # Hex SHA-256 of the whole key; keys are 256-bit random, so a fast hash is the right one.
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The first characters of the key, to tell keys apart in listings.
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class AppSecret(Base):
    """Secrets the replicas share, made at first start (the dashboard's cookie signing key)."""

    __tablename__ = "app_secrets"

    name: Mapped[str] = mapped_column(Name, primary_key=True)
    value: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DashboardSession(Base):
    """A dashboard sign-in: its cookie names it, and signing out deletes it, so a cookie kept
    from before is refused. Expired ones are removed at each sign-in."""

    __tablename__ = "dashboard_sessions"

    # Hex SHA-256 of the random session id the (signed) cookie holds.
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    key_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("api_keys.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
