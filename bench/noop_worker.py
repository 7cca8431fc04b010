"""The handlers the benchmarks run through the real `chronos-worker` command:

    chronos-worker --server URL --api-key KEY --concurrency C bench.noop_worker:chronos

`noop` does nothing; `stamp` appends `handler start - scheduled_for` (ms, wall clock) to the file
named by `BENCH_STAMPS`, one line per run.
"""

from __future__ import annotations

import os
import time

from chronos_worker import Chronos, ChronosContext

chronos = Chronos()
_stamps = open(os.environ.get("BENCH_STAMPS", os.devnull), "a", buffering=1)  # noqa: SIM115


@chronos.worker.handle("noop")
async def noop(ctx: ChronosContext) -> None:
    return None


@chronos.worker.handle("stamp")
async def stamp(ctx: ChronosContext) -> None:
    late_ms = time.time() * 1000 - ctx.scheduled_for.timestamp() * 1000
    _stamps.write(f"{late_ms:.3f}\n")
