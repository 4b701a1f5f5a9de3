"""What every request goes through before the app reads a byte of its body.

``RequestGuard`` is the outermost middleware of the app (an ASGI middleware, so it sees the body
as it arrives, chunk by chunk):

- A route that needs a key has it checked first (401, 403), with a short session of its own
  that is closed before the body is read: FastAPI reads a pydantic body before it runs the
  dependencies, so without this an unauthenticated caller could make the server read and parse
  a body of any size. The key's ``Principal`` is left in the request's state for ``deps.require``.
- One key may have ``DRIFTWATCH_MAX_REQUESTS_PER_KEY`` requests in progress at once; beyond it,
  429 with Retry-After (one key's slow uploads cannot take the whole server).
- A body larger than ``DRIFTWATCH_MAX_BODY_BYTES`` is refused: at once when its Content-Length
  says so, else as soon as the bytes received pass the limit (413). A body that has not arrived
  within ``DRIFTWATCH_BODY_TIMEOUT_SECONDS`` of the request's start is refused (408).

No database connection is held while a body is read: the key check's session is closed first,
and the request's own session (``deps.SessionDep``) connects only when the endpoint uses it.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from fastapi.dependencies.models import Dependant
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from driftwatch import db
from driftwatch.auth.service import KeyVerifier, Principal, allows
from driftwatch.openapi import BODY_METHODS, api_routes


class BodyRefused(HTTPException):
    """A body over the size limit (413) or too slow to arrive (408), raised from ``receive``.

    An ``HTTPException``: FastAPI lets it through its own body reading (any other exception
    there becomes a 400), and the app's handler renders it as ``{"detail": ...}``."""


def bearer_token(headers: dict[str, str]) -> str | None:
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


MISSING_KEY = "missing API key: send 'Authorization: Bearer <key>'"
INVALID_KEY = "invalid or revoked API key"


def scope_refusal(principal: Principal, needed: str) -> str | None:
    if allows(principal.scope, needed):  # type: ignore[arg-type]
        return None
    return f"this key has scope {principal.scope!r}; this needs {needed!r}"


def required_scope(dependant: Dependant) -> str | None:
    """The scope ``deps.require`` asks of an operation (None: no key needed)."""
    for dependency in dependant.dependencies:
        needed = getattr(dependency.call, "required_scope", None) or required_scope(dependency)
        if needed:
            return str(needed)
    return None


@dataclass(frozen=True, slots=True)
class KeyedRoute:
    pattern: re.Pattern[str]
    methods: frozenset[str]
    scope: str


def keyed_routes(app: Any) -> list[KeyedRoute]:
    found = []
    for path, route in api_routes(app.routes):
        needed = required_scope(route.dependant)
        if needed is not None:
            pattern, _, _ = compile_path(path)
            found.append(KeyedRoute(pattern, frozenset(route.methods or ()), needed))
    return found


class RequestGuard:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._routes: list[KeyedRoute] | None = None
        self.in_progress: defaultdict[int, int] = defaultdict(int)  # key id -> requests

    def _needed_scope(self, app: Any, method: str, path: str) -> str | None:
        if self._routes is None:
            self._routes = keyed_routes(app)
        for route in self._routes:
            if route.pattern.match(path) and method in route.methods:
                return route.scope
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        app = scope["app"]
        settings = app.state.settings
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        method: str = scope["method"]
        needed = self._needed_scope(app, method, scope["path"])
        body = BodyMeter(receive, settings.max_body_bytes, settings.body_timeout_seconds)
        declared = headers.get("content-length", "")
        if declared not in ("", "0") or "chunked" in headers.get("transfer-encoding", ""):
            send = _closing(send, body)
        principal = None
        if needed is None and method == "POST" and _is_dashboard_form(scope["path"]):
            # A dashboard form (silence, redeliver, sign out): a signed session cookie first,
            # before its body is read (who holds none is sent to sign in).
            try:
                signed_in = await _signed_in(app, scope)
            except db.UNAVAILABLE as error:  # no handler renders what a middleware raises
                await _error(scope, receive, send, 503, db.unavailable_message(error), 2)
                return
            if not signed_in:
                await RedirectResponse("/login", status_code=303)(scope, receive, send)
                return
        if needed is not None:
            token = bearer_token(headers)
            if token is None:
                await _error(scope, receive, send, 401, MISSING_KEY)
                return
            try:
                principal = await _verify(app, token)
            except db.UNAVAILABLE as error:  # no handler renders what a middleware raises
                await _error(scope, receive, send, 503, db.unavailable_message(error), 2)
                return
            if principal is None:
                await _error(scope, receive, send, 401, INVALID_KEY)
                return
            refusal = scope_refusal(principal, needed)
            if refusal is not None:
                await _error(scope, receive, send, 403, refusal)
                return
            scope.setdefault("state", {})["principal"] = principal
        limit: int = settings.max_body_bytes
        if method in BODY_METHODS and declared.isdigit() and int(declared) > limit:
            await _error(scope, receive, send, 413, _too_large(limit, declared))
            return
        per_key: int = settings.max_requests_per_key
        if principal is not None and per_key > 0:
            if self.in_progress[principal.key_id] >= per_key:
                message = (
                    f"this key has {per_key} requests in progress already, the most one key "
                    "may have (DRIFTWATCH_MAX_REQUESTS_PER_KEY): retry in 1 s"
                )
                await _error(scope, receive, send, 429, message, retry_after=1)
                return
            self.in_progress[principal.key_id] += 1
        try:
            started = False

            async def watch(message: Message) -> None:
                nonlocal started
                started = started or message["type"] == "http.response.start"
                await send(message)

            try:
                await self.app(scope, body.receive, watch)
            except BodyRefused as refused:  # raised where no handler rendered it
                if started:
                    raise
                await _error(scope, receive, send, refused.status_code, str(refused.detail))
        finally:
            if principal is not None and per_key > 0:
                self.in_progress[principal.key_id] -= 1
                if not self.in_progress[principal.key_id]:
                    del self.in_progress[principal.key_id]


