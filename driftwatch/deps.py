"""Typed request dependencies: the database session and the caller's key."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, Path, Query, Request
from sqlalchemy.orm import Session

from driftwatch.auth.service import KeyVerifier, Principal, Scope
from driftwatch.db import session_scope
from driftwatch.errors import Forbidden, Unauthorized
from driftwatch.guard import INVALID_KEY, MISSING_KEY, bearer_token, scope_refusal


def get_session(request: Request) -> Iterator[Session]:
    """One session per request, committed when the endpoint returns (the only commit point)."""
    with session_scope(request.app.state.engine) as session:
        yield session


# scope="function": the commit happens before the response is sent. With the default scope,
# FastAPI sends the response first, so a client could be told "accepted" for a batch whose
# commit then fails (and the SDK would drop it from its spool).
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def require(scope: Scope) -> Callable[..., Principal]:
    """The caller's key, of ``scope``. ``guard.RequestGuard`` checks it before the body is read
    and leaves it in the request's state; checked here again only where no guard ran. Never
    with the request's session: its connection would be held while the body is read."""

    def dependency(request: Request) -> Principal:
        principal: Principal | None = getattr(request.state, "principal", None)
        if principal is None:
            token = bearer_token({k.lower(): v for k, v in request.headers.items()})
            if token is None:
                raise Unauthorized(MISSING_KEY)
            verifier: KeyVerifier = request.app.state.key_verifier
            with session_scope(request.app.state.engine) as session:
                principal = verifier.verify(session, token)
            if principal is None:
                raise Unauthorized(INVALID_KEY)
        refusal = scope_refusal(principal, scope)
        if refusal is not None:
            raise Forbidden(refusal)
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
