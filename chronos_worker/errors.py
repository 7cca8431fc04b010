"""The SDK's exception tree: what the worker package raises and what handlers may raise.

    ChronosError                  base class; also raised by `handle()` and `start()` misuse
    ├── ChronosConfigError        an invalid option given to `Chronos(...)` (spec §11.1)
    ├── ChronosAuthError          the server answered 401/403; `start()` stops and raises it
    ├── ChronosNonRetryableError  raised BY A HANDLER to fail the job at once (G-42)
    └── ChronosRequestError       a request to the server failed; the poll loop logs it and
                                  retries, so it never escapes `start()` (`status` is None for
                                  network errors and timeouts, else the HTTP status; `code` the
                                  error envelope's code when the server sent one)

httpx exceptions are mapped to `ChronosRequestError` at the HTTP boundary (`api.py`) with
`raise ... from exc`, so nothing above that layer knows about httpx.
"""

from __future__ import annotations


class ChronosError(Exception):
    """Base class of every error the SDK raises."""


class ChronosConfigError(ChronosError):
    """An option passed to `Chronos(...)` (or the `chronos-worker` command) is invalid."""


class ChronosAuthError(ChronosError):
    """The server refused the API key (HTTP 401 or 403)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class ChronosNonRetryableError(ChronosError):
    """Raise from a handler to report the failure with `retryable: false`.

    The server then fails the job at once instead of scheduling another attempt (G-42).
    Every other exception a handler raises is reported as retryable.
    """


class ChronosRequestError(ChronosError):
    """A claim or report request failed (network error, timeout or unexpected HTTP status)."""

    def __init__(
        self,
        message: str,
        status: int | None = None,
        retry_after: float | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after
        self.code = code

    @property
    def transient(self) -> bool:
        """True when trying again later may succeed: no answer, 429 or 5xx."""
        return self.status is None or self.status == 429 or self.status >= 500

    @property
    def unreachable(self) -> bool:
        """True when the server could not be reached or could not serve: no answer or 5xx."""
        return self.status is None or self.status >= 500
