"""Chronos worker SDK: claim pull jobs from a Chronos server and run them (spec §10-§11).

    from chronos_worker import Chronos, ChronosContext

    chronos = Chronos(api_key="chrns_...", base_url="http://127.0.0.1:8080")

    @chronos.worker.handle("send-email")
    async def send_email(ctx: ChronosContext) -> dict[str, object]:
        ...

    trio.run(chronos.worker.start)   # until `await chronos.worker.stop()`

Producers and tools: `Client` (sync) and `AsyncClient` (async, Trio or asyncio) cover the whole
REST API with typed results (`chronos_worker.client`).

Or run a module's object from the shell: `chronos-worker --server URL --api-key K mod:chronos`
(see `chronos_worker.cli`). Receiving push deliveries instead? `verify_signature(secret, headers,
raw_body)` checks their signature (see `chronos_worker.signature`). This package never imports
`chronos_server`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .chronos import Chronos
    from .client import (
        AsyncClient,
        ChronosAPIError,
        Client,
    )
    from .context import ChronosContext
    from .errors import (
        ChronosAuthError,
        ChronosConfigError,
        ChronosError,
        ChronosNonRetryableError,
    )
    from .signature import verify_signature, verify_standard_webhook
    from .worker import Worker

# Loaded on first use (PEP 562): `from chronos_worker import AsyncClient` must not import trio
# (the TUI runs on asyncio and never loads it), and a producer's import stays light.
_EXPORTS = {
    "AsyncClient": ".client",
    "Client": ".client",
    "ChronosAPIError": ".client",
    "Chronos": ".chronos",
    "ChronosAuthError": ".errors",
    "ChronosConfigError": ".errors",
    "ChronosContext": ".context",
    "ChronosError": ".errors",
    "ChronosNonRetryableError": ".errors",
    "Worker": ".worker",
    "verify_signature": ".signature",
    "verify_standard_webhook": ".signature",
}

__all__ = [
    "AsyncClient",
    "Chronos",
    "ChronosAPIError",
    "ChronosAuthError",
    "ChronosConfigError",
    "ChronosContext",
    "ChronosError",
    "ChronosNonRetryableError",
    "Client",
    "Worker",
    "verify_signature",
    "verify_standard_webhook",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'chronos_worker' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value
