"""`GET /v1/stats`: live queue counts per handler and state, the oldest `ready` job per handler,
and completed/failed per minute — the dashboard's overview, from indexed aggregate queries.

Per handler, also its limits (extension, README "Handler limits"), how many of its `queued` jobs
wait for them (`limited`) and why (`queued_reason`: `max_running` while as many jobs as allowed
are `ready` or `running`, else `max_per_second`).

Open states are counted whatever their age; terminal states (`completed`, `failed`,
`cancelled`) only when they finished inside the window (default 60 minutes, at most 1440).
"""

from __future__ import annotations

from typing import Any

from chronos_server.api.context import Call, Reply, ok
from chronos_server.api.routing import Endpoint, Routes
from chronos_server.api.timefmt import iso
from chronos_server.core.models import JobStatus
from chronos_server.store.base import Stats

MINUTE_MS = 60_000


async def stats(call: Call) -> Reply:
    window = call.integer("window_minutes", 60, 1, 1440)
    pipeline = call.pipeline
    now = pipeline.clock.now_ms()
    first_minute = now // MINUTE_MS - window + 1
    found = await pipeline.store.stats(call.account.id, first_minute * MINUTE_MS)
    handlers = sorted(
        {h for h, _ in found.counts} | set(found.oldest_ready) | set(found.limits),
        key=lambda h: (h is None, h or ""),
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
                **_limits_fields(found, handler, counts),
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


def _limits_fields(found: Stats, handler: str | None, counts: dict[str, int]) -> dict[str, Any]:
    """The handler's limits, how many of its `queued` jobs wait for them, and why."""
    limit = found.limits.get(handler) if handler is not None else None
    limited = found.limited.get(handler, 0) if handler is not None else 0
    reason = None
    if limit is not None and limited:
        active = counts["ready"] + counts["running"]
        full = limit.max_running is not None and active >= limit.max_running
        reason = "max_running" if full or limit.max_per_second is None else "max_per_second"
    return {
        "limits": None
        if limit is None
        else {"max_running": limit.max_running, "max_per_second": limit.max_per_second},
        "limited": limited,
        "queued_reason": reason,
    }


ROUTES: Routes = [("GET", "/v1/stats", Endpoint(stats, frozenset({"window_minutes"})))]
