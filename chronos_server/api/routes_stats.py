"""`GET /v1/stats`: live queue counts per handler and state, the oldest `ready` job per handler,
and completed/failed per minute — the dashboard's overview, from indexed aggregate queries.

Open states are counted whatever their age; terminal states (`completed`, `failed`,
`cancelled`) only when they finished inside the window (default 60 minutes, at most 1440).
"""

from __future__ import annotations

from typing import Any

from chronos_server.api.context import Call, Reply, ok
from chronos_server.api.routing import Endpoint, Routes
from chronos_server.api.timefmt import iso
from chronos_server.core.models import JobStatus

MINUTE_MS = 60_000


async def stats(call: Call) -> Reply:
    window = call.integer("window_minutes", 60, 1, 1440)
    pipeline = call.pipeline
    now = pipeline.clock.now_ms()
    first_minute = now // MINUTE_MS - window + 1
    found = await pipeline.store.stats(call.account.id, first_minute * MINUTE_MS)
    handlers = sorted(
        {h for h, _ in found.counts} | set(found.oldest_ready), key=lambda h: (h is None, h or "")
    )
    totals = {s.value: 0 for s in JobStatus}
    rows: list[dict[str, Any]] = []
    for handler in handlers:
        counts = {s.value: found.counts.get((handler, s), 0) for s in JobStatus}
        for state, n in counts.items():
            totals[state] += n
        oldest = found.oldest_ready.get(handler)
        rows.append(
            {
                "handler": handler,
                "counts": counts,
                "oldest_ready_at": iso(oldest),
                "oldest_ready_age_ms": None if oldest is None else max(0, now - oldest),
            }
        )
    throughput = [
        {
            "minute": iso(minute * MINUTE_MS),
            "completed": found.per_minute.get((minute, JobStatus.COMPLETED), 0),
            "failed": found.per_minute.get((minute, JobStatus.FAILED), 0),
        }
        for minute in range(first_minute, first_minute + window)
    ]
    data = {
        "generated_at": iso(now),
        "window_minutes": window,
        "handlers": rows,
        "totals": totals,
        "throughput": throughput,
    }
    return ok(data, "Stats")


ROUTES: Routes = [("GET", "/v1/stats", Endpoint(stats, frozenset({"window_minutes"})))]