class BodyMeter:
    """``receive`` that counts the body's bytes and watches the clock while the body arrives."""

    def __init__(self, receive: Receive, limit: int, timeout: float) -> None:
        self._receive = receive
        self.limit = limit
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout
        self.size = 0
        self.complete = False

    async def receive(self) -> Message:
        if self.complete:  # the body is in: what follows is a disconnect, waited for freely
            return await self._receive()
        remaining = self.deadline - time.monotonic()
        try:
            message = await asyncio.wait_for(self._receive(), max(remaining, 0.0))
        except TimeoutError:
            raise BodyRefused(
                408,
                f"the body did not arrive within {self.timeout:g} s "
                f"(DRIFTWATCH_BODY_TIMEOUT_SECONDS); {self.size} bytes came",
            ) from None
        if message["type"] == "http.request":
            self.size += len(message.get("body", b""))
            if self.size > self.limit:
                raise BodyRefused(413, _too_large(self.limit))
            if not message.get("more_body", False):
                self.complete = True
        return message


def _too_large(limit: int, declared: str | None = None) -> str:
    size = f"of {declared} bytes " if declared else ""
    return f"the body {size}is larger than the limit of {limit} bytes (DRIFTWATCH_MAX_BODY_BYTES)"


def _is_dashboard_form(path: str) -> bool:
    return path != "/login" and not path.startswith(("/api/", "/static/"))


async def _signed_in(app: Any, scope: Scope) -> bool:
    """The request carries a session cookie this installation signed (the route itself then
    checks the session is alive, and the form's CSRF token)."""
    cookie = Request(scope).cookies.get(app.state.signer.cookie)
    if not cookie:
        return False
    data = await run_in_threadpool(app.state.signer.read, app.state.engine, cookie)
    return data is not None


async def _verify(app: Any, token: str) -> Principal | None:
    """The key's principal, from the verifier's cache or a short session closed at once."""
    verifier: KeyVerifier = app.state.key_verifier
    cached = verifier.cached(token)
    if cached is not None:
        return cached[0]

    def lookup() -> Principal | None:
        with db.session_scope(app.state.engine) as session:
            principal: Principal | None = verifier.verify(session, token)
            return principal

    found: Principal | None = await run_in_threadpool(lookup)
    return found


def _closing(send: Send, body: BodyMeter) -> Send:
    """``send`` that adds ``Connection: close`` to an answer sent before the body was read
    whole: the rest is never read, and the client knows to open a new connection."""

    async def closing(message: Message) -> None:
        if message["type"] == "http.response.start" and not body.complete:
            message = {**message, "headers": [*message.get("headers", []),
                                              (b"connection", b"close")]}  # fmt: skip
        await send(message)

    return closing


async def _error(
    scope: Scope, receive: Receive, send: Send, status: int, detail: str,
    retry_after: int | None = None,
) -> None:  # fmt: skip
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    response = JSONResponse({"detail": detail}, status_code=status, headers=headers)
    await response(scope, receive, send)
