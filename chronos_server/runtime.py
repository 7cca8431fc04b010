"""`serve()`: the ONE root nursery. Opens the store, starts admission, dispatch and the sweeper,
then Hypercorn beside them; on stop, parked long-polls answer "no job", in-flight requests get
`shutdown_grace_seconds`, and the loops are cancelled last.
"""

from __future__ import annotations

import base64
import gc
import logging
import random
import secrets
import signal
from collections.abc import Callable
from dataclasses import dataclass, field

import trio
from hypercorn.config import Config
from hypercorn.trio import serve as hypercorn_serve

from chronos_server.api.app import create_app
from chronos_server.api.auth import (
    KeyCache,
    SlidingWindowLimiter,
    display_prefix,
    hash_key,
    new_api_key,
)
from chronos_server.api.context import Services
from chronos_server.api.validation import TargetPolicy
from chronos_server.clock import Clock, SystemClock
from chronos_server.delivery.push import (
    PushSender,
    PushSettings,
    Resolver,
    new_push_transport,
    system_resolver,
)
from chronos_server.loops.admission import run_admission
from chronos_server.loops.context import LoopSettings, Pipeline
from chronos_server.loops.dispatch import run_dispatch
from chronos_server.loops.sweeper import run_sweeper, sweeper_once
from chronos_server.settings import Settings
from chronos_server.store.base import Store
from chronos_server.store.open import open_store

log = logging.getLogger("chronos")
DEFAULT_ACCOUNT = "default"


def new_signing_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


async def bootstrap(store: Store, settings: Settings, clock: Clock) -> str | None:
    """Make the default account usable; returns a newly created API key to show once, if any."""
    now = clock.now_ms()
    first_start = await store.count_accounts() == 0
    account, _ = await store.ensure_account(DEFAULT_ACCOUNT, now)
    shown: str | None = None
    if settings.bootstrap_api_key:
        key = settings.bootstrap_api_key
        await store.add_api_key(account.id, hash_key(key), display_prefix(key), now)
    elif first_start:
        shown = new_api_key()
        await store.add_api_key(account.id, hash_key(shown), display_prefix(shown), now)
    if settings.bootstrap_signing_secret:
        await store.set_signing_secret(account.id, settings.bootstrap_signing_secret)
    elif account.signing_secret is None:
        await store.set_signing_secret(account.id, new_signing_secret())
    return shown


def hypercorn_config(settings: Settings) -> Config:
    config = Config()
    config.bind = [f"{settings.host}:{settings.port}"]
    config.keep_alive_timeout = 75  # > the 20 s long-poll plus margin (spec §10.2)
    config.read_timeout = 60
    config.graceful_timeout = settings.shutdown_grace_seconds
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    config.backlog = 1024
    return config


@dataclass
class ServerHandle:
    """What `serve` reports once listening: the bound URLs and a way to stop gracefully."""

    urls: list[str]
    services: Services
    stop: Callable[[], None]
    shown_api_key: str | None = None
    stopped: trio.Event = field(default_factory=trio.Event)

    @property
    def url(self) -> str:
        return self.urls[0]


# Young-generation threshold: CPython's default (700 allocations) runs a collection every few
# hundred objects; a burst of a thousand push requests allocates millions. (Measured on CPython
# 3.11; 3.14's incremental collector reads the second and third values differently.)
GC_THRESHOLDS = (20_000, 20, 20)


def tune_gc() -> None:
    """For the `chronos serve` process, once it is set up and before its loops and HTTP server
    start: move everything allocated so far (modules, the app, the store) out of the
    collector's reach with `gc.freeze()`, and collect the young generation less often.
    Measured on the push fan-out bench (1,000 requests due at once): full collections walking
    the start-up heap paused the Trio thread 48 and 28 ms in mid-burst, and collections took
    ~120 ms of the run in all; after this, ~17 ms. Cyclic garbage is still collected, in
    larger, rarer batches."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


async def serve(
    settings: Settings,
    *,
    clock: Clock | None = None,
    rng: random.Random | None = None,
    loop_settings: LoopSettings | None = None,
    handle_signals: bool = False,
    resolver: Resolver | None = None,
    gc_tuning: bool = False,
    task_status: trio.TaskStatus[ServerHandle] = trio.TASK_STATUS_IGNORED,
) -> None:
    clock = clock or SystemClock()
    push_settings = PushSettings(
        concurrency=settings.push_concurrency,
        user_agent=settings.push_user_agent,
        allow_private=settings.allow_private_targets,
    )
    async with (
        open_store(settings.database_url) as store,
        new_push_transport(push_settings) as transport,
    ):
        shown = await bootstrap(store, settings, clock)
        pipeline = Pipeline(store, clock, rng or random.Random(), loop_settings or LoopSettings())
        limiter = SlidingWindowLimiter(settings.rate_limit) if settings.rate_limit else None
        policy = TargetPolicy(settings.allow_http_targets, settings.allow_private_targets)
        svc = Services(pipeline, policy, limiter, KeyCache(settings.auth_cache_seconds))
        sender = PushSender(pipeline, transport, push_settings, resolver or system_resolver)
        http_stop = trio.Event()

        def stop() -> None:
            if not svc.stopping:
                log.info("stopping: no new claims, finishing in-flight requests")
            svc.stopping = True
            pipeline.draining = True
            pipeline.board.close()
            http_stop.set()

        if gc_tuning:  # the process is set up; nothing is in flight yet
            tune_gc()
        async with trio.open_nursery() as nursery:
            # Startup recovery: anything left `admitting` by a previous process goes back now.
            await sweeper_once(pipeline, admitting_grace_ms=0)
            await nursery.start(run_admission, pipeline)
            await nursery.start(run_dispatch, pipeline, sender)
            await nursery.start(run_sweeper, pipeline)
            # Other replicas' wake-ups (PostgreSQL LISTEN/NOTIFY); nothing to do on SQLite.
            await nursery.start(store.run_listener, pipeline.board)
            await nursery.start(store.run_probe)  # PostgreSQL outages: the breaker's probe

            async def serve_http(*, task_status: trio.TaskStatus[list[str]]) -> None:
                app = create_app(svc)
                await hypercorn_serve(
                    app,
                    hypercorn_config(settings),
                    shutdown_trigger=http_stop.wait,
                    task_status=task_status,
                )
                # In-flight push requests get the same grace as in-flight HTTP requests.
                with trio.move_on_after(settings.shutdown_grace_seconds):
                    await sender.wait_idle()
                nursery.cancel_scope.cancel()

            urls = await nursery.start(serve_http)
            handle = ServerHandle(urls, svc, stop, shown)
            if handle_signals:
                nursery.start_soon(_watch_signals, stop, nursery.cancel_scope)
            log.info("Chronos listening on %s (database %s)", ", ".join(urls), store.dialect)
            task_status.started(handle)
        handle.stopped.set()


async def _watch_signals(stop: Callable[[], None], scope: trio.CancelScope) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        count = 0
        async for _ in signals:
            count += 1
            if count == 1:
                stop()
            else:
                log.warning("second signal: stopping at once")
                scope.cancel()
                return
