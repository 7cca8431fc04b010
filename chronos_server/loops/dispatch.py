"""Dispatch: moves `queued` pull jobs to `ready` and wakes exactly that many parked claimers.

Push jobs stay `queued` here until the push sender (its own issue) takes them `queued → running`.
"""

from __future__ import annotations

import logging

import trio

from chronos_server.errors import StoreUnavailable
from chronos_server.loops.context import Pipeline

log = logging.getLogger("chronos.dispatch")


async def dispatch_once(p: Pipeline) -> int:
    batches = await p.store.ready_pull_jobs(p.clock.now_ms(), p.settings.batch_size)
    for batch in batches:
        p.board.notify(batch.account_id, batch.handler, batch.count)
    return sum(b.count for b in batches)


async def run_dispatch(
    p: Pipeline, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    task_status.started()
    while True:
        try:
            moved = await dispatch_once(p)
            if moved >= p.settings.batch_size:
                await trio.lowlevel.checkpoint()
                continue
            delay = p.settings.idle_seconds
        except StoreUnavailable as exc:
            log.warning("dispatch: store unavailable (%s); backing off", exc)
            delay = p.settings.error_backoff_seconds
        with trio.move_on_after(delay):
            await p.dispatch_nudge.wait()
