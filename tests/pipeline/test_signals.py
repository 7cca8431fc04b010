"""ClaimBoard's known-empty marks and the API key cache."""

from __future__ import annotations

from chronos_server.api.auth import KeyCache
from chronos_server.core.models import Account
from chronos_server.pipeline.signals import ClaimBoard


def test_empty_mark_set_by_a_fruitless_query_and_cleared_by_any_wake_up() -> None:
    board = ClaimBoard()
    assert not board.known_empty("a", ["h"])
    before = board.snapshot("a", ["h", "g"])
    board.mark_empty("a", ["h", "g"], before)
    assert board.known_empty("a", ["h"]) and board.known_empty("a", ["h", "g"])
    assert not board.known_empty("b", ["h"])  # per account
    board.notify("a", "g", 1)  # a job became ready for g
    assert board.known_empty("a", ["h"]) and not board.known_empty("a", ["h", "g"])


def test_a_wake_up_during_the_query_keeps_the_key_unmarked() -> None:
    board = ClaimBoard()
    before = board.snapshot("a", ["h"])
    board.notify("a", "h", 1)  # dispatch made a job ready while the query ran
    board.mark_empty("a", ["h"], before)
    assert not board.known_empty("a", ["h"])


def test_key_cache_expires_and_can_be_disabled() -> None:
    account = Account("id", "default", "UTC", None, 0)
    cache = KeyCache(5.0)
    cache.put("k", account, now=100.0)
    assert cache.get("k", now=104.9) == account
    assert cache.get("k", now=105.0) is None
    off = KeyCache(0.0)
    off.put("k", account, now=100.0)
    assert off.get("k", now=100.0) is None


def test_early_claimers_are_counted_per_key_and_woken_alone_when_asked() -> None:
    board = ClaimBoard()
    plain = board.register("a", ["h"])
    first = board.register("a", ["h", "i"], early=True)
    second = board.register("a", ["h"], early=True)
    assert board.early_parked("a", "h") and board.early_parked("a", "i")
    assert not board.early_parked("a", "j") and not board.early_parked("b", "h")
    # Early only: the oldest early claimer, never the plain one parked before it.
    assert board.wake("a", "h", 1, early_only=True) == [first]
    assert not plain.event.is_set() and first.event.is_set()
    assert not board.early_parked("a", "i")  # `first` left every key it waited on
    assert board.early_parked("a", "h")
    board.unregister(second)
    board.unregister(second)  # twice: counted once
    assert not board.early_parked("a", "h")
    assert board.wake("a", "h", 1, early_only=True) == []
    assert board.wake("a", "h", 5) == [plain]  # any claimer, oldest first
