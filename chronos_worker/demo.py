"""A demo worker for the quick start: one handler, `demo.tick`, that logs its payload.

    chronos-worker --server http://127.0.0.1:8080 --api-key chrns_... chronos_worker.demo:chronos

`chronos` is built from the environment (`CHRONOS_API_KEY`, `CHRONOS_BASE_URL`), which the
`chronos-worker` command fills from its options before importing this module; importing it
without an API key in the environment raises `ChronosConfigError`.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from .chronos import Chronos
from .context import ChronosContext

log = logging.getLogger("chronos_worker.demo")

chronos = Chronos()
worker = chronos.worker


@worker.handle("demo.tick")
async def tick(ctx: ChronosContext) -> dict[str, object]:
    """Log the job and its payload; return when it was handled."""
    log.info(
        "demo.tick job=%s attempt=%d scheduled_for=%s payload=%r",
        ctx.job_id,
        ctx.attempt,
        ctx.scheduled_for.isoformat(),
        ctx.payload,
    )
    handled_at = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {"ok": True, "handled_at": handled_at}
