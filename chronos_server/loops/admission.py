"""Admission: spawns jobs from due schedule slots and moves due jobs `admitting` → `queued`.

Event-driven: after each pass it sleeps until the earliest `run_at` / `next_run_at` it knows of,
or until nudged (a new job, a retry, a schedule change), capped by `idle_seconds` as a safety net.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import trio

from chronos_server.errors import StoreUnavailable
from chronos_server.loops.context import Pipeline

log = logging.getLogger("chronos.admission")


@dataclass(frozen=True)
class AdmissionResult:
    spawned: int
    queued: int
    more: bool


async def admission_once(p: Pipeline) -> AdmissionResult:
    now = p.clock.now_ms()
    batch = p.settings.batch_size
    spawned = await p.store.spawn_due_schedules(now, batch)
    taken = await p.store.take_due_jobs(now, batch)
    queued = await p.store.queue_admitted(taken, now) if taken else 0
    return AdmissionResult(spawned, queued, more=spawned >= batch or len(taken) >= batch)


async def seconds_until_due(p: Pipeline) -> float:
    wake = await p.store.next_wakeup()
    if wake is None:
        return p.settings.idle_seconds
    return min(p.settings.idle_seconds, max(0.0, (wake - p.clock.now_ms()) / 1000))


async def run_admission(
    p: Pipeline, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    task_status.started()
    while True:
        try:
            result = await admission_once(p)
            if result.queued:
                p.dispatch_nudge.set()
            if result.more:
                await trio.lowlevel.checkpoint()
                continue
            delay = await seconds_until_due(p)
        except StoreUnavailable as exc:
            log.warning("admission: store unavailable (%s); backing off", exc)
            delay = p.settings.error_backoff_seconds
        # A due time that is already past after a full pass means a row we cannot move yet;
        # the 1 ms floor keeps that from becoming a busy loop.
        delay = max(delay, 0.001)
        p.admission_wakes_at = p.clock.now_ms() + int(delay * 1000)
        with trio.move_on_after(delay):
            await p.admission_nudge.wait()
        p.admission_wakes_at = None
