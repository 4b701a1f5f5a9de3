"""Text that reaches the database: Postgres text cannot hold a NUL character, so a NUL is
refused where text comes in (URLs here, bodies through ``Text``), with a clear answer. And text
that reaches people: counts with their noun (``plural``), and URLs without their secrets
(``redact_url``: webhook URLs carry tokens in their query string or credentials before the
host; only the sender sees them whole)."""

from __future__ import annotations

import logging
import re
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator
from starlette.types import ASGIApp, Receive, Scope, Send

NUL = "\x00"


def no_nul(value: str) -> str:
    if NUL in value:
        raise ValueError("must not contain NUL characters")
    return value


Text = Annotated[str, AfterValidator(no_nul)]

# C0 controls (NUL among them), DEL and C1 controls, and the bidirectional-text controls
# (U+202A-U+202E, U+2066-U+2069, U+200E/U+200F, U+061C: they make one name read as another):
# never part of a name people read
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
CONTROL_PROBLEM = "must not contain NUL, control or text-direction characters"


def control_free(value: str) -> str:
    if CONTROL.search(value):
        raise ValueError(CONTROL_PROBLEM)
    return value


Name = Annotated[str, AfterValidator(control_free)]


def plural(count: int, noun: str, many: str | None = None) -> str:
    """``1 channel``, ``2 channels``, ``0 channels`` (``many``: an irregular plural)."""
    return f"{count:,} {noun if count == 1 else many or noun + 's'}"


REDACTED = "REDACTED"
_URL_IN_TEXT = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>`]+")


def redact_url(url: str) -> str:
    """``scheme://host[:port]/path``: credentials (``user:pass@``) removed, a query string
    replaced by ``?REDACTED``, a fragment dropped. Text that is not a URL (a Slack channel, the
    ``slack`` endpoint) comes back as it is, but for a query string."""
    try:
        parts = urlsplit(url)
    except ValueError:
        parts = None
    if parts is None or not parts.scheme or not parts.netloc:
        head, question, _query = url.partition("?")
        head = head.rpartition("@")[2] if "://" in head else head
        return head + (f"?{REDACTED}" if question else "")
    host = parts.netloc.rpartition("@")[2]
    try:
        parts.port  # noqa: B018 - a "port" that is no number: a password cut by a stray / or ?
    except ValueError:
        return f"{parts.scheme}://{REDACTED}"
    query = f"?{REDACTED}" if parts.query or url.split("#", 1)[0].endswith("?") else ""
    return f"{parts.scheme}://{host}{parts.path}{query}"


def redact_urls_in(text: str) -> str:
    """Every URL in a text (an error message, a log line) redacted as ``redact_url`` does."""
    return _URL_IN_TEXT.sub(lambda match: redact_url(match.group(0)), text)


class RedactUrls(logging.Filter):
    """A log filter: the record's message with every URL in it redacted."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_urls_in(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


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
