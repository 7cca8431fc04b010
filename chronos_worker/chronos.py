"""`Chronos`, the one class users construct (§11.1), and `reconfigure()` for the CLI.

`Chronos(...)` validates its options (raising `ChronosConfigError`) and exposes exactly one
read-only property, `worker`; it has no methods of its own, as in the Node SDK.

Reconfiguring: settings are frozen once validated, so a worker is never changed in place.
`reconfigure(target, api_key=..., base_url=..., ...)` instead builds a NEW `Chronos` whose
options are the target's (logger, HTTP client and rng included), with every override that is
not None applied on top, and registers the target's handlers on the new worker. The target
itself is left untouched. The `chronos-worker` command uses it to apply `--server`,
`--api-key`, `--concurrency`, `--prefetch`, `--poll-wait` and `--protocol` to the object named
by `module:attr`.
"""

from __future__ import annotations

import random

import httpx

from .errors import ChronosError
from .log import LoggerLike
from .settings import WorkerSettings
from .worker import Worker


class Chronos:
    """Entry point of the SDK: `chronos = Chronos(api_key="chrns_...")`, then `chronos.worker`.

    `api_key` defaults to `CHRONOS_API_KEY`; `base_url` to `CHRONOS_BASE_URL`, else
    `http://127.0.0.1:8080` (trailing slashes removed). `poll_wait_time_seconds` (0-20) is the
    long-poll wait per claim; `retry_delay_ms` the first pause after a failed claim or report
    (the following ones back off up to 30 s); `concurrency` (an extension, G-09) how many jobs
    run at once; `prefetch` (extension) how many jobs the worker may claim beyond those, waiting
    for a free slot (None: `CHRONOS_WORKER_PREFETCH`, else auto = 8 x concurrency, at most 100 -
    concurrency; 0: none; always 0 with concurrency 1), used only while handlers are fast enough
    that a prefetched job waits about 0.1 s at most (`chronos_worker.prefetch`).
    `logger` is a `logging.Logger` or any object
    with `debug/info/warning/error(message, meta)`; `http_client` an `httpx.AsyncClient` to use
    instead of one the worker opens itself (for tests and proxies; it is not closed for you);
    `rng` a `random.Random` for the jitter of retry pauses (seed it in tests). `protocol`
    (extension): `"auto"` (default, else `CHRONOS_WORKER_PROTOCOL`) takes jobs over the worker
    channel (`GET /v1/worker/stream`, a WebSocket) when the server offers it and falls back to
    the long-poll otherwise; `"stream"` or `"poll"` forces one (see `chronos_worker.streaming`).
    """

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        poll_wait_time_seconds: int = 20,
        retry_delay_ms: int = 1000,
        logger: LoggerLike | None = None,
        http_client: httpx.AsyncClient | None = None,
        concurrency: int = 1,
        rng: random.Random | None = None,
        protocol: str | None = None,
        prefetch: int | None = None,
    ) -> None:
        settings = WorkerSettings.create(
            api_key=api_key,
            base_url=base_url,
            poll_wait_time_seconds=poll_wait_time_seconds,
            retry_delay_ms=retry_delay_ms,
            logger=logger,
            http_client=http_client,
            concurrency=concurrency,
            rng=rng,
            protocol=protocol,
            prefetch=prefetch,
        )
        self._worker = Worker(settings)

    @property
    def worker(self) -> Worker:
        """The worker: register handlers with `handle()`, then `await worker.start()`."""
        return self._worker

    def __repr__(self) -> str:
        return f"<Chronos base_url={self._worker.settings.base_url!r}>"


def reconfigure(
    target: Chronos | Worker,
    *,
    api_key: str | None = None,
    base_url: str | None = None,
    poll_wait_time_seconds: int | None = None,
    retry_delay_ms: int | None = None,
    concurrency: int | None = None,
    protocol: str | None = None,
    prefetch: int | None = None,
) -> Chronos:
    """A new `Chronos` with `target`'s options, the non-None overrides and the same handlers."""
    worker = target.worker if isinstance(target, Chronos) else target
    if not isinstance(worker, Worker):
        raise ChronosError(f"Expected a Chronos or Worker object, got {type(target).__name__}")
    old = worker.settings
    chronos = Chronos(
        api_key=old.api_key if api_key is None else api_key,
        base_url=old.base_url if base_url is None else base_url,
        poll_wait_time_seconds=(
            old.poll_wait_time_seconds if poll_wait_time_seconds is None else poll_wait_time_seconds
        ),
        retry_delay_ms=old.retry_delay_ms if retry_delay_ms is None else retry_delay_ms,
        logger=old.logger,
        http_client=old.http_client,
        concurrency=old.concurrency if concurrency is None else concurrency,
        rng=old.rng,
        protocol=old.protocol if protocol is None else protocol,
        prefetch=old.prefetch if prefetch is None else prefetch,
    )
    for name, fn in worker.handlers.items():
        chronos.worker.handle(name, fn)
    return chronos
