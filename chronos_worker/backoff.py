"""Pacing and logging of requests that fail to reach the server: `Backoff` and `Reachability`.

`Backoff` is exponential with jitter from an injected `random.Random`: the first pause is
`retry_delay_ms`, as documented for a network error (§11.4); then the ceiling doubles on each
further failure, up to `MAX_BACKOFF_SECONDS` (or `retry_delay_ms` if that is larger), and each
pause is drawn in [ceiling / 2, ceiling], so workers that lost the server together do not come
back in step. `pause_after` adds the server's word: a 429's `Retry-After` is obeyed as is, a
503's is a floor under the backoff.

`Reachability` keeps the log to one line per change of state for one kind of request (claims,
reports): a WARNING when requests stop reaching the server, an INFO when one gets through again;
the failed tries in between are DEBUG lines at the call site. "Unreachable" is no answer at all
or a 5xx (`ChronosRequestError.unreachable`); any other answer means the server was reached.
"""

from __future__ import annotations

import random

import trio

from .errors import ChronosRequestError
from .log import Log

MAX_BACKOFF_SECONDS = 30.0


class Backoff:
    """The pauses between the tries of one request (or of one loop's requests)."""

    def __init__(self, first_s: float, rng: random.Random) -> None:
        self._first = first_s
        self._cap = max(MAX_BACKOFF_SECONDS, first_s)
        self._rng = rng
        self._ceiling = 0.0  # 0: no failure since the last reset

    def next_delay(self) -> float:
        """The pause before the next try."""
        if self._ceiling == 0.0:
            self._ceiling = self._first
            return self._first
        self._ceiling = min(self._cap, self._ceiling * 2)
        return self._rng.uniform(self._ceiling / 2, self._ceiling)

    def reset(self) -> None:
        """A request went through: the next failure pauses `first_s` again."""
        self._ceiling = 0.0


def pause_after(exc: ChronosRequestError, backoff: Backoff) -> float:
    """How long to wait after `exc` before trying again."""
    if exc.status == 429 and exc.retry_after is not None:
        return exc.retry_after
    delay = backoff.next_delay()
    return delay if exc.retry_after is None else max(delay, exc.retry_after)


class Reachability:
    """Whether requests of one kind (`what`: "claims", "reports") reach the server; logs
    the changes only."""

    def __init__(self, log: Log, what: str) -> None:
        self._log = log
        self._what = what
        self._down_since: float | None = None
        self._failures = 0

    @property
    def down(self) -> bool:
        return self._down_since is not None

    def observe(self, exc: ChronosRequestError) -> None:
        """Account for a failed request: unreachable, or an answer (the server was reached)."""
        if exc.unreachable:
            self.failed(exc)
        else:
            self.reached()

    def failed(self, exc: ChronosRequestError) -> None:
        self._failures += 1
        if self._down_since is None:
            self._down_since = trio.current_time()
            self._log.warning(f"Server unreachable for {self._what} ({exc}); retrying with backoff")

    def reached(self) -> None:
        if self._down_since is None:
            return
        down_s = trio.current_time() - self._down_since
        self._log.info(
            f"Server reachable again for {self._what}, after {self._failures} failed"
            f" {'request' if self._failures == 1 else 'requests'} over {down_s:.1f} s"
        )
        self._down_since = None
        self._failures = 0
