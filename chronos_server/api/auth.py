"""API keys (G-21: `chrns_` + 40 base62, stored as SHA-256 + display prefix) and the per-key
sliding-window rate limiter (G-37).

quart-rate-limiter was considered: it keys limits per endpoint and runs before authentication,
while the spec counts every endpoint against one per-key budget, so a small window log is used.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import string
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import trio

from chronos_server.core.models import Account
from chronos_server.settings import RateLimit

KEY_PREFIX = "chrns_"
_BASE62 = string.ascii_letters + string.digits


def new_api_key() -> str:
    return KEY_PREFIX + "".join(secrets.choice(_BASE62) for _ in range(40))


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def display_prefix(key: str) -> str:
    return key[: len(KEY_PREFIX) + 8]


def bearer_key(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token.startswith(KEY_PREFIX):
        return None
    return token


class KeyCache:
    """Recently verified API keys (hash → account) for `ttl` seconds, so a long-polling worker's
    every re-poll does not cost a database read. Only successes are cached; a revoked key stops
    working within `ttl` (default 5 s; `CHRONOS_AUTH_CACHE_SECONDS=0` makes revocation immediate).
    """

    def __init__(self, ttl: float, max_entries: int = 10_000) -> None:
        self._ttl = ttl
        self._max = max_entries
        self._entries: dict[str, tuple[Account, float]] = {}
        self._in_flight: dict[str, trio.Event] = {}

    async def resolve(
        self, key_hash: str, fetch: Callable[[str], Awaitable[Account | None]]
    ) -> Account | None:
        """The account for a key: from the cache, or ONE database read however many requests
        with that key arrive meanwhile (no stampede when an entry expires under load)."""
        while True:
            found = self.get(key_hash, trio.current_time())
            if found is not None:
                return found
            pending = self._in_flight.get(key_hash)
            if pending is None:
                break
            await pending.wait()
            if self._ttl <= 0:
                break
        done = self._in_flight[key_hash] = trio.Event()
        try:
            account = await fetch(key_hash)
            if account is not None:
                self.put(key_hash, account, trio.current_time())
            return account
        finally:
            del self._in_flight[key_hash]
            done.set()

    def get(self, key_hash: str, now: float) -> Account | None:
        found = self._entries.get(key_hash)
        if found is None or found[1] <= now:
            return None
        return found[0]

    def put(self, key_hash: str, account: Account, now: float) -> None:
        if self._ttl <= 0:
            return
        if len(self._entries) >= self._max:
            self._entries = {k: v for k, v in self._entries.items() if v[1] > now}
            if len(self._entries) >= self._max:
                self._entries.clear()
        self._entries[key_hash] = (account, now + self._ttl)


class KeyUsage:
    """When this process last recorded each key's use (`api_keys.last_used_at`): at most once
    per `interval` seconds per key, so a busy key costs one small write a minute, not one per
    request. The store's write is conditional too, so replicas do not add up."""

    def __init__(self, interval: float = 60.0, max_entries: int = 10_000) -> None:
        self._interval = interval
        self._max = max_entries
        self._marked: dict[str, float] = {}

    def due(self, key_hash: str, now: float) -> bool:
        """True (and noted) when the key's use should be written now."""
        last = self._marked.get(key_hash)
        if last is not None and now - last < self._interval:
            return False
        if len(self._marked) >= self._max:
            self._marked = {k: t for k, t in self._marked.items() if now - t < self._interval}
            if len(self._marked) >= self._max:
                self._marked.clear()
        self._marked[key_hash] = now
        return True


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int
    retry_after: int


class SlidingWindowLimiter:
    """A window log per key (an API key, or a client address for failed authentications).
    Keys whose log has emptied are dropped once more than `max_keys` are held."""

    def __init__(self, rate: RateLimit, max_keys: int = 10_000) -> None:
        self._rate = rate
        self._max_keys = max_keys
        self._hits: dict[str, deque[float]] = {}

    def _log(self, key: str, now: float) -> deque[float]:
        hits = self._hits.get(key)
        if hits is None:
            if len(self._hits) >= self._max_keys:
                self._prune(now)
            hits = self._hits[key] = deque()
        while hits and hits[0] <= now - self._rate.window_seconds:
            hits.popleft()
        return hits

    def _prune(self, now: float) -> None:
        horizon = now - self._rate.window_seconds
        self._hits = {k: v for k, v in self._hits.items() if v and v[-1] > horizon}

    def blocked_for(self, key: str, now: float) -> int:
        """Seconds until `key` may hit again (0: it may now); records nothing."""
        hits = self._hits.get(key)
        if not hits:
            return 0
        hits = self._log(key, now)
        if len(hits) < self._rate.limit:
            return 0
        return max(1, math.ceil(hits[0] + self._rate.window_seconds - now))

    def hit(self, key: str, now: float) -> RateDecision:
        window = self._rate.window_seconds
        hits = self._log(key, now)
        limit = self._rate.limit
        if len(hits) >= limit:
            wait = hits[0] + window - now
            retry = max(1, math.ceil(wait))
            return RateDecision(False, limit, 0, retry, retry)
        hits.append(now)
        reset = max(1, math.ceil(hits[0] + window - now))
        return RateDecision(True, limit, limit - len(hits), reset, 0)
