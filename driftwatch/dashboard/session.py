"""Dashboard sign-in: an API key (scope read or admin) exchanged for a signed session cookie.

Each sign-in is a row of ``dashboard_sessions`` (named by the hash of a random id); the cookie
holds that id and a CSRF token, signed with a secret the replicas share (made at first start and
kept in the database), and the session expires after ``SESSION_SECONDS``. Every page checks that
the session's row is there and that its key still exists and is not revoked: signing out deletes
the row, so a cookie kept from before is refused, and revoking a key signs its sessions out.
The key itself is never stored in the cookie.

The sign-in form has its own CSRF token (``LOGIN_COOKIE``, a signed random value the form
repeats), so that another site cannot sign a browser in with the attacker's key.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any

from fastapi import Depends, Request
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from driftwatch.core.time import utcnow
from driftwatch.db import session_scope
from driftwatch.models import ApiKey, AppSecret, DashboardSession

COOKIE = "driftwatch_session"
SESSION_SECONDS = 12 * 3600
LOGIN_COOKIE = "driftwatch_login"  # the sign-in form's CSRF token
LOGIN_FORM_SECONDS = 3600
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

    cookie = COOKIE  # the session cookie's name

    def __init__(self) -> None:
        self._serializer: URLSafeTimedSerializer | None = None

    def serializer(self, engine: Any) -> URLSafeTimedSerializer:
        if self._serializer is None:
            with session_scope(engine) as session:
                secret = _shared_secret(session)
            self._serializer = URLSafeTimedSerializer(secret, salt="driftwatch-dashboard")
        return self._serializer

    def issue(self, engine: Any, *, key_id: int) -> str:
        """A new session of the key: its row, and the cookie that names it."""
        token = secrets.token_urlsafe(32)
        now = utcnow()
        with session_scope(engine) as session:
            session.execute(delete(DashboardSession).where(DashboardSession.expires_at <= now))
            expires = now + timedelta(seconds=SESSION_SECONDS)
            session.add(DashboardSession(id=_hash(token), key_id=key_id, created_at=now,
                                         expires_at=expires))  # fmt: skip
        return self.serializer(engine).dumps({"s": token, "c": secrets.token_urlsafe(24)})

    def read(self, engine: Any, cookie: str) -> dict[str, Any] | None:
        try:
            data = self.serializer(engine).loads(cookie, max_age=SESSION_SECONDS)
        except BadSignature:  # tampered, signed by another installation, or expired
            return None
        return data if isinstance(data, dict) and isinstance(data.get("s"), str) else None

    def end(self, engine: Any, cookie: str) -> None:
        """Sign out: the cookie's session is deleted, so the cookie is refused from now on."""
        data = self.read(engine, cookie)
        if data is not None:
            with session_scope(engine) as session:
                session.execute(delete(DashboardSession)
                                .where(DashboardSession.id == _hash(data["s"])))  # fmt: skip

    def login_token(self, engine: Any) -> str:
        """A fresh CSRF token for the sign-in form (the same value goes in ``LOGIN_COOKIE``)."""
        return str(self.serializer(engine).dumps({"l": secrets.token_urlsafe(24)}))

    def login_token_valid(self, engine: Any, cookie: str | None, form: str) -> bool:
        """The form repeats the cookie's token, which this installation signed lately."""
        if not cookie or not form or not hmac.compare_digest(cookie, form):
            return False
        try:
            data = self.serializer(engine).loads(cookie, max_age=LOGIN_FORM_SECONDS)
        except BadSignature:
            return False
        return isinstance(data, dict) and "l" in data


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def current_viewer(request: Request) -> Viewer:
    """The signed-in viewer, or a redirect to /login that comes back here."""
    cookie = request.cookies.get(COOKIE)
    data = request.app.state.signer.read(request.app.state.engine, cookie) if cookie else None
    if data is not None:
        with session_scope(request.app.state.engine) as session:
            signed_in = session.get(DashboardSession, _hash(data["s"]))
            key = session.get(ApiKey, signed_in.key_id) if signed_in is not None else None
            if (signed_in is not None and signed_in.expires_at > utcnow() and key is not None
                    and key.revoked_at is None and key.scope in ("read", "admin")):  # fmt: skip
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
