"""Per-handler limits (extension; README "Handler limits"): how many of a handler's waiting jobs
may go on now, and when the next one may if the start rate is what holds them back. Pure: no
clock, no I/O; the store applies the decision under the limit row's lock.

`max_running` bounds the jobs of a handler `ready` or `running` at once (and push jobs released
but not sent yet); `max_per_second` bounds releases by a token bucket that refills at that rate
and holds at most `burst(rate)` tokens: a tenth of a second's worth, and at least one, so over a
window of W seconds at most `rate * W + burst` jobs start (within 10 % from one second on at
rates up to 10/s, and from a tenth of that window at higher rates).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

BURST_SECONDS = 0.1
MAX_RUNNING_LIMIT = 1_000_000
MIN_PER_SECOND = 0.001
MAX_PER_SECOND = 100_000.0


@dataclass(frozen=True)
class HandlerLimit:
    """One (account, handler)'s limits, with its token bucket as of `tokens_at` (Unix ms)."""

    account_id: str
    handler: str
    max_running: int | None
    max_per_second: float | None
    tokens: float
    tokens_at: int
    created_at: int
    updated_at: int


@dataclass(frozen=True)
class Release:
    """How many waiting jobs go on now, and the bucket after they took their tokens."""

    count: int
    tokens: float
    # When the next token comes, if the rate (not `max_running`, not a lack of jobs) is what
    # stopped this release: the caller wakes then, without polling in between.
    next_token_at: int | None


def burst(rate: float) -> float:
    return max(1.0, rate * BURST_SECONDS)


def tokens_now(limit: HandlerLimit, now: int) -> float:
    """The bucket refilled up to `now` (a clock stepped back refills nothing)."""
    if limit.max_per_second is None:
        return math.inf
    elapsed = max(0, now - limit.tokens_at)
    return min(burst(limit.max_per_second), limit.tokens + elapsed * limit.max_per_second / 1000)


def initial_tokens(max_per_second: float | None, previous: HandlerLimit | None, now: int) -> float:
    """A new limit starts with a full bucket; a changed one keeps what it had, within the new
    burst (so raising the rate never grants a burst at once)."""
    if max_per_second is None:
        return 0.0
    if previous is None or previous.max_per_second is None:
        return burst(max_per_second)
    return min(burst(max_per_second), tokens_now(previous, now))


def plan_release(limit: HandlerLimit, active: int, wanted: int, now: int) -> Release:
    """Up to `wanted` waiting jobs (a batch), `active` of the handler's jobs counting against
    `max_running` already."""
    free = wanted if limit.max_running is None else max(0, min(wanted, limit.max_running - active))
    if limit.max_per_second is None:
        return Release(free, 0.0, None)
    available = tokens_now(limit, now)
    # The small epsilon: 2.9999999 tokens after float refills is 3.
    count = min(free, math.floor(available + 1e-9))
    left = available - count
    rate_bound = count < free
    return Release(
        count, left, next_token_at(left, limit.max_per_second, now) if rate_bound else None
    )


def after_release(limit: HandlerLimit, planned: Release, released: int, now: int) -> Release:
    """The bucket once `released` (≤ planned) jobs took a token each: fewer waited than planned."""
    if limit.max_per_second is None or released == planned.count:
        return planned
    left = tokens_now(limit, now) - released
    return Release(released, left, None)


def next_token_at(tokens: float, rate: float, now: int) -> int:
    """When the bucket holding `tokens` at `now` next holds a whole one."""
    if tokens >= 1:
        return now
    return now + max(1, math.ceil((1 - tokens) * 1000 / rate))
