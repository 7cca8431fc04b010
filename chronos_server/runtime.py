"""`serve()`: the ONE root nursery. Opens the store, starts admission, dispatch and the sweeper,
then the HTTP server beside them.

The stop is one deadline (`shutdown_grace_seconds` from `stop()`): at once, parked long-polls
answer "no job", new claims get 503, push sends nothing new, idle connections close; until the
deadline, result reports are still taken and pushes in flight finish. The root nursery is
cancelled as soon as nothing is in flight — no request being handled, every lease this process
handed out reported (or over), no push request open — or at the deadline, whichever is first.
"""

from __future__ import annotations

import base64
import gc
import logging
import random
import resource
import secrets
import signal
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, nullcontext
from dataclasses import dataclass, field

import trio

from chronos_server.api.app import Api
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
from chronos_server.loops.counts import run_count_folding
from chronos_server.loops.dispatch import run_dispatch
from chronos_server.loops.retention import Pruner, batch_size_for, run_retention
from chronos_server.loops.sweeper import run_sweeper, sweeper_once
from chronos_server.pipeline.services import LoopSettings, Pipeline
from chronos_server.settings import RateLimit, Settings, SettingsError
from chronos_server.store.base import Store
from chronos_server.store.open import open_store
from chronos_server.telemetry.exposition import METRICS_LIMITS, MetricsApp
from chronos_server.telemetry.logs import chronos_version, ids, startup_line
from chronos_server.telemetry.metrics import Metrics, timed_store
from chronos_server.web.server import HttpServer, Limits

log = logging.getLogger("chronos")
DEFAULT_ACCOUNT = "default"


def new_signing_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def shown_key_line(key: str) -> str:
    """What `serve` prints for the key it created on an empty database (the key is last)."""
    return (
        f"Created the default account (key display prefix {display_prefix(key)}, which "
        f"`chronos keys revoke` accepts). API key (shown once): {key}"
    )


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


# Failed authentications allowed per client address and window before 429 (no database read).
AUTH_FAILURES = RateLimit(20, 10.0)
BACKLOG = 1024
MAX_DEFAULT_CONNECTIONS = 50_000


