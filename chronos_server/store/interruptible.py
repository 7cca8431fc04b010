"""`run_interruptible`: blocking work in a worker thread that a Trio cancellation really stops.

`trio.to_thread.run_sync` cannot stop a thread: a cancelled caller either waits for the thread
(the default) or abandons it — and an abandoned PostgreSQL query keeps running on the server.
Here the caller lets go at once (`abandon_on_cancel=True`), then, in a shielded and time-bounded
cleanup, calls `interrupt()` in another thread (for a query: `conn.cancel_safe()`, which makes
the server abort it) and waits for the work to finish, so the cancelled call does not return
while the thread still holds its connection, unless the work ignores the interrupt for
`grace_seconds`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TypeVar

import trio

R = TypeVar("R")
INTERRUPT_GRACE_SECONDS = 5.0


async def run_interruptible(
    work: Callable[[], R],
    interrupt: Callable[[], bool],
    *,
    limiter: trio.CapacityLimiter,
    grace_seconds: float = INTERRUPT_GRACE_SECONDS,
) -> R:
    """Run `work()` in a thread under `limiter` and return its result.

    If the calling task is cancelled while `work` runs, `interrupt()` is called in another thread;
    it returns whether there was anything in flight to stop, and only then is the end of `work`
    awaited (up to `grace_seconds`). `work` must itself notice an interrupt that came before it
    started anything interruptible. The limiter slot stays taken until the thread really ends.
    """
    token = trio.lowlevel.current_trio_token()
    finished = trio.Event()

    def body() -> R:
        try:
            return work()
        finally:
            # Queued before to_thread reports the result, so it is set by the time we resume.
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(finished.set)

    try:
        return await trio.to_thread.run_sync(body, limiter=limiter, abandon_on_cancel=True)
    finally:
        if not finished.is_set():  # cancelled while the work was still running
            with trio.move_on_after(grace_seconds) as cleanup:
                cleanup.shield = True
                if await trio.to_thread.run_sync(interrupt):
                    await finished.wait()
