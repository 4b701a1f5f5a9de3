"""Typed request dependencies: the database session and the caller's key."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, Path, Query, Request
from sqlalchemy.orm import Session

from driftwatch.auth.service import KeyVerifier, Principal, Scope, allows
from driftwatch.db import session_scope
from driftwatch.errors import Forbidden, Unauthorized


def get_session(request: Request) -> Iterator[Session]:
    """One session per request, committed when the endpoint returns (the only commit point)."""
    with session_scope(request.app.state.engine) as session:
        yield session


# scope="function": the commit happens before the response is sent. With the default scope,
# FastAPI sends the response first, so a client could be told "accepted" for a batch whose
# commit then fails (and the SDK would drop it from its spool).
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("missing API key: send 'Authorization: Bearer <key>'")
    return token.strip()


def require(scope: Scope) -> Callable[..., Principal]:
    def dependency(request: Request, session: SessionDep) -> Principal:
        verifier: KeyVerifier = request.app.state.key_verifier
        principal = verifier.verify(session, _bearer(request))
        if principal is None:
            raise Unauthorized("invalid or revoked API key")
        if not allows(principal.scope, scope):
            raise Forbidden(f"this key has scope {principal.scope!r}; this needs {scope!r}")
        request.state.principal = principal
        return principal

    dependency.required_scope = scope  # type: ignore[attr-defined]  # read by the access tests
    return dependency


IngestKey = Annotated[Principal, Depends(require("ingest"))]
ReadKey = Annotated[Principal, Depends(require("read"))]
AdminKey = Annotated[Principal, Depends(require("admin"))]


# Ids are 64-bit in the database (32-bit for models, baselines and silences): a larger number
# is a 422 here, not an overflow below.
MAX_ID = 2**63 - 1
MAX_SMALL_ID = 2**31 - 1
RowId = Annotated[int, Path(ge=1, le=MAX_ID)]
SmallRowId = Annotated[int, Path(ge=1, le=MAX_SMALL_ID)]
OptionalIdQuery = Annotated[int | None, Query(ge=1, le=MAX_ID)]