def raise_open_files_limit() -> int:
    """Raise the soft open-files limit to the hard one (a server holds a descriptor per client,
    per push request and per database connection); returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as exc:
            log.warning("open-files limit: could not raise %d to %d (%s)", soft, hard, exc)
        else:
            log.info("open-files limit: raised from %d to the hard limit %d", soft, hard)
            return hard
    else:
        log.info("open-files limit: %d (soft = hard)", soft)
    return soft


def default_max_connections(settings: Settings, open_files: int) -> int:
    """What the descriptors left after push sockets, the database and the server's own files
    allow, capped; at least 16."""
    reserve = settings.push_concurrency + 20 + 64 + 64  # push, idle push pool, db+files, overflow
    return max(16, min(MAX_DEFAULT_CONNECTIONS, open_files - reserve))


def http_limits(settings: Settings) -> Limits:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    cap = settings.max_connections or default_max_connections(settings, soft)
    return Limits(max_connections=cap)


async def bind_socket(host: str, port: int, *, reuse_port: bool = False) -> trio.socket.SocketType:
    """A TCP socket bound to `host:port` (the first address the name resolves to), not yet
    listening. `reuse_port` (SO_REUSEPORT): other sockets of this user may bind the same port,
    and the kernel spreads incoming connections over those that listen."""
    infos = await trio.socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )
    family, kind, proto, _, address = infos[0]
    sock = trio.socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        await sock.bind(address)
    except BaseException:
        sock.close()
        raise
    return sock


def socket_url(sock: trio.socket.SocketType) -> str:
    bound_host, bound_port = sock.getsockname()[:2]
    shown = f"[{bound_host}]" if sock.family == socket.AF_INET6 else bound_host
    return f"http://{shown}:{bound_port}"


async def open_listener(
    host: str, port: int, *, reuse_port: bool = False
) -> tuple[trio.SocketListener, str]:
    """One listening socket for `host:port`, and the URL it is reachable at (the real port
    when `port` is 0). `reuse_port`: see `bind_socket` (the processes of `--workers`)."""
    return start_listening(await bind_socket(host, port, reuse_port=reuse_port))


def start_listening(sock: trio.socket.SocketType) -> tuple[trio.SocketListener, str]:
    """A bound socket made a listener (closed if that fails), and its URL."""
    try:
        sock.listen(BACKLOG)
    except BaseException:
        sock.close()
        raise
    return trio.SocketListener(sock), socket_url(sock)


@asynccontextmanager
async def closing_socket(sock: trio.socket.SocketType) -> AsyncIterator[None]:
    try:
        yield
    finally:
        sock.close()


@dataclass
class ServerHandle:
    """What `serve` reports once listening: the bound URLs and a way to stop gracefully."""

    urls: list[str]
    services: Services
    stop: Callable[[], None]
    http: HttpServer
    shown_api_key: str | None = None
    stopped: trio.Event = field(default_factory=trio.Event)
    metrics_url: str | None = None  # `--metrics-port`: where `/metrics` is served

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
    signals: AsyncIterator[int] | None = None,
    resolver: Resolver | None = None,
    gc_tuning: bool = False,
    limits: Limits | None = None,
    task_status: trio.TaskStatus[ServerHandle] = trio.TASK_STATUS_IGNORED,
) -> None:
    clock = clock or SystemClock()
    push_settings = PushSettings(
        concurrency=settings.push_concurrency,
        user_agent=settings.push_user_agent,
        allow_private=settings.allow_private_targets,
    )
    # Bound before the store is opened and the first-start key is made: a port that is taken
    # fails here (bind refuses a port another socket listens on), and does not consume the key
    # that would have been printed. It listens once the loops run: listening means ready.
    bound = await bind_socket(settings.host, settings.port, reuse_port=settings.reuse_port)
    metrics_listener, metrics_url = None, None
    if settings.metrics_port is not None:
        try:
            metrics_listener, metrics_url = await open_listener(
                settings.host, settings.metrics_port
            )
        except OSError as exc:
            bound.close()
            raise SettingsError(
                f"cannot listen for metrics on {settings.host}:{settings.metrics_port}: "
                f"{exc.strerror or exc} (choose another --metrics-port / CHRONOS_METRICS_PORT)"
            ) from exc
    async with (
        closing_socket(bound),
        metrics_listener or nullcontext(),
        open_store(settings.database_url) as store,
        new_push_transport(push_settings) as transport,
    ):
        shown = await bootstrap(store, settings, clock)
        metrics = Metrics(enabled=settings.metrics_port is not None)
        pipeline = Pipeline(
            timed_store(store, metrics) if metrics.enabled else store,
            clock,
            rng or random.Random(),
            loop_settings or LoopSettings(),
            metrics=metrics,
        )
        limiter = SlidingWindowLimiter(settings.rate_limit) if settings.rate_limit else None
        policy = TargetPolicy(settings.allow_http_targets, settings.allow_private_targets)
        svc = Services(
            pipeline,
            policy,
            limiter,
            KeyCache(settings.auth_cache_seconds),
            auth_failures=SlidingWindowLimiter(AUTH_FAILURES),
            worker_stream=settings.worker_stream,
            access_log=settings.access_log,
        )
        sender = PushSender(pipeline, transport, push_settings, resolver or system_resolver)
        metrics.gauges.parked_claims = lambda: pipeline.board.parked
        metrics.gauges.push_in_flight = lambda: sender.in_flight
        metrics.gauges.worker_channels = lambda: len(pipeline.channels)
        http = HttpServer(Api(svc), limits or http_limits(settings))
        stop_requested = trio.Event()

        def stop() -> None:
            if pipeline.stop(settings.shutdown_grace_seconds):
                log.info(
                    "stopping: no new claims; reports taken for up to %gs",
                    settings.shutdown_grace_seconds,
                )
            http.stop()
            stop_requested.set()

        async def stop_when_settled() -> None:
            await stop_requested.wait()
            assert pipeline.shutdown.deadline is not None
            with trio.move_on_at(pipeline.shutdown.deadline):
                await http.wait_quiet()
                await pipeline.leases.wait_settled(clock)
                await sender.wait_idle()
                await http.wait_quiet()  # the last reports are answered
            nursery.cancel_scope.cancel()

        if gc_tuning:  # the process is set up; nothing is in flight yet
            tune_gc()
        async with trio.open_nursery() as nursery:
            # Startup recovery: anything left `admitting` by a previous process goes back now.
            await sweeper_once(pipeline, admitting_grace_ms=0)
            # Which handlers have limits (who must hear of a finish): loaded in the background,
            # not one more round trip before the server answers (a copy not loaded yet costs a
            # limited handler's waiting jobs at most admission's idle pass).
            nursery.start_soon(pipeline.limited.run, store)
            await nursery.start(run_admission, pipeline)
            await nursery.start(run_dispatch, pipeline, sender)
            await nursery.start(run_sweeper, pipeline)
            await nursery.start(pipeline.job_writer.run)  # group commit of single creates
            # Stats' job counts (PostgreSQL: fold the triggers' deltas) and history retention.
            await nursery.start(run_count_folding, pipeline)
            pruner = Pruner(store, clock, settings.retention, batch_size_for(store))
            svc.extra["retention"] = pruner
            await nursery.start(run_retention, pruner)
            # Other replicas' wake-ups (PostgreSQL LISTEN/NOTIFY); nothing to do on SQLite.
            await nursery.start(store.run_listener, pipeline.board)
            await nursery.start(store.run_probe)  # PostgreSQL outages: the breaker's probe
            await nursery.start(store.run_checkpoints)  # SQLite: WAL checkpoints off the writer
            listener, url = start_listening(bound)
            await nursery.start(http.serve, [listener])
            if metrics_listener is not None:
                metrics_http = HttpServer(MetricsApp(metrics, store), METRICS_LIMITS)
                await nursery.start(metrics_http.serve, [metrics_listener])
            nursery.start_soon(stop_when_settled)
            handle = ServerHandle([url], svc, stop, http, shown, metrics_url=metrics_url)
            if handle_signals or signals is not None:
                # `signals`: a receiver the caller opened before start-up (see cli._serve_one).
                nursery.start_soon(_watch_signals, stop, nursery.cancel_scope, signals)
            log.info(
                startup_line(settings, url, store.dialect, metrics_url),
                extra=ids(
                    event="startup",
                    version=chronos_version(),
                    store=store.dialect,
                    url=url,
                    workers=settings.workers,
                    metrics_url=metrics_url,
                ),
            )
            task_status.started(handle)
        handle.stopped.set()


async def _watch_signals(
    stop: Callable[[], None], scope: trio.CancelScope, signals: AsyncIterator[int] | None
) -> None:
    if signals is not None:
        await _on_signals(signals, stop, scope)
        return
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as own:
        await _on_signals(own, stop, scope)


async def _on_signals(
    signals: AsyncIterator[int], stop: Callable[[], None], scope: trio.CancelScope
) -> None:
    count = 0
    async for _ in signals:
        count += 1
        if count == 1:
            stop()
        else:
            log.warning("second signal: stopping at once")
            scope.cancel()
            return
