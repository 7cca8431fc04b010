"""The Python client of the Chronos API, for producers and tools: `Client` (blocking) and
`AsyncClient` (Trio or asyncio), typed results (`chronos_worker.models`), errors mapped to
`errors.py`, retries of 429 and of network errors for idempotent calls, paging as iterators.

    from chronos_worker import Client

    with Client("http://127.0.0.1:8080", "chrns_...") as chronos:
        job = chronos.create_job(name="welcome", handler="send-email", payload={"to": "a@b.c"})
        for failed in chronos.iter_jobs(status="failed"):
            print(failed.id, failed.last_error)

Every endpoint is one `Call` (`calls.py`); the two clients only send them.
"""

from __future__ import annotations

from chronos_worker.client.async_client import AsyncClient
from chronos_worker.client.errors import (
    APIConnectionError,
    APIStatusError,
    AuthenticationError,
    ChronosAPIError,
    ConflictError,
    FieldError,
    InvalidRequestError,
    NotFoundError,
    RateLimitedError,
    ServerError,
)
from chronos_worker.client.sync_client import Client

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "AsyncClient",
    "AuthenticationError",
    "ChronosAPIError",
    "Client",
    "ConflictError",
    "FieldError",
    "InvalidRequestError",
    "NotFoundError",
    "RateLimitedError",
    "ServerError",
]
