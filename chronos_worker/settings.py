"""Worker settings: the `Chronos(...)` options, validated once into a frozen dataclass (§11.1).

Environment fallbacks (G-53): `api_key` else `CHRONOS_API_KEY`; `base_url` else
`CHRONOS_BASE_URL` else `http://127.0.0.1:8080`; `protocol` (extension) else
`CHRONOS_WORKER_PROTOCOL` else `auto`; `prefetch` (extension) else `CHRONOS_WORKER_PREFETCH`
(a count, or `auto`) else auto. Every invalid option raises `ChronosConfigError` here, at
construction, never later in the poll loop.

`prefetch` is kept as given (None: auto), so that `reconfigure()` with another concurrency
recomputes the auto value; `prefetch_limit` is what the worker uses (`prefetch.py`): auto is
`AUTO_PREFETCH_FACTOR` x concurrency, capped so that concurrency + prefetch stays within the
server's batch maximum (`MAX_HELD_AUTO`); 0 turns it off; with concurrency 1 it is always 0.
Over the worker channel (`channel_prefetch_limit`) auto is whatever brings concurrency +
prefetch to `MAX_HELD_AUTO_CHANNEL`: two of the server's batches, so that one is claimed and
on its way while the worker runs the other (with one, each batch waited for the previous one's
last job); the adaptive budget (`prefetch.py`) still keeps prefetched jobs of slow handlers out.
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping
from dataclasses import dataclass, field

import httpx

from .errors import ChronosConfigError
from .log import LoggerLike

API_KEY_PREFIX = "chrns_"
DEFAULT_BASE_URL = "http://127.0.0.1:8080"
MAX_POLL_WAIT_SECONDS = 20
# How jobs reach the worker: `stream` the worker channel (a WebSocket, extension), `poll` the
# spec's long-poll, `auto` the channel when the server offers it, else the long-poll.
PROTOCOLS = ("auto", "stream", "poll")
AUTO_PREFETCH_FACTOR = 8
MAX_HELD_AUTO = 100  # the server's `max_jobs` bound: one claim can fill concurrency + prefetch
MAX_HELD_AUTO_CHANNEL = 2 * MAX_HELD_AUTO  # the channel's server claims up to 100 at a time


@dataclass(frozen=True)
class WorkerSettings:
    """Validated options; build it with `WorkerSettings.create(...)`."""

    api_key: str = field(repr=False)
    base_url: str
    poll_wait_time_seconds: int
    retry_delay_ms: int
    concurrency: int
    logger: LoggerLike | None = field(default=None, compare=False)
    http_client: httpx.AsyncClient | None = field(default=None, compare=False)
    rng: random.Random | None = field(default=None, compare=False, repr=False)
    protocol: str = "auto"
    prefetch: int | None = None  # as given; None: auto (see `prefetch_limit`)

    @property
    def retry_delay_seconds(self) -> float:
        return self.retry_delay_ms / 1000

    @property
    def prefetch_limit(self) -> int:
        """The most jobs held beyond `concurrency`, waiting for a handler slot."""
        if self.concurrency == 1:
            return 0  # the plain one-job protocol
        if self.prefetch is None:
            room = max(0, MAX_HELD_AUTO - self.concurrency)
            return min(AUTO_PREFETCH_FACTOR * self.concurrency, room)
        return self.prefetch

    @property
    def channel_prefetch_limit(self) -> int:
        """`prefetch_limit` over the worker channel: auto fills up to `MAX_HELD_AUTO_CHANNEL`."""
        if self.concurrency == 1 or self.prefetch is not None:
            return self.prefetch_limit
        return max(self.prefetch_limit, MAX_HELD_AUTO_CHANNEL - self.concurrency)

    @classmethod
    def create(
        cls,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        poll_wait_time_seconds: int = MAX_POLL_WAIT_SECONDS,
        retry_delay_ms: int = 1000,
        logger: LoggerLike | None = None,
        http_client: httpx.AsyncClient | None = None,
        concurrency: int = 1,
        rng: random.Random | None = None,
        environ: Mapping[str, str] | None = None,
        protocol: str | None = None,
        prefetch: int | None = None,
    ) -> WorkerSettings:
        env = os.environ if environ is None else environ
        return cls(
            api_key=_check_api_key(api_key if api_key is not None else env.get("CHRONOS_API_KEY")),
            base_url=_check_base_url(
                base_url if base_url is not None else env.get("CHRONOS_BASE_URL", DEFAULT_BASE_URL)
            ),
            poll_wait_time_seconds=_check_int(
                "poll_wait_time_seconds", poll_wait_time_seconds, 0, MAX_POLL_WAIT_SECONDS
            ),
            retry_delay_ms=_check_int("retry_delay_ms", retry_delay_ms, 0, None),
            concurrency=_check_int("concurrency", concurrency, 1, None),
            logger=logger,
            http_client=_check_http_client(http_client),
            rng=_check_rng(rng),
            protocol=_check_protocol(
                protocol if protocol is not None else env.get("CHRONOS_WORKER_PROTOCOL") or "auto"
            ),
            prefetch=(
                _check_int("prefetch", prefetch, 0, None)
                if prefetch is not None
                else _prefetch_from_env(env.get("CHRONOS_WORKER_PREFETCH"))
            ),
        )


def _check_api_key(value: object) -> str:
    if value is None or value == "":
        raise ChronosConfigError("api_key is required (pass api_key= or set CHRONOS_API_KEY)")
    if not isinstance(value, str) or not value.startswith(API_KEY_PREFIX):
        raise ChronosConfigError(f'api_key must start with "{API_KEY_PREFIX}"')
    return value


def _check_base_url(value: object) -> str:
    if not isinstance(value, str):
        raise ChronosConfigError("base_url must be a string")
    stripped = value.strip().rstrip("/")
    try:
        url = httpx.URL(stripped)
    except (httpx.InvalidURL, TypeError) as exc:
        raise ChronosConfigError(f"base_url is not a valid URL: {value!r}") from exc
    if url.scheme not in ("http", "https") or not url.host:
        raise ChronosConfigError(f"base_url must be an http:// or https:// URL: {value!r}")
    return stripped


def _check_int(name: str, value: object, low: int, high: int | None) -> int:
    # bool is an int subclass; `True` is never a sensible count or delay.
    if (
        isinstance(value, int)
        and not isinstance(value, bool)
        and low <= value
        and (high is None or value <= high)
    ):
        return value
    bounds = f"between {low} and {high}" if high is not None else f">= {low}"
    raise ChronosConfigError(f"{name} must be an integer {bounds}, got {value!r}")


def _prefetch_from_env(value: str | None) -> int | None:
    text = (value or "").strip()
    if text.lower() in ("", "auto"):
        return None
    try:
        number = int(text)
    except ValueError:
        number = -1
    if number < 0:
        raise ChronosConfigError(
            f"CHRONOS_WORKER_PREFETCH must be an integer >= 0 or auto, got {value!r}"
        )
    return number


def _check_http_client(value: object) -> httpx.AsyncClient | None:
    if value is not None and not isinstance(value, httpx.AsyncClient):
        raise ChronosConfigError("http_client must be an httpx.AsyncClient")
    return value


def _check_protocol(value: object) -> str:
    text = value.strip().lower() if isinstance(value, str) else value
    if text not in PROTOCOLS:
        raise ChronosConfigError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {value!r}")
    assert isinstance(text, str)
    return text


def _check_rng(value: object) -> random.Random | None:
    if value is not None and not isinstance(value, random.Random):
        raise ChronosConfigError("rng must be a random.Random")
    return value
