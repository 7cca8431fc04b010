"""The client's exception tree: every failure of a call, mapped at the HTTP boundary.

    ChronosAPIError               any failure of a client call; str() is one readable sentence;
    │                             `status` (None without an answer), `code` (the envelope's),
    │                             `errors` (field errors), `retry_after` (seconds, if sent)
    ├── APIConnectionError        no answer: connection refused, unknown host, timeout
    ├── AuthenticationError       401 / 403: the API key is missing, wrong or revoked
    └── APIStatusError            any other non-2xx answer, or one that is not the envelope
        ├── InvalidRequestError   400 / 422 (`errors` names the fields)
        ├── NotFoundError         404
        ├── ConflictError         409 (`invalid_state`, `idempotency_key_conflict`, ...)
        ├── RateLimitedError      429 (after the client's own retries)
        └── ServerError           5xx

httpx exceptions never escape the client: they are mapped here with `raise ... from exc`.
"""

from __future__ import annotations

from dataclasses import dataclass

from chronos_worker.errors import ChronosError


@dataclass(frozen=True)
class FieldError:
    """One entry of the envelope's `errors`: which field, and what is wrong with it."""

    field: str
    message: str


class ChronosAPIError(ChronosError):
    """A client call failed; the message is meant for people."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        errors: tuple[FieldError, ...] = (),
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.errors = errors
        self.retry_after = retry_after


class APIConnectionError(ChronosAPIError):
    """The server did not answer (connection refused, DNS failure, timeout)."""


class AuthenticationError(ChronosAPIError):
    """The server refused the API key (HTTP 401 or 403)."""


class APIStatusError(ChronosAPIError):
    """The server answered with an error, or with something that is not the envelope."""


class InvalidRequestError(APIStatusError):
    """400 / 422: the request was refused; `errors` names the fields."""


class NotFoundError(APIStatusError):
    """404: no such resource (or route)."""


class ConflictError(APIStatusError):
    """409: the resource is in a state that does not allow this, or a key is already held."""


class RateLimitedError(APIStatusError):
    """429: still rate limited after the client's retries; `retry_after` says how long."""


class ServerError(APIStatusError):
    """5xx: the server failed or is unavailable."""


def error_class(status: int) -> type[APIStatusError]:
    if status in (400, 422):
        return InvalidRequestError
    if status == 404:
        return NotFoundError
    if status == 409:
        return ConflictError
    if status == 429:
        return RateLimitedError
    if status >= 500:
        return ServerError
    return APIStatusError
