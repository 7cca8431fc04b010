"""How far the server's clock is ahead of this worker's, bounded from below, so that a job sent
ahead of its due instant starts at that instant and not one message transit after it.

A `jobs` message sent ahead says when it left by the server's clock (`sent_at`, Unix ms). It
arrived after it left, so when it arrived (`arrived`, this worker's Trio clock) the server's clock
read at least `sent_at`: the offset (server minus worker) is at least `sent_at - arrived`. The
largest of these bounds is the tightest: that of the message with the shortest transit. A job due
at the server's instant D then starts at D minus the bound, which is never before D by the
server's clock (the bound never exceeds the true offset) and late only by that shortest transit,
instead of by its own message's transit (milliseconds, on a busy machine).

Clocks drift apart: the server's wall clock may be slewed against the worker's monotonic clock
(NTP slews at most 500 ppm). A bound therefore loses `DRIFT_MS_PER_SECOND` for each second of
its age, so it stays below the true offset under any such drift; an old bound soon falls under
the next message's own, which takes over. Without a bound (a message without `sent_at`: an older
server) a job starts `start_in_ms` after its arrival, as before.
"""

from __future__ import annotations

DRIFT_MS_PER_SECOND = 1.0  # twice the most NTP slews a clock


class ServerClock:
    """One per channel: another channel may reach another server, with its own clock."""

    def __init__(self) -> None:
        self._bound_ms: float | None = None  # server ms - worker seconds × 1000, as of `_at`
        self._at = 0.0

    def bound(self, now: float) -> float | None:
        """The lower bound on the offset (ms) at worker time `now` (seconds), or None."""
        if self._bound_ms is None:
            return None
        return self._bound_ms - DRIFT_MS_PER_SECOND * max(0.0, now - self._at)

    def observe(self, sent_at_ms: float, arrived: float) -> None:
        """A message that left at `sent_at_ms` (server) arrived at `arrived` (worker)."""
        sample = sent_at_ms - arrived * 1000
        current = self.bound(arrived)
        if current is None or sample > current:
            self._bound_ms, self._at = sample, arrived

    def local_time(self, server_ms: float, now: float) -> float:
        """The worker time (seconds) at which the server's clock reads `server_ms` at the
        earliest, by the bound, and not before `now`: a job's start, its message observed
        first (so never later than `start_in_ms` after that message's arrival)."""
        bound = self.bound(now)
        assert bound is not None, "observe a message first"
        return max(now, (server_ms - bound) / 1000)
