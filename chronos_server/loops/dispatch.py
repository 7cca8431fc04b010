"""Dispatch: moves `queued` pull jobs to `ready` and wakes exactly that many parked claimers;
hands `queued` push jobs to the push sender (`queued → running`), whose requests run in a nursery
this loop owns, bounded by the sender's concurrency limit.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import trio

from chronos_server.errors import StoreUnavailable
from chronos_server.pipeline.services import Pipeline

if TYPE_CHECKING:
    from chronos_server.delivery.push import PushSender

log = logging.getLogger("chronos.dispatch")


async def dispatch_once(p: Pipeline) -> int:
    batches = await p.store.ready_pull_jobs(p.clock.now_ms(), p.settings.batch_size)
    for batch in batches:
        p.board.notify(batch.account_id, batch.handler, batch.count)
    return sum(b.count for b in batches)


async def run_dispatch(
    p: Pipeline,
    sender: PushSender | None = None,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    async with trio.open_nursery() as requests:
        task_status.started()
        while True:
            try:
                moved = await dispatch_once(p)
                pushed = await sender.dispatch_once(requests) if sender else 0
                if moved >= p.settings.batch_size or pushed >= p.settings.batch_size:
                    await trio.lowlevel.checkpoint()
                    continue
                delay = p.settings.idle_seconds
            except StoreUnavailable as exc:
                log.warning("dispatch: store unavailable (%s); backing off", exc)
                delay = p.settings.error_backoff_seconds
            with trio.move_on_after(delay):
                await p.dispatch_nudge.wait()
