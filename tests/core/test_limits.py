"""The token bucket and the release decision of per-handler limits (`core/limits.py`), with an
explicit clock: a simulated stream of releases holds the rate within 10 % over short windows."""

from __future__ import annotations

import pytest

from chronos_server.core.limits import (
    HandlerLimit,
    Release,
    after_release,
    burst,
    initial_tokens,
    next_token_at,
    plan_release,
    tokens_now,
)

T0 = 1_800_000_000_000


def limit(
    max_running: int | None = None,
    rate: float | None = None,
    tokens: float = 0.0,
    at: int = T0,
) -> HandlerLimit:
    return HandlerLimit("a", "h", max_running, rate, tokens, at, T0, T0)


@pytest.mark.parametrize(
    ("rate", "expected"), [(0.5, 1.0), (1.0, 1.0), (10.0, 1.0), (25.0, 2.5), (1000.0, 100.0)]
)
def test_the_burst_is_a_tenth_of_a_second_and_at_least_one(rate: float, expected: float) -> None:
    assert burst(rate) == expected


def test_the_bucket_refills_at_the_rate_up_to_the_burst_and_not_backwards() -> None:
    lim = limit(rate=100.0, tokens=0.0)
    assert tokens_now(lim, T0 + 50) == pytest.approx(5.0)
    assert tokens_now(lim, T0 + 5_000) == 10.0
    assert tokens_now(lim, T0 - 1_000) == 0.0  # a clock stepped back


@pytest.mark.parametrize(
    ("max_running", "active", "wanted", "count"),
    [
        (2, 0, 500, 2),
        (2, 1, 500, 1),
        (2, 2, 500, 0),
        (2, 5, 500, 0),
        (10, 0, 3, 3),
        (None, 9, 7, 7),
    ],
)
def test_max_running_leaves_what_is_free(
    max_running: int | None, active: int, wanted: int, count: int
) -> None:
    planned = plan_release(limit(max_running), active, wanted, T0)
    assert planned == Release(count, 0.0, None)  # no rate: never a timed wake-up


def test_the_rate_binds_with_the_next_token_time_and_max_running_binds_without() -> None:
    rated = limit(max_running=5, rate=40.0, tokens=1.5)
    assert plan_release(rated, 0, 500, T0) == Release(1, 0.5, T0 + 13)
    assert plan_release(rated, 5, 500, T0) == Release(0, 1.5, None)  # full: a finish wakes it


def test_fewer_jobs_than_planned_spend_fewer_tokens_and_need_no_wake_up() -> None:
    rated = limit(rate=100.0, tokens=10.0)
    planned = plan_release(rated, 0, 500, T0)
    assert planned.count == 10
    assert after_release(rated, planned, 3, T0) == Release(3, 7.0, None)


def test_next_token_time_is_never_now_while_the_bucket_is_short() -> None:
    assert next_token_at(0.0, 2.0, T0) == T0 + 500
    assert next_token_at(0.999999, 2.0, T0) == T0 + 1
    assert next_token_at(1.0, 2.0, T0) == T0


def test_a_new_limit_starts_full_and_a_changed_one_keeps_its_tokens_within_the_new_burst() -> None:
    assert initial_tokens(50.0, None, T0) == 5.0
    assert initial_tokens(None, None, T0) == 0.0
    previous = limit(rate=50.0, tokens=2.0)
    assert initial_tokens(100.0, previous, T0) == 2.0
    assert initial_tokens(5.0, previous, T0) == 1.0
    assert initial_tokens(5.0, limit(max_running=3), T0) == 1.0


@pytest.mark.parametrize("rate", [0.5, 2.0, 10.0, 37.0, 250.0])
def test_releases_woken_at_each_token_time_hold_the_rate_within_ten_percent(rate: float) -> None:
    """Always a job waiting; the caller wakes exactly when told. Over any window from 2 s on
    (10 s at 0.5/s), no more than `rate * window` plus 10 % start."""
    lim, now, starts = limit(rate=rate, tokens=burst(rate)), T0, []
    while now < T0 + 60_000:
        planned = plan_release(lim, 0, 500, now)
        starts += [now] * planned.count
        lim = HandlerLimit("a", "h", None, rate, planned.tokens, now, T0, T0)
        assert planned.next_token_at is not None and planned.next_token_at > now
        now = planned.next_token_at
    window = max(2_000, int(5_000 / rate))
    for first in range(0, len(starts), max(1, len(starts) // 50)):
        inside = [s for s in starts if starts[first] <= s < starts[first] + window]
        assert len(inside) <= rate * window / 1000 * 1.1
    assert len(starts) == pytest.approx(rate * 60 + burst(rate), abs=1)
