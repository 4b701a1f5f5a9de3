"""Text that reaches the database: Postgres text cannot hold a NUL character, so a NUL is
refused where text comes in (URLs here, bodies through ``Text``), with a clear answer. And text
that reaches people: counts with their noun (``plural``)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator
from starlette.types import ASGIApp, Receive, Scope, Send

NUL = "\x00"


def no_nul(value: str) -> str:
    if NUL in value:
        raise ValueError("must not contain NUL characters")
    return value


Text = Annotated[str, AfterValidator(no_nul)]

# C0 controls (NUL among them), DEL and C1 controls: never part of a name people read
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def control_free(value: str) -> str:
    if CONTROL.search(value):
        raise ValueError("must not contain NUL or control characters")
    return value


Name = Annotated[str, AfterValidator(control_free)]


def plural(count: int, noun: str, many: str | None = None) -> str:
    """``1 channel``, ``2 channels``, ``0 channels`` (``many``: an irregular plural)."""
    return f"{count:,} {noun if count == 1 else many or noun + 's'}"


class RefuseNulInUrls:
    """A 422 for a request whose path or query string holds a NUL (``%00``), before routing."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            query: bytes = scope.get("query_string", b"")
            if NUL in scope.get("path", "") or b"%00" in query or NUL.encode() in query:
                await _refuse(send)
                return
        await self.app(scope, receive, send)


async def _refuse(send: Send) -> None:
    body = b'{"detail": "the URL must not contain NUL characters (%00)"}'
    headers: list[Any] = [(b"content-type", b"application/json"),
                          (b"content-length", str(len(body)).encode())]  # fmt: skip
    await send({"type": "http.response.start", "status": 422, "headers": headers})
    await send({"type": "http.response.body", "body": body})
