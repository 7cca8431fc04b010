"""`LimitedHandlers` (the process's copy of which handlers have limits) and who it wakes: loaded
at start, reloaded when another process announces a change, and a finish frees a slot only for
a limited handler's execution."""

from __future__ import annotations

import random

import trio
import trio.testing

from chronos_server.clock import TrioClock
from chronos_server.pipeline.limits import LimitedHandlers
from chronos_server.pipeline.services import Pipeline
from chronos_server.store.sqlite import open_sqlite_store

T0 = 1_800_000_000_000


def test_covers_by_handler_and_by_account() -> None:
    limited = LimitedHandlers()
    limited.replace({("a", "h"), ("a", "g"), ("b", "h")})
    assert limited.covers("a", "h") and not limited.covers("a", "x")
    assert not limited.covers("a", None)
    limited.discard("a", "h")
    assert limited.covers_account("a")
    limited.discard("a", "g")
    assert not limited.covers_account("a") and limited.covers_account("b")
    limited.add("c", "h")
    limited.add("c", "h")
    limited.discard("c", "h")
    assert not limited.covers_account("c")


async def test_loaded_at_start_and_reloaded_when_another_process_changes_limits(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_sqlite_store("sqlite://:memory:", inline=True) as store:
        account, _ = await store.ensure_account("acme", T0)
        await store.set_handler_limits(account.id, "h", 1, None, T0)
        p = Pipeline(store, TrioClock(T0), random.Random(1))
        async with trio.open_nursery() as nursery:
            await nursery.start(p.limited.run, store)
            assert p.limited.covers(account.id, "h")
            await store.set_handler_limits(account.id, "g", None, 1.0, T0)  # "another process"
            assert not p.limited.covers(account.id, "g")
            p.board.limits_changed()  # what the store's listener calls on its NOTIFY
            await trio.testing.wait_all_tasks_blocked()
            assert p.limited.covers(account.id, "g")
            nursery.cancel_scope.cancel()


async def test_a_finish_frees_a_slot_only_for_a_limited_handlers_execution() -> None:
    p = Pipeline(None, TrioClock(T0), random.Random(1))  # type: ignore[arg-type]
    p.limited.replace({("a", "h")})
    p.leases.add("mine-limited", T0 + 1, limited=True)
    p.leases.add("mine-free", T0 + 1)
    assert p.frees_limited_slot("a", "mine-limited")
    assert not p.frees_limited_slot("a", "mine-free")  # exact for leases handed out here
    assert p.frees_limited_slot("a", "elsewhere")  # another replica's: the account has limits
    assert not p.frees_limited_slot("b", "elsewhere")
    p.leases.settle("mine-limited")
    assert not p.leases.limited
