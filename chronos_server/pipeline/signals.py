"""In-process wake-ups: a coalescing `Nudge` for loops and the `ClaimBoard` for parked claims.

Parked long-polls never query on a timer: each waits on its own event, and the dispatcher wakes
exactly as many waiters of an (account, handler) as it made jobs ready.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import trio


class Nudge:
    """A coalescing wake-up: any number of `set()` calls wake the next `wait()` once."""

    def __init__(self) -> None:
        self._event = trio.Event()

    def set(self) -> None:
        self._event.set()

    async def wait(self) -> None:
        """Wait for a nudge, then re-arm; callers bound the wait with a cancel scope."""
        await self._event.wait()
        self._event = trio.Event()


Key = tuple[str, str]

# How long before a pull job is due admission may hand it to an `early` claimer: a worker
# channel or long-poll claim that asked for the timed start, whose worker starts each job at
# its due instant (`start_in_ms`). A job's
# way from the due instant to its handler (the claim statement, the message, the worker) then
# happens before the instant instead of after it. A hiccup longer than the lead makes a job
# late: 10 -> 20 ms took the channel's p99 at 200 jobs/s from 4.1 to 3.4 ms; 20 -> 100 ms
# covers the claim's own commit, whose WAL flush stalled 40-95 ms now and then on this
# machine's disk (p99 at 200 jobs/s over 10 ms in about half the runs before, in none of 12 after;
# docs/decisions.md "The early hand-off's lead covers a stalled commit").
HAND_OFF_EARLY_MS = 100


class Waiter:
    def __init__(self, keys: list[Key], early: bool = False) -> None:
        self.keys = keys
        # May be handed a job up to `HAND_OFF_EARLY_MS` before it is due (a worker channel
        # whose worker starts each job at its due instant itself); else only once it is due.
        self.early = early
        self.event = trio.Event()
        self.woken_by: Key | None = None
        # Set once the claim this wake-up led to has run (whatever it found): admission's
        # hand-off at a due instant waits for it before its own pass.
        self.attempted = trio.Event()
        # Set by admission's hand-off at a due instant (ms): the claim this wake-up leads to runs
        # as of that instant, since the timer fires up to `HAND_OFF_LEAD_MS` before it.
        self.claim_at: int | None = None


class ClaimBoard:
    """Parked claims per (account, handler), plus what this process knows to be empty.

    A claim whose query found nothing marks its keys empty; any `notify` for a key (a dispatch
    pass here, a NOTIFY from another replica, the fallback check, an undone claim) clears the
    mark. A claim for keys that are all marked empty parks without querying, so idle workers
    re-polling cost the database nothing.
    """

    def __init__(self) -> None:
        self._waiting: dict[Key, dict[Waiter, None]] = {}
        self._generation: dict[Key, int] = {}
        self._empty: set[Key] = set()
        self._early: dict[Key, int] = {}  # how many of a key's waiters are `early`
        self.closing = False
        # Told when another process changed a handler's limits (the store's listener).
        self.on_limits_changed: Callable[[], None] = lambda: None
        # Told when a key gets its first parked `early` claimer (admission's timer may then
        # move up to the early hand-off).
        self.on_early_parked: Callable[[Key], None] = lambda key: None

    def limits_changed(self) -> None:
        self.on_limits_changed()

    def snapshot(self, account_id: str, handlers: list[str]) -> tuple[int, ...]:
        """Call before a claim query; pass the result to `mark_empty` if it found nothing."""
        return tuple(self._generation.get((account_id, h), 0) for h in handlers)

    def mark_empty(self, account_id: str, handlers: list[str], before: tuple[int, ...]) -> None:
        for handler, generation in zip(handlers, before, strict=True):
            key = (account_id, handler)
            if self._generation.get(key, 0) == generation:  # no wake-up raced the query
                self._empty.add(key)

    def known_empty(self, account_id: str, handlers: list[str]) -> bool:
        return all((account_id, h) in self._empty for h in handlers)

    def register(self, account_id: str, handlers: list[str], early: bool = False) -> Waiter:
        waiter = Waiter([(account_id, h) for h in handlers], early)
        if self.closing:
            waiter.event.set()
            return waiter
        for key in waiter.keys:
            queue = self._waiting.setdefault(key, {})
            if early and waiter not in queue:
                self._early[key] = self._early.get(key, 0) + 1
                if self._early[key] == 1:
                    self.on_early_parked(key)
            queue[waiter] = None
        return waiter

    def unregister(self, waiter: Waiter) -> None:
        for key in waiter.keys:
            queue = self._waiting.get(key)
            if queue is not None and waiter in queue:
                del queue[waiter]
                if waiter.early:
                    self._early[key] -= 1
                    if not self._early[key]:
                        del self._early[key]
                if not queue:
                    del self._waiting[key]

    def notify(self, account_id: str, handler: str, count: int) -> int:
        """Wake up to `count` waiters of this (account, handler), oldest first."""
        return len(self.wake(account_id, handler, count))

    def wake(
        self, account_id: str, handler: str, count: int, early_only: bool = False
    ) -> list[Waiter]:
        """`notify`, returning the waiters it woke (with `early_only`, only `early` ones)."""
        key = (account_id, handler)
        self._generation[key] = self._generation.get(key, 0) + 1
        self._empty.discard(key)
        woken: list[Waiter] = []
        queue = self._waiting.get(key, {})
        oldest = (w for w in queue if w.early) if early_only else iter(queue)
        for waiter in list(itertools.islice(oldest, max(0, count))):
            self.unregister(waiter)
            waiter.woken_by = key
            waiter.event.set()
            woken.append(waiter)
        return woken

    def early_parked(self, account_id: str, handler: str) -> bool:
        """Whether an `early` claimer is parked for (account, handler)."""
        return (account_id, handler) in self._early

    def parked_keys(self) -> list[Key]:
        """The (account, handler) pairs someone is waiting for (the store's fallback check)."""
        return list(self._waiting)

    def pass_on(self, waiter: Waiter) -> None:
        """A woken waiter that claimed some other job hands its wake-up to the next one."""
        if waiter.woken_by is not None:
            self.notify(waiter.woken_by[0], waiter.woken_by[1], 1)

    def close(self) -> None:
        """Shutdown: answer every parked long-poll with no job, and refuse new parking."""
        self.closing = True
        for queue in list(self._waiting.values()):
            for waiter in list(queue):
                self.unregister(waiter)
                waiter.event.set()

    @property
    def parked(self) -> int:
        return len({w for queue in self._waiting.values() for w in queue})
