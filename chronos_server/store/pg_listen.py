"""Cross-replica wake-ups for the PostgreSQL store: NOTIFY on `ready`, one LISTEN per process.

The dispatch pass that makes pull jobs `ready` sends, inside its transaction (so only on commit),
`NOTIFY chronos_ready` with `{"o": origin, "r": [[account_id, handler, count], ...]}`. Every server
process keeps ONE dedicated connection that LISTENs, in one thread; each notification from another
process (its own origin is skipped: its dispatcher already woke its own claimers) becomes a
`board.notify(account, handler, count)` on the Trio thread through the Trio token.

The same channel carries `{"o": origin, "l": 1}` when a process changed a handler's limits: the
others reload their copy of which handlers have limits (`pipeline/limits.py`).

NOTIFY is a hint, never the only way a claimer learns of work. After every (re)connect of the
listener, and every `FALLBACK_SECONDS` while claimers are parked, one query counts the ready jobs
of the parked (account, handler) keys and wakes that many; each long-poll also re-checks when it
ends. No job is ever lost by a lost notification, only delayed.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any

import psycopg
import trio

from chronos_server.store.base import ReadyBatch

log = logging.getLogger("chronos.store.listen")

CHANNEL = "chronos_ready"
MAX_PAYLOAD_BYTES = 7000  # PostgreSQL refuses payloads of 8000 bytes or more
POLL_SECONDS = 0.25  # how often the listener thread looks at its stop flag
FALLBACK_SECONDS = 10.0  # a safety net (NOTIFY is the path): 10,000 idle workers park here
RECONNECT_MIN_SECONDS = 0.2
RECONNECT_MAX_SECONDS = 5.0
# For every connection of the process (the pool's, the listener's, the breaker's probe): a silently
# dead network must not leave a call waiting on a socket for the kernel's ~15 minutes. Keepalives
# notice a peer that stopped answering while we wait for a reply (probes after 5 s idle, 2 s
# apart, 3 of them); `tcp_user_timeout` ends a connection whose sent data goes unacknowledged for
# 5 s (and, on Linux, caps the keepalive detection at that too). A busy server still acknowledges
# at the TCP level, so a slow query is never cut by these; only a network that is gone.
CONNECT_KWARGS: dict[str, Any] = {
    "autocommit": True,
    "connect_timeout": 5,
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
    "tcp_user_timeout": 5000,  # ms
}


def encode_ready(origin: str, batches: list[ReadyBatch]) -> list[str]:
    """NOTIFY payloads for these batches, split so that none exceeds PostgreSQL's limit."""
    payloads: list[str] = []
    chunk: list[list[Any]] = []
    for batch in batches:
        chunk.append([batch.account_id, batch.handler, batch.count])
        if len(_payload(origin, chunk).encode()) > MAX_PAYLOAD_BYTES and len(chunk) > 1:
            payloads.append(_payload(origin, chunk[:-1]))
            chunk = chunk[-1:]
    if chunk:
        payloads.append(_payload(origin, chunk))
    return payloads


def _payload(origin: str, entries: list[list[Any]]) -> str:
    return json.dumps({"o": origin, "r": entries}, separators=(",", ":"))


def encode_limits_changed(origin: str) -> str:
    """The NOTIFY payload saying this process changed a handler's limits."""
    return json.dumps({"o": origin, "l": 1}, separators=(",", ":"))


def decode_limits_changed(payload: str, origin: str) -> bool:
    """Did another process announce a change of limits?"""
    try:
        body = json.loads(payload)
        return isinstance(body, dict) and "l" in body and body.get("o") != origin
    except ValueError:
        return False


def decode_ready(payload: str, origin: str) -> list[ReadyBatch]:
    """The batches another process announced; [] for our own or for anything malformed."""
    try:
        body = json.loads(payload)
        if body["o"] == origin or "l" in body:
            return []
        return [ReadyBatch(str(a), str(h), int(n)) for a, h, n in body["r"]]
    except (ValueError, KeyError, TypeError) as exc:
        log.warning("ignoring a malformed %s notification (%s)", CHANNEL, exc)
        return []


class Listener:
    """The one LISTEN connection of a process, run by `listen()` in a worker thread."""

    def __init__(
        self,
        conninfo: str,
        origin: str,
        on_ready: Callable[[list[ReadyBatch]], None],
        on_connected: Callable[[], None],
        on_limits_changed: Callable[[], None] = lambda: None,
    ) -> None:
        self._conninfo = conninfo
        self._origin = origin
        self._on_ready = on_ready
        self._on_connected = on_connected
        self._on_limits_changed = on_limits_changed
        self._token = trio.lowlevel.current_trio_token()
        self._stop = threading.Event()

    def stop(self) -> bool:
        self._stop.set()
        return True  # the thread notices within POLL_SECONDS: worth waiting for

    def listen(self) -> None:
        """Listen until stopped, reconnecting with backoff whenever the connection fails."""
        delay = RECONNECT_MIN_SECONDS
        while not self._stop.is_set():
            try:
                self._listen_once()
            except psycopg.Error as exc:
                log.warning("LISTEN connection failed (%s); reconnecting in %.1f s", exc, delay)
                self._stop.wait(delay)
                delay = min(delay * 2, RECONNECT_MAX_SECONDS)
            except trio.RunFinishedError:
                return
            else:
                delay = RECONNECT_MIN_SECONDS

    def _listen_once(self) -> None:
        with psycopg.connect(self._conninfo, **CONNECT_KWARGS) as conn:
            conn.execute(f"LISTEN {CHANNEL}")
            self._token.run_sync_soon(self._on_connected)
            while not self._stop.is_set():
                for note in conn.notifies(timeout=POLL_SECONDS):
                    if decode_limits_changed(note.payload, self._origin):
                        self._token.run_sync_soon(self._on_limits_changed)
                        continue
                    batches = decode_ready(note.payload, self._origin)
                    if batches:
                        self._token.run_sync_soon(self._on_ready, batches)
