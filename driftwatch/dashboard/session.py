"""Dashboard sign-in: an API key (scope read or admin) exchanged for a signed session cookie.

The cookie holds the key's id and a CSRF token, signed with a secret the replicas share (made
at first start and kept in the database), and expires after ``SESSION_SECONDS``. Every page
checks that the key still exists and is not revoked, so revoking a key signs its sessions out.
The key itself is never stored in the cookie.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from driftwatch.db import session_scope
from driftwatch.models import ApiKey, AppSecret

COOKIE = "driftwatch_session"
SESSION_SECONDS = 12 * 3600
SECRET_NAME = "dashboard-session"


class SignInRequired(Exception):
    """Answered with a redirect to /login (see the app's handler)."""

    def __init__(self, next_path: str) -> None:
        self.next_path = next_path


@dataclass(frozen=True, slots=True)
class Viewer:
    key_id: int
    name: str
    scope: str
    csrf: str

    @property
    def is_admin(self) -> bool:
        return self.scope == "admin"


def _shared_secret(session: Session) -> str:
    found = session.get(AppSecret, SECRET_NAME)
    if found is not None:
        return found.value
    try:
        with session.begin_nested():
            session.add(AppSecret(name=SECRET_NAME, value=secrets.token_urlsafe(48)))
    except IntegrityError:  # another replica made it first
        pass
    return session.scalars(select(AppSecret.value).where(AppSecret.name == SECRET_NAME)).one()


class Signer:
    """Signs and reads session cookies; the secret is read from the database once."""

    def __init__(self) -> None:
        self._serializer: URLSafeTimedSerializer | None = None

    def serializer(self, engine: Any) -> URLSafeTimedSerializer:
        if self._serializer is None:
            with session_scope(engine) as session:
                secret = _shared_secret(session)
            self._serializer = URLSafeTimedSerializer(secret, salt="driftwatch-dashboard")
        return self._serializer

    def issue(self, engine: Any, *, key_id: int) -> str:
        return self.serializer(engine).dumps({"k": key_id, "c": secrets.token_urlsafe(24)})

    def read(self, engine: Any, cookie: str) -> dict[str, Any] | None:
        try:
            data = self.serializer(engine).loads(cookie, max_age=SESSION_SECONDS)
        except BadSignature:  # tampered, signed by another installation, or expired
            return None
        return data if isinstance(data, dict) else None


def current_viewer(request: Request) -> Viewer:
    """The signed-in viewer, or a redirect to /login that comes back here."""
    cookie = request.cookies.get(COOKIE)
    data = request.app.state.signer.read(request.app.state.engine, cookie) if cookie else None
    if data is not None:
        with session_scope(request.app.state.engine) as session:
            key = session.get(ApiKey, data.get("k"))
            if key is not None and key.revoked_at is None and key.scope in ("read", "admin"):
                return Viewer(key.id, key.name, key.scope, str(data.get("c")))
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    raise SignInRequired(target)


def signed_in_viewer(request: Request) -> Viewer | None:
    """The signed-in viewer, if any (error pages show the navigation to them)."""
    try:
        return current_viewer(request)
    except SignInRequired:
        return None


ViewerDep = Annotated[Viewer, Depends(current_viewer)]
