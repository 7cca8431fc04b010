"""Chronos worker SDK: claim pull jobs from a Chronos server and run them (spec §10-§11).

    from chronos_worker import Chronos, ChronosContext

    chronos = Chronos(api_key="chrns_...", base_url="http://127.0.0.1:8080")

    @chronos.worker.handle("send-email")
    async def send_email(ctx: ChronosContext) -> dict[str, object]:
        ...

    trio.run(chronos.worker.start)   # until `await chronos.worker.stop()`

Or run a module's object from the shell: `chronos-worker --server URL --api-key K mod:chronos`
(see `chronos_worker.cli`). Receiving push deliveries instead? `verify_signature(secret, headers,
raw_body)` checks their signature (see `chronos_worker.signature`). This package never imports
`chronos_server`.
"""

from __future__ import annotations

from .chronos import Chronos
from .context import ChronosContext
from .errors import (
    ChronosAuthError,
    ChronosConfigError,
    ChronosError,
    ChronosNonRetryableError,
)
from .signature import verify_signature, verify_standard_webhook
from .worker import Worker

__all__ = [
    "Chronos",
    "ChronosAuthError",
    "ChronosConfigError",
    "ChronosContext",
    "ChronosError",
    "ChronosNonRetryableError",
    "Worker",
    "verify_signature",
    "verify_standard_webhook",
]
