"""One error base that carries its HTTP status; one handler renders every subclass, as the
one error body every status shares (``ErrorOut``)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ErrorItem(BaseModel):
    """One problem of a body or parameter of the wrong shape."""

    loc: list[str | int] = Field(
        description='where: "body", "query" or "path", then the '
        "field names and list positions down to the value"
    )
    msg: str
    type: str = Field(description="pydantic's error type, such as `missing` or `int_parsing`")


class ErrorOut(BaseModel):
    """The body of every error answer of the API."""

    detail: str = Field(description="what is wrong, naming the field, record or item")
    errors: list[ErrorItem] | None = Field(
        default=None, description="422 for a body or parameter of the wrong shape: each problem"
    )


class DriftwatchError(Exception):
    status_code = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(DriftwatchError):
    status_code = 400


class Unauthorized(DriftwatchError):
    status_code = 401


class Forbidden(DriftwatchError):
    status_code = 403


class NotFound(DriftwatchError):
    status_code = 404


class Conflict(DriftwatchError):
    status_code = 409


class PayloadTooLarge(DriftwatchError):
    status_code = 413


class InvalidPayload(DriftwatchError):
    """The request body is not of the documented shape (rendered as 422)."""

    status_code = 422


class RetryLater(DriftwatchError):
    """A refusal that passes: ``retry_after`` seconds is sent as ``Retry-After``."""

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TooManyRequests(RetryLater):
    """Over a rate limit."""

    status_code = 429


class ServiceUnavailable(RetryLater):
    """Busy for now: another process holds what the request needs."""

    status_code = 503
