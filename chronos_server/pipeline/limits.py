"""`LimitedHandlers`: this process's copy of which (account, handler) pairs have limits, so that
a finished execution of one wakes admission (a slot freed: its waiting jobs go on at once) while
the finishes of every other handler cost nothing.

Correctness never depends on it: the limits themselves are applied in SQL under the limit row's
lock. It only decides who gets nudged. It is loaded at start, changed here when this process's
API changes a limit, and reloaded when another process announces a change (PostgreSQL NOTIFY,
`WakeBoard.limits_changed`) or the listener reconnects. A stale copy costs at most a delay, up to
admission's idle pass, never a job.
"""

from __future__ import annotations

import logging

import trio

from chronos_server.errors import StoreUnavailable
from chronos_server.pipeline.signals import Key, Nudge
from chronos_server.store.base import Store

log = logging.getLogger("chronos.limits")


class LimitedHandlers:
    def __init__(self) -> None:
        self._keys: set[Key] = set()
        self._accounts: dict[str, int] = {}
        self._stale = Nudge()

    def covers(self, account_id: str, handler: str | None) -> bool:
        return handler is not None and (account_id, handler) in self._keys

    def covers_account(self, account_id: str) -> bool:
        return account_id in self._accounts

    def replace(self, keys: set[Key]) -> None:
        self._keys = set(keys)
        self._accounts = {}
        for account_id, _ in keys:
            self._accounts[account_id] = self._accounts.get(account_id, 0) + 1

    def add(self, account_id: str, handler: str) -> None:
        if (account_id, handler) not in self._keys:
            self._keys.add((account_id, handler))
            self._accounts[account_id] = self._accounts.get(account_id, 0) + 1

    def discard(self, account_id: str, handler: str) -> None:
        if (account_id, handler) in self._keys:
            self._keys.discard((account_id, handler))
            left = self._accounts[account_id] - 1
            if left:
                self._accounts[account_id] = left
            else:
                del self._accounts[account_id]

    def changed_elsewhere(self) -> None:
        """Another process changed limits (or we may have missed that it did): reload."""
        self._stale.set()

    async def run(
        self,
        store: Store,
        retry_seconds: float = 1.0,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Load now, then again on each `changed_elsewhere`, until cancelled."""
        started = False
        while True:
            try:
                self.replace(await store.limited_handlers())
            except StoreUnavailable as exc:
                log.warning("limits: store unavailable (%s); loading again soon", exc)
                self._stale.set()
                await trio.sleep(retry_seconds)
            if not started:
                task_status.started()
                started = True
            await self._stale.wait()
