"""API keys: created once and shown once, stored as SHA-256, checked in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from driftwatch.core.time import utcnow
from driftwatch.models import ApiKey

Scope = Literal["ingest", "read", "admin"]
SCOPES: tuple[Scope, ...] = ("ingest", "read", "admin")
KEY_PREFIX = "dw_"
MAX_KEY_ID = 2**31 - 1  # ids are 32-bit


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def allows(granted: str, needed: Scope) -> bool:
    """``admin`` may do all; ``read`` and ``ingest`` only their own."""
    return granted == "admin" or granted == needed


def create(session: Session, *, name: str, scope: Scope) -> tuple[ApiKey, str]:
    """A new key; the plain key is returned here and never stored or shown again."""
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {', '.join(SCOPES)}, not {scope!r}")
    plain = generate_key()
    key = ApiKey(name=name, scope=scope, key_hash=hash_key(plain), prefix=plain[:10])
    session.add(key)
    session.flush()
    return key, plain


def ensure(session: Session, *, plain: str, name: str, scope: Scope) -> ApiKey:
    """Make a key with exactly this value exist with this scope (``DRIFTWATCH_ADMIN_KEY``)."""
    digest = hash_key(plain)
    key = session.scalars(select(ApiKey).where(ApiKey.key_hash == digest)).one_or_none()
    if key is None:
        key = ApiKey(name=name, scope=scope, key_hash=digest, prefix=plain[:4] + "…")
        try:
            with session.begin_nested():
                session.add(key)
                session.flush()
        except IntegrityError:  # another process created it first
            key = session.scalars(select(ApiKey).where(ApiKey.key_hash == digest)).one()
    key.scope = scope
    key.revoked_at = None
    session.flush()
    return key


def list_keys(session: Session) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).order_by(ApiKey.id)))


def revoke(session: Session, *, key: str) -> int:
    """Revoke the active keys with this id or name; how many were."""
    condition = ApiKey.name == key
    if key.isascii() and key.isdigit() and int(key) <= MAX_KEY_ID:  # larger: a name, or none
        condition = or_(condition, ApiKey.id == int(key))
    found = list(session.scalars(select(ApiKey).where(condition, ApiKey.revoked_at.is_(None))))
    for row in found:
        row.revoked_at = utcnow()
    session.flush()
    return len(found)


@dataclass(frozen=True, slots=True)
class Principal:
    key_id: int
    name: str
    scope: str


class KeyVerifier:
    """Looks keys up by hash, with a short in-process cache so ingest does not query per request."""

    def __init__(self, cache_seconds: float) -> None:
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, Principal | None]] = {}
        self._lock = threading.Lock()

    def cached(self, presented: str) -> tuple[Principal | None] | None:
        """What the cache says of this key, while it is fresh (then in a tuple), without a query."""
        with self._lock:
            cached = self._cache.get(hash_key(presented))
        if cached is not None and time.monotonic() - cached[0] < self.cache_seconds:
            return (cached[1],)
        return None

    def verify(self, session: Session, presented: str) -> Principal | None:
        digest = hash_key(presented)
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(digest)
        if cached is not None and now - cached[0] < self.cache_seconds:
            return cached[1]
        row = session.scalars(
            select(ApiKey).where(ApiKey.key_hash == digest, ApiKey.revoked_at.is_(None))
        ).one_or_none()
        principal = None
        # The lookup is by hash; the final comparison is constant-time all the same.
        if row is not None and hmac.compare_digest(row.key_hash, digest):
            principal = Principal(row.id, row.name, row.scope)
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = (now, principal)
        return principal
