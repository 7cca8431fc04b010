"""`Worker`: handler registry, the poll loop, running handlers and reporting (§11.2, §11.4-5).

Shape of a run (`await worker.start()`):

    start()                                   owns the nurseries `reporting` and `work` (inner)
    ├── reporting: the report flusher         (concurrency > 1) sends reports in batches
    ├── claim loop   (inside `claim_scope`)   take a free claim token, long-poll until a job
    │                                         comes, hand the job to `work`; repeat
    └── work: one task per claimed job        wait for a handler slot, run the handler, free
                                              the slot and the token, report the outcome
                                              (retrying)

Two bounds (`prefetch.py`): `concurrency` handler slots (a `trio.Semaphore`, `run.slots`) and
claim tokens (`run.tokens`, a `ClaimTokens`), held from the claim until the handler has
returned. Tokens number `concurrency` plus the adaptive prefetch of the moment: 0 until enough
handler runs were measured, and only as many as fast handlers get through within about 0.1 s,
so a job of a slow handler is only claimed when a slot is free and never waits in the worker
while its lease runs. With the default of concurrency 1 (prefetch always 0) this is the
documented "one job at a time". The lease of a job (its `LeaseKeeper`, heartbeats included)
starts at the claim, so a prefetched job's lease is kept while it waits for its slot. A token is
free once its handler has returned: the next claim goes out while the report is being sent (two
requests in flight, on two connections), so a job costs one round trip, not two. Reports in
flight are bounded too: a finished job takes one of `concurrency + prefetch` report places
before it gives its token back, so when reports fail while claims succeed, claiming waits
instead of piling up unsent reports. With concurrency 1 this is still the plain protocol: one
job per claim, one report per job. Sync handlers run in threads through a
`CapacityLimiter(concurrency)`; async handlers run in the task.

With `concurrency > 1` the worker uses the two batch extensions. Batch claim: the claimer waits
for one free token, then also takes every token free at that moment (up to 100) and claims with
`max_jobs` = tokens held; tokens with no job are released, each job gets a task. Batch report:
handler tasks hand their report to a `ReportBatcher` (`reporting.py`) and wait until it is
settled; its flusher lives in `reporting`, which outlives `work`. Against a server without the
extensions (the hosted API) a 422 to `max_jobs` switches to single claims, and a 404/405 on the
batch route to single reports, each logged once and for the rest of the run. A third, the
timed start, is asked for only once a claim's answer offers it (`api.py`): a job may then come
up to 100 ms before it is due and waits here for its instant (its lease runs from then), so the
claim's round trip happens before the due instant rather than after it. With concurrency 1 no
extension is used: the wire protocol is exactly the documented one.

`stop()` cancels `claim_scope` (the pending long-poll dies at once, nothing more is claimed),
then waits until the `work` nursery has drained, i.e. every claimed job (running or still
waiting for a slot) has run and its report has been settled (the flusher is stopped only after
that). Job tasks, which send the reports, are deliberately outside `claim_scope`.

Claim outcomes (§11.4 / G-10): job -> run; no job -> poll again at once; no answer or a 5xx
(e.g. the 503 of a server in its graceful stop) -> sleep with exponential backoff and jitter
(`backoff.py`: the first pause `retry_delay_ms`, then doubling up to 30 s; a 503's `Retry-After`
is a floor), logging one WARNING when claims stop reaching the server and one INFO when they do
again, not a line per try; another unexpected answer -> an ERROR line, same backoff; 429 ->
sleep `Retry-After` (fallback: the backoff); 401/403 -> log, stop claiming, let running work
finish, `start()` raises `ChronosAuthError`.

Reports (`reporting.py`) are retried until the attempt's lease runs out, by the worker's clock;
then (and at once for a 4xx) they are settled and logged. Once a report is accepted,
`attempt_log.py` logs what became of the job: completed, failed and retried at a given time,
or failed for good.
"""

from __future__ import annotations

import enum
import inspect
import logging
import random
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from types import MappingProxyType
from typing import TypeVar, overload

import trio

from .api import MAX_BATCH, Claimed, WorkerAPI, open_worker_api
from .attempt_log import job_meta, log_attempt
from .backoff import Backoff, Reachability, pause_after
from .channel import channel_possible
from .context import ChronosContext
from .errors import ChronosAuthError, ChronosError, ChronosRequestError
from .lease import Heartbeats, LeaseKeeper
from .log import Log
from .outcome import Report, completed_report, failed_report
from .prefetch import ClaimTokens
from .reporting import ReportBatcher
from .settings import WorkerSettings
from .streaming import StreamRunner

Handler = Callable[[ChronosContext], object]
H = TypeVar("H", bound=Handler)

