"""Admission: spawns jobs from due schedule slots and moves due jobs on — pull jobs `ready`
(waking that many parked claims), push jobs `queued` for the sender — in ONE transaction per
pass (`Store.admit_due`), which also says when the next thing falls due.

Event-driven: after each pass it sleeps until that next due time, or until nudged (a new job, a
retry, a schedule change), capped by `idle_seconds` as a safety net. Nothing polls on a timer
between a due instant and a claimer's wake-up.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import trio

from chronos_server.errors import StoreUnavailable
from chronos_server.pipeline.services import Pipeline
from chronos_server.pipeline.signals import HAND_OFF_EARLY_MS
from chronos_server.telemetry import logs

log = logging.getLogger("chronos.admission")
HAND_OFF_SECONDS = 0.05
# The hand-off timer fires this much before a due instant: a sleep ends up to 1 ms late (epoll
# waits in whole milliseconds, rounded up), so aiming 1 ms early lands the claim at the instant
# instead of 0-2 ms after it. The claim then runs "as of" the due instant (its `now`), so the
# job is never taken, nor recorded as started, before it is due.
HAND_OFF_LEAD_MS = 1
# Push jobs are admitted and started this long before they fall due; the sender builds and signs
# each request then and sends it at the due instant (`PushSender.attempt`). A burst of a
# thousand push jobs due at once costs a few hundred milliseconds of store writes and request
# building: done ahead, the requests leave at the instant like a bare client's. The jobs show as
# `running` (no longer cancellable) from then on; their executions start at the due instant.
PUSH_LEAD_MS = 500


@dataclass(frozen=True)
class AdmissionResult:
    spawned: int
    ready: int
    queued: int
    more: bool
    next_wakeup: int | None = None
    next_claimable: tuple[str, str] | None = None


async def admission_once(p: Pipeline) -> AdmissionResult:
    batch = p.settings.batch_size
    admitted = await p.store.admit_due(p.clock.now_ms(), batch, push_lead=PUSH_LEAD_MS)
    p.metrics.job_created("schedule", admitted.spawned)
    if logs.states_enabled() and (admitted.spawned or admitted.taken or admitted.released):
        logs.state_change(
            "admission: %d job(s) spawned, %d released, %d moved on (%d ready, %d queued)",
            admitted.spawned,
            admitted.released,
            admitted.taken,
            sum(r.count for r in admitted.ready),
            admitted.queued_push,
        )
    for ready in admitted.ready:
        p.board.notify(ready.account_id, ready.handler, ready.count)
    if admitted.queued_push:
        p.dispatch_nudge.set()
    return AdmissionResult(
        spawned=admitted.spawned,
        ready=sum(r.count for r in admitted.ready),
        queued=admitted.queued_push,
        # Slots spawned: their jobs may be due now (on PostgreSQL they are admitted next pass).
        more=admitted.spawned > 0 or admitted.taken >= batch or admitted.limited_more,
        next_wakeup=admitted.next_wakeup,
        next_claimable=admitted.next_claimable,
    )


def seconds_until(p: Pipeline, wake: int | None) -> float:
    if wake is None:
        return p.settings.idle_seconds
    return min(p.settings.idle_seconds, max(0.0, (wake - p.clock.now_ms()) / 1000))


async def run_admission(
    p: Pipeline, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    task_status.started()
    while True:
        result: AdmissionResult | None = None
        try:
            result = await admission_once(p)
            p.store_health.ok()
            if result.more:
                await trio.lowlevel.checkpoint()
                continue
            wake = result.next_wakeup
            if wake is not None and result.next_claimable is not None:
                wake -= lead_ms(p, result.next_claimable)
            delay = seconds_until(p, wake)
        except StoreUnavailable as exc:
            p.store_health.failed("admission", exc)
            delay = p.settings.error_backoff_seconds
        # A due time that is already past after a full pass means a row we cannot move yet;
        # the 1 ms floor keeps that from becoming a busy loop.
        delay = max(delay, 0.001)
        fired = await sleep_until_due(p, result, delay)
        p.admission_wakes_at = None
        if fired and result is not None:
            await hand_off(p, result)


async def sleep_until_due(p: Pipeline, result: AdmissionResult | None, delay: float) -> bool:
    """Wait `delay` seconds or for a nudge; True if the time ran out. Planned for a plain
    hand-off (1 ms ahead), the timer moves up to the early one (`HAND_OFF_EARLY_MS`) when an
    early claimer parks meanwhile for the due job: one that was between two claims when the
    pass ended (its answer on the way) gets the job ahead all the same, without a pass."""
    deadline = trio.current_time() + delay
    p.admission_wakes_at = p.clock.now_ms() + int(delay * 1000)
    key = result.next_claimable if result is not None else None
    due = result.next_wakeup if result is not None else None
    while True:
        with trio.CancelScope(deadline=deadline) as timer:
            if key is not None and due is not None and not p.board.early_parked(*key):

                def parked(parked_key: tuple[str, str], watched: tuple[str, str] = key) -> None:
                    if parked_key == watched:
                        timer.cancel()

                p.board.on_early_parked = parked
            try:
                await p.admission_nudge.wait()
                return False
            finally:
                p.board.on_early_parked = _ignore
        if trio.current_time() >= deadline or key is None or due is None:
            return True
        # An early claimer parked: aim at the early hand-off instead, once.
        early = seconds_until(p, due - HAND_OFF_EARLY_MS)
        deadline = min(deadline, trio.current_time() + early)
        p.admission_wakes_at = min(
            p.admission_wakes_at or due, p.clock.now_ms() + int(early * 1000)
        )
        key = None


def _ignore(key: tuple[str, str]) -> None:
    pass


def lead_ms(p: Pipeline, key: tuple[str, str]) -> int:
    """How long before a pull job of `key` falls due to wake for its hand-off."""
    if p.board.early_parked(*key):
        return HAND_OFF_EARLY_MS
    return HAND_OFF_LEAD_MS


async def hand_off(p: Pipeline, result: AdmissionResult) -> None:
    """Woken at a due instant: if a claimer of the due pull job is parked here and the store's
    claims take due jobs themselves, wake it first, so the job goes from `pending` to the
    worker in one statement; the pass that follows admits the rest (and, should the claimer
    lose the row to it, makes the job `ready` and wakes the claimer again). Woken up to
    `HAND_OFF_EARLY_MS` ahead, only an `early` claimer is woken (its worker starts the job at
    the instant); if none is parked any more, the loop's next pass waits for the instant."""
    key, due = result.next_claimable, result.next_wakeup
    if key is None or due is None:
        return
    ahead = due - p.clock.now_ms()
    if ahead > HAND_OFF_EARLY_MS:
        return
    for waiter in p.board.wake(key[0], key[1], 1, early_only=ahead > HAND_OFF_LEAD_MS):
        waiter.claim_at = due
        # Let its claim run first (bounded: a claimer that vanished must not hold admission).
        with trio.move_on_after(HAND_OFF_SECONDS):
            await waiter.attempted.wait()
