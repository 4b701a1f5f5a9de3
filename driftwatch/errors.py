"""One error base that carries its HTTP status; one handler renders every subclass."""

from __future__ import annotations


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