MAX_HANDLER_NAME = 255

# Set inside handler tasks so that `stop()` called by a handler does not wait for itself.
_current_worker: ContextVar[Worker | None] = ContextVar("chronos_current_worker", default=None)


class _Missing(enum.Enum):
    MISSING = enum.auto()


class _Run:
    """State of one `start()` call."""

    def __init__(
        self, concurrency: int, prefetch: int, backoff: Backoff, reach: Reachability
    ) -> None:
        self.claim_scope = trio.CancelScope()
        self.stop_requested = trio.Event()
        self.done = trio.Event()
        self.auth_error: ChronosAuthError | None = None
        self.batch_claims = concurrency > 1  # switched off if the server refuses `max_jobs`
        self.backoff = backoff  # pauses between failed claims
        self.reach = reach
        self.tokens = ClaimTokens(concurrency, prefetch)  # held from the claim to the return
        self.slots = trio.Semaphore(concurrency)  # held while a handler runs
        self.unsettled = trio.Semaphore(concurrency + prefetch)  # held while a report is sent
        self.limiter = trio.CapacityLimiter(concurrency)  # threads for sync handlers
        self.heartbeats: Heartbeats | None = None  # set by `_serve`


class Worker:
    """Registers handlers and runs them for claimed jobs. Obtain it as `Chronos(...).worker`."""

    def __init__(self, settings: WorkerSettings) -> None:
        self._settings = settings
        self._log = Log(settings.logger)
        self._rng = settings.rng if settings.rng is not None else random.Random()
        self._handlers: dict[str, Handler] = {}
        self._async: dict[str, bool] = {}  # per handler: run it on the loop, not in a thread
        self._run: _Run | None = None

    def __repr__(self) -> str:
        return f"<Worker handlers={sorted(self._handlers)!r} running={self.running}>"

    @property
    def settings(self) -> WorkerSettings:
        """The validated options this worker was built with (read-only)."""
        return self._settings

    @property
    def handlers(self) -> Mapping[str, Handler]:
        """Registered handlers by name (a read-only view)."""
        return MappingProxyType(self._handlers)

    @property
    def running(self) -> bool:
        """True from `start()` until it returns."""
        return self._run is not None

    @overload
    def handle(self, name: str) -> Callable[[H], H]: ...
    @overload
    def handle(self, name: str, fn: Handler) -> Worker: ...

    def handle(self, name: str, fn: object = _Missing.MISSING) -> Worker | Callable[[H], H]:
        """Register `fn` for jobs whose `handler` is `name`; returns the worker, so calls chain.

        Without `fn` it returns a decorator: `@chronos.worker.handle("send-email")`.
        Raises `ChronosError` for an empty or over-long name, a duplicate or a non-callable.
        """
        key = _check_name(name)
        if fn is _Missing.MISSING:

            def register(handler: H) -> H:
                self._register(key, handler)
                return handler

            return register
        self._register(key, fn)
        return self

    def _register(self, name: str, fn: object) -> None:
        if name in self._handlers:
            raise ChronosError(f'Handler "{name}" is already registered')
        if not callable(fn):
            raise ChronosError(f'Handler "{name}" must be a function')
        self._handlers[name] = fn
        self._async[name] = _is_async(fn)

    async def start(self) -> None:
        """Poll and run jobs until `stop()`; returns once in-flight work has been reported."""
        if self._run is not None:
            raise ChronosError("Chronos worker is already started")
        if not self._handlers:
            raise ChronosError("Register at least one handler before starting Chronos")
        run = self._run = _Run(
            self._settings.concurrency,
            self._settings.prefetch_limit,
            backoff=Backoff(self._settings.retry_delay_seconds, self._rng),
            reach=Reachability(self._log, "claims"),
        )
        try:
            await self._serve(run)
        finally:
            self._run = None
            run.done.set()
        if run.auth_error is not None:
            raise run.auth_error

    async def stop(self) -> None:
        """Stop claiming at once, wait for running handlers and their reports. Never raises."""
        run = self._run
        if run is None:
            return
        run.stop_requested.set()
        run.claim_scope.cancel()
        if _current_worker.get() is self:
            return  # called from one of our handlers: waiting here would wait for ourselves
        await run.done.wait()

    async def _serve(self, run: _Run) -> None:
        settings = self._settings
        self._log.info(
            "Worker started",
            base_url=settings.base_url,
            handlers=",".join(self._handlers),
            concurrency=settings.concurrency,
            prefetch=settings.prefetch_limit,
            protocol=settings.protocol,
        )
        async with open_worker_api(settings) as api, trio.open_nursery() as leases:
            run.heartbeats = Heartbeats(
                api.heartbeat, self._log, settings.retry_delay_seconds, self._rng
            )
            await leases.start(run.heartbeats.run)
            wants_stream = settings.protocol == "stream" or (
                settings.protocol == "auto" and channel_possible(settings)
            )
            if not (wants_stream and await self._stream(run, api)):
                run.heartbeats.beat = api.heartbeat
                await self._poll(run, api)
            leases.cancel_scope.cancel()
        self._log.info("Worker stopped")

    async def _stream(self, run: _Run, api: WorkerAPI) -> bool:
        """Run over the worker channel (`streaming.py`); False if the server has none."""

        async def execute(ctx: ChronosContext, claimed_at: float) -> tuple[Report | None, float]:
            _current_worker.set(self)
            return await self._run_job(run, ctx, claimed_at)

        # Over the channel a worker may hold more (two of the server's batches, `settings.py`);
        # nothing has used the long-poll's tokens yet, and a fallback to it gets them back.
        poll_tokens, poll_unsettled = run.tokens, run.unsettled
        prefetch = self._settings.channel_prefetch_limit
        if prefetch != run.tokens.prefetch:
            run.tokens = ClaimTokens(self._settings.concurrency, prefetch)
            run.unsettled = trio.Semaphore(self._settings.concurrency + prefetch)
        runner = StreamRunner(
            self._settings,
            self._log,
            self._rng,
            api,
            execute,
            run.tokens,
            run.unsettled,
            list(self._handlers),
        )
        assert run.heartbeats is not None
        run.heartbeats.beat = runner.heartbeat
        offered = await runner.run(run.stop_requested)
        run.auth_error = runner.auth_error
        if not offered:  # no job ran: the long-poll takes over with its own bounds
            run.tokens, run.unsettled = poll_tokens, poll_unsettled
        return offered

    async def _poll(self, run: _Run, api: WorkerAPI) -> None:
        """Run over the long-poll (the spec's protocol; batch extensions with concurrency > 1)."""
        concurrency = self._settings.concurrency
        async with trio.open_nursery() as reporting:
            batcher = ReportBatcher(
                api,
                self._log,
                self._settings.retry_delay_seconds,
                self._rng,
                batching=concurrency > 1,
            )
            if batcher.batching:
                reporting.start_soon(batcher.run)
            async with trio.open_nursery() as work:
                with run.claim_scope:
                    try:
                        await self._claim_loop(run, api, work, batcher)
                    except ChronosAuthError as exc:
                        self._log.error("API key refused; worker stopping", error=str(exc))
                        run.auth_error = exc
            # `work` has drained, so every report is settled and the flusher is idle.
            reporting.cancel_scope.cancel()

    async def _claim_loop(
        self,
        run: _Run,
        api: WorkerAPI,
        work: trio.Nursery,
        batcher: ReportBatcher,
    ) -> None:
        tokens = run.tokens
        while True:
            await tokens.acquire_for_claim()
            held = 1
            while True:
                if run.batch_claims:
                    held += tokens.take_free(MAX_BATCH - held)
                    # The prefetch shrank while a claim found nothing: hold no more than it allows.
                    over = min(tokens.held - tokens.limit, held - 1)
                    if over > 0:
                        tokens.release(over)
                        held -= over
                jobs = await self._claim(run, api, held)
                if not run.batch_claims and held > 1:  # just fell back to single claims
                    tokens.release(held - 1)
                    held = 1
                if jobs:
                    break
            if held > len(jobs):
                tokens.release(held - len(jobs))
            now = trio.current_time()
            for job in jobs:
                # The lease started on the server just before its answer left (a job handed
                # over ahead of its due instant: at that instant, `start_in` from now): by our
                # clock it runs out `timeout` seconds from then, give or take the transit.
                work.start_soon(self._execute, run, api, batcher, job.ctx, now + job.start_in)

    async def _claim(self, run: _Run, api: WorkerAPI, held: int) -> list[Claimed]:
        """One claim for up to `held` jobs; [] for no job, or after a failure (logged and
        waited out). A 422 to a batch claim switches the run to single claims."""
        try:
            if run.batch_claims:
                jobs = await api.claim_batch(list(self._handlers), held)
            else:
                one = await api.claim(list(self._handlers))
                jobs = [] if one is None else [one]
        except ChronosRequestError as exc:
            run.reach.observe(exc)
            if run.batch_claims and exc.status == 422:
                run.batch_claims = False
                self._log.info(
                    "The server has no batch claims; claiming one job at a time", error=str(exc)
                )
                return []
            await self._claim_failed(run, exc)
            return []
        run.reach.reached()
        run.backoff.reset()
        return jobs

    async def _claim_failed(self, run: _Run, exc: ChronosRequestError) -> None:
        delay = pause_after(exc, run.backoff)
        if exc.unreachable:  # the WARNING (once) came from `run.reach`
            self._log.debug("Claim failed; retrying", error=str(exc), retry_in_s=round(delay, 3))
        else:
            log = self._log.warning if exc.status == 429 else self._log.error
            log("Claim failed; polling again later", error=str(exc), retry_in_s=round(delay, 3))
        await trio.sleep(delay)

    async def _execute(
        self,
        run: _Run,
        api: WorkerAPI,
        batcher: ReportBatcher,
        ctx: ChronosContext,
        start: float,
    ) -> None:
        _current_worker.set(self)
        try:
            if start > trio.current_time():  # handed over ahead: it starts at its due instant
                await trio.sleep_until(start)
            report, deadline = await self._run_job(run, ctx, start)
            if report is None:
                return  # the lease was lost: nothing to report (logged)
            # The token is free once the handler has returned: the next claim goes out while
            # this report is sent. Unless every report place is taken (reports failing while
            # claims succeed): then the token waits, and claiming with it.
            await _acquire(run.unsettled)
        finally:
            run.tokens.release()
        try:
            if await batcher.report(ctx, report, deadline):
                await log_attempt(api, self._log, ctx, report)
        finally:
            run.unsettled.release()

    async def _run_job(
        self, run: _Run, ctx: ChronosContext, claimed_at: float
    ) -> tuple[Report | None, float]:
        """Wait for a handler slot, then run the handler, while the lease is kept (from the
        claim on: a prefetched job's lease is kept while it waits); (its report or None if the
        lease was lost, the lease's end by our clock). `claimed_at`: when the claim answer
        arrived (the lease started on the server just before; it runs `timeout` seconds from
        then)."""
        assert run.heartbeats is not None
        keeper = LeaseKeeper(ctx, run.heartbeats, claimed_at)
        keeper.cancel_on_loss = self._async.get(ctx.handler, True)
        keeper.start()
        try:
            await _acquire(run.slots)
            try:
                if keeper.lost:  # lost while waiting for the slot: not run at all
                    return None, keeper.deadline
                started = trio.current_time()
                report = await self._run_handler(ctx, run.limiter, keeper.scope)
                run.tokens.observe(trio.current_time() - started)
            finally:
                run.slots.release()
        finally:
            keeper.finish()
        return (None if keeper.lost else report), keeper.deadline

    async def _run_handler(
        self, ctx: ChronosContext, limiter: trio.CapacityLimiter, scope: trio.CancelScope
    ) -> Report:
        if self._log.enabled(logging.DEBUG):
            self._log.debug("Job claimed", **job_meta(ctx))
        result: object = None
        try:
            fn = self._handlers.get(ctx.handler)
            if fn is None:
                raise ChronosError(f'No handler registered for "{ctx.handler}"')
            with scope:  # cancelled if the lease is lost (an async handler)
                result = await _call_handler(fn, self._async[ctx.handler], ctx, limiter)
        except Exception as exc:
            # The outcome is logged once the server has said what it means for the job.
            if self._log.enabled(logging.DEBUG):
                error = f"{type(exc).__name__}: {exc}"
                self._log.debug("Handler raised", error=error, **job_meta(ctx))
            return failed_report(exc)
        report = completed_report(result)
        if report.warning is not None:
            self._log.warning(report.warning, **job_meta(ctx))
        return report


def _check_name(name: object) -> str:
    key = name.strip() if isinstance(name, str) else ""
    if not key:
        raise ChronosError("Handler name is required")
    if len(key) > MAX_HANDLER_NAME:
        raise ChronosError("Handler name must be 255 characters or fewer")
    return key


def _is_async(fn: Handler) -> bool:
    if inspect.iscoroutinefunction(fn):
        return True
    call = getattr(fn, "__call__", None)  # noqa: B004 - an async __call__ on an instance
    return inspect.iscoroutinefunction(call)


async def _call_handler(
    fn: Handler, is_async: bool, ctx: ChronosContext, limiter: trio.CapacityLimiter
) -> object:
    if is_async:
        result = fn(ctx)
    else:
        result = await trio.to_thread.run_sync(fn, ctx, limiter=limiter)
    if inspect.isawaitable(result):
        result = await result  # also covers sync callables that return a coroutine
    return result


async def _acquire(semaphore: trio.Semaphore) -> None:
    """`semaphore.acquire()`, without a pass through the scheduler when a token is free."""
    try:
        semaphore.acquire_nowait()
    except trio.WouldBlock:
        await semaphore.acquire()
