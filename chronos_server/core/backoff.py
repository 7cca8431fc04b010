"""Retry backoff (spec §8.3, G-13): exponential, full-range additive jitter, capped at one hour.

`attempt` is the number of the attempt that just failed (1-based). The formula is implemented
exactly, not the documentation's prose table (G-13); jitter comes from an injected `random.Random`.
"""

from __future__ import annotations

import random

BASE_MS = 1000
CAP_MS = 3_600_000

# 1000 ms * 2**12 already exceeds the cap; beyond this the power is never computed, so a huge
# attempt number cannot build a huge int.
_MAX_DOUBLINGS = 12


def retry_delay_ms(failed_attempt: int, rng: random.Random) -> int:
    """Delay before the next attempt: min(base + U[0, base], cap), base = min(1000*2^(n-1), cap)."""
    if failed_attempt < 1:
        raise ValueError(f"attempt numbers start at 1, got {failed_attempt}")
    doublings = failed_attempt - 1
    base = CAP_MS if doublings > _MAX_DOUBLINGS else min(BASE_MS << doublings, CAP_MS)
    jitter = rng.randint(0, base)
    return min(base + jitter, CAP_MS)
