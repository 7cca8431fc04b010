"""Taking jobs over the worker channel (`GET /v1/worker/stream`, extension) instead of long-polls.

Shape of a run (`StreamRunner.run()`, called by `Worker.start()`):

    run()                                   owns `work` (one task per job) and the stop watcher
    └── connection loop                     open the channel, run a session; when it breaks,
        └── session (one WebSocket)         reconnect with backoff; until stopped and idle
            ├── sender                      results not yet sent on this channel (up to 100
            │                               per message), heartbeats (`channel_beats.py`),
            │                               new credits, `drain`, pings
            └── receiver                    `jobs` -> a task each, `acks` -> settle results,
                                            `heartbeat_acks`, `drained`, `stopping`, `pong`

Credits are the free claim tokens (`prefetch.ClaimTokens`, as for polling): the jobs the worker
holds and the credits granted on this channel and not yet used by a job together stay within
`concurrency` plus the adaptive prefetch of the moment. The `hello` grants the tokens
free at that moment; whenever more are free (a job's handler returned, the prefetch grew) the
difference is granted with a `credit` message. When the prefetch shrinks, fewer new credits are
granted until the jobs held fall under the new limit; a credit granted is never revoked. A job
takes its token when it arrives, then waits for one of `concurrency` handler slots (in
`Worker._run_job`, its lease kept from its arrival on), and gives the token back when its
handler returns; the server never sends more jobs than credits, so never more than `concurrency`
handlers run and never more jobs are held than tokens. A finished job first takes one of
`concurrency + prefetch` outbox places (held until its result is settled), so the outbox of
unacknowledged results is bounded: when acknowledgements stop coming, tokens stop freeing and
no new credit is granted.

Results are settled only when acknowledged: an ack with `success` is an accepted report, a
refusal (`execution_not_found`, `lease_expired`, `execution_already_finished`,
`validation_error`) is final and logged as the long-poll path logs the same answer to `POST
.../result` (`attempt_log`). When the channel breaks, results sent and not acknowledged stay in
the outbox and are sent again on the next channel (the server may have recorded one before the
break: its second ack is then a refusal such as `execution_already_finished`, logged like any
refusal, never a second execution). A result waits at most until its lease has run out by the
worker's clock plus `ACK_GRACE_SECONDS`; then it is given up (the server times the attempt out).

Reconnecting: `Backoff` (exponential, with jitter, the first pause also jittered so workers
that lost the same server do not come back in step); a 503's `Retry-After` is a floor, a 429's
is obeyed. One WARNING when the server cannot be reached, one INFO when it can again.

Heartbeats: the sender pings when it has sent nothing for the server's `heartbeat_seconds`; the
server answers each ping, so a channel on which nothing arrives for twice that is dead and is
closed and opened again.

Stop (`stop` event, set by `Worker.stop()`): the sender sends `drain`; the server sends no more
jobs on this channel and answers `drained` once every job it sent here is reported. The jobs
that were already on their way still run. When the handlers have returned, their results are
acknowledged and `drained` has come, the channel is closed (1000). A channel opened during the
stop (after a break) says `hello` with 0 credits and drains at once.

Against a server without the channel (the upgrade answered 404 or another 4xx that is not
401/403/408/429) `run()` returns False before any job ran, unless the channel was forced
(`protocol="stream"`): then it is an error, logged and retried with backoff.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import trio
from trio_websocket import ConnectionClosed, WebSocketConnection

from .api import WorkerAPI, result_item, worker_label
from .attempt_log import job_meta, log_attempt, log_give_up, log_refusal, log_settled
from .backoff import Backoff, Reachability, pause_after
from .channel import (
    ChannelBroken,
    NoChannel,
    open_channel,
    receive_json,
    send_json,
)
from .channel_beats import ChannelBeats
from .context import ChronosContext, parse_job
from .context import start_in as job_start_in
from .errors import ChronosAuthError, ChronosRequestError
from .log import Log
from .outcome import Report
from .prefetch import ClaimTokens
from .server_clock import ServerClock
from .settings import WorkerSettings

WELCOME_SECONDS = 10.0
DEFAULT_HEARTBEAT_SECONDS = 15.0
ACK_GRACE_SECONDS = 10.0
DRAINED_SECONDS = 30.0  # a server that does not answer `drain` is not waited for longer
MAX_CREDITS = 1000  # the server's bound on the credits of one channel
MAX_RESULTS_PER_MESSAGE = 100
MAX_RESULTS_BYTES = 512 * 1024  # well under the server's 1 MiB message limit
CLOSE_UNKNOWN_MESSAGE = 1008

# (job, when it arrived) -> (its report, or None if its lease was lost; its lease's end)
Execute = Callable[[ChronosContext, float], Awaitable[tuple[Report | None, float]]]


@dataclass(eq=False)
class _Outgoing:
    """A result waiting for its ack."""

    ctx: ChronosContext
    report: Report
    deadline: float  # Trio time after which the lease has run out
    item: bytes
    settled: bool = False
    sent_on: int = 0  # the session it was last sent on (0: none)
    tries: int = 0


class StreamRunner:
    """One run of a worker over the channel (see the module doc)."""

    def __init__(
        self,
        settings: WorkerSettings,
        log: Log,
        rng: random.Random,
        api: WorkerAPI,
        execute: Execute,
        tokens: ClaimTokens,
        unsettled: trio.Semaphore,
        handlers: list[str],
    ) -> None:
        self._settings = settings
        self._log = log
        self._rng = rng
        self._api = api
        self._execute_handler = execute
        self._tokens = tokens
        self._unsettled = unsettled
        self._handlers = handlers
        self._forced = settings.protocol == "stream"
        self._backoff = Backoff(settings.retry_delay_seconds, rng)
        self._reach = Reachability(log, "the worker channel")
        self._outbox: dict[str, _Outgoing] = {}
        # (give-up instant, sequence, result): the results waiting for an ack, earliest first;
        # settled ones leave lazily (when on top, or all at once when they are most of it)
        self._expiries: list[tuple[float, int, _Outgoing]] = []
        self._expiry_seq = 0
        self._expiry_changed = trio.lowlevel.ParkingLot()
        self._changed = trio.lowlevel.ParkingLot()  # anything `_wait_until` may wait for
        self._nudge = trio.Event()  # wakes the sender
        self._active = 0  # jobs whose handler runs or whose result is unsettled
        self._credits = 0  # granted on this channel, not yet used by a job
        self._session = 0
        self._connected_once = False
        self._stopping = False
        self._drain_sent = False
        self._drain_unsupported = False
        self._drained = False
        self._work: trio.Nursery | None = None
        self._beats = ChannelBeats(self._wake)
        self.auth_error: ChronosAuthError | None = None
        self.jobs_run = 0

    async def run(self, stop: trio.Event) -> bool:
        """Run jobs until `stop` is set and all work is settled; False (at once) if the server
        has no channel and it was not forced."""
        async with trio.open_nursery() as outer:
            outer.start_soon(self._watch_stop, stop)
            outer.start_soon(self._expire_loop)
            async with trio.open_nursery() as work:
                self._work = work
                offered = await self._connect_loop()
            outer.cancel_scope.cancel()
        return offered

    async def _watch_stop(self, stop: trio.Event) -> None:
        await stop.wait()
        self._stopping = True
        self._wake()
        self._changed.unpark_all()

    def _wake(self) -> None:
        """Wake the sender: results, credits or heartbeats to send. (What `_wait_until` waits
        for — the stop, the last job settled, `drained` — unparks `_changed` itself: waking
        those waiters for every job cost a task switch or two per job.)"""
        self._nudge.set()

    async def _wait_until(self, done: Callable[[], bool]) -> None:
        while not done():
            await self._changed.park()

    def _finished(self) -> bool:
        return self._stopping and self._active == 0

    async def _connect_loop(self) -> bool:
        while not self._finished():
            if self.auth_error is not None:  # nothing more can be reported: wait for handlers
                await self._wait_until(self._finished)
                break
            try:
                async with open_channel(self._settings) as ws:
                    await self._run_session(ws)
                continue
            except ChronosAuthError as exc:
                self._auth_failed(exc)
                continue
            except NoChannel as exc:
                if not self._forced and not self._connected_once:
                    self._log.info(
                        "The server offers no worker channel; using the long-poll", error=str(exc)
                    )
                    return False
                self._reach.reached()
                self._log.error("Worker channel refused; retrying later", error=str(exc))
                failure = ChronosRequestError(str(exc), exc.status)
            except ChronosRequestError as exc:
                self._on_break(exc)
                failure = exc
            await self._pause(failure)
        return True

    def _on_break(self, exc: ChronosRequestError) -> None:
        if isinstance(exc, ChannelBroken) and exc.close_code == CLOSE_UNKNOWN_MESSAGE:
            if self._drain_sent:  # a server that predates `drain`: stop without it
                self._drain_unsupported = True
            self._log.error("The server closed the worker channel", error=str(exc))
            return
        was_down = self._reach.down
        self._reach.failed(exc)
        if was_down or not self._connected_once:
            self._log.debug("Worker channel: connection failed", error=str(exc))
        else:
            self._log.debug("Worker channel broke; reconnecting", error=str(exc))

    async def _pause(self, exc: ChronosRequestError) -> None:
        delay = pause_after(exc, self._backoff)
        if exc.retry_after is None:  # the first pause is jittered too: workers spread out
            delay *= self._rng.uniform(0.5, 1.0)
        with trio.move_on_after(delay):
            await self._wait_until(self._finished)

    def _auth_failed(self, exc: ChronosAuthError) -> None:
        self._log.error("API key refused; worker stopping", error=str(exc))
        self.auth_error = exc
        self._stopping = True
        for item in list(self._outbox.values()):
            self._refuse(item, str(exc), None, exc.status)

    async def heartbeat(self, execution_id: str, seconds: int | None) -> str:
        """A `lease.Beat` over the channel (`channel_beats.py`)."""
        return await self._beats.beat(execution_id, seconds)

    # -- one channel --------------------------------------------------------------------------

    async def _run_session(self, ws: WebSocketConnection) -> None:
        self._session += 1
        session = self._session
        credits = 0 if self._stopping else min(self._tokens.free(), MAX_CREDITS)
        self._credits = credits
        hello = {
            "type": "hello",
            "handlers": self._handlers,
            "worker": worker_label(),
            "credits": credits,
        }
        await send_json(ws, hello)
        welcome = await receive_json(ws, WELCOME_SECONDS)
        if welcome["type"] != "welcome":
            raise ChronosRequestError(f"worker channel: expected welcome, got {welcome['type']}")
        heartbeat = _seconds(welcome.get("heartbeat_seconds"), DEFAULT_HEARTBEAT_SECONDS)
        if "lead_ms" in welcome:  # the server may send jobs ahead: start each on time here
            await send_json(ws, {"type": "timed_start"})
        if welcome.get("brief_acks") is True:  # acks without the execution: we never read it
            await send_json(ws, {"type": "brief_acks"})
        self._reach.reached()
        self._backoff.reset()
        if not self._connected_once:
            self._log.info("Worker channel open", handlers=",".join(self._handlers))
        self._connected_once = True
        self._drain_sent = self._drained = False
        broken: list[BaseException] = []
        async with trio.open_nursery() as nursery:
            for loop in (self._send_loop, self._receive_loop):
                nursery.start_soon(_until_broken, loop, ws, session, heartbeat, broken, nursery)
            await self._wait_until(self._finished)
            # Jobs the server sent before it read `drain` may still come: `drained` says none is
            # left. Not waited for without end (a server that never answers).
            with trio.move_on_after(DRAINED_SECONDS):
                await self._wait_until(self._may_close)
            nursery.cancel_scope.cancel()
        if broken:
            raise broken[0]

    def _may_close(self) -> bool:
        return self._finished() and (self._drained or self._drain_unsupported)

    async def _send_loop(self, ws: WebSocketConnection, session: int, heartbeat: float) -> None:
        last_sent = trio.current_time()
        while True:
            with trio.move_on_at(last_sent + heartbeat):
                await self._nudge.wait()
            self._nudge = trio.Event()
            sent = await self._send_results(ws, session)
            if await self._beats.send(ws):
                sent = True
            # The results of the jobs whose tokens a credit gives again leave before it (a
            # token is freed with its result in the outbox): by the server's count, too, the
            # credits and the jobs not yet reported stay within the limit.
            while await self._send_results(ws, session):
                sent = True
            n = self._credit_due()
            if n > 0:
                self._credits += n  # before the send: a job may come for it before it returns
                await send_json(ws, {"type": "credit", "n": n})
                sent = True
            if self._stopping and not (self._drain_sent or self._drain_unsupported):
                self._drain_sent = True
                await send_json(ws, {"type": "drain"})
                sent = True
            if not sent and trio.current_time() >= last_sent + heartbeat:
                await send_json(ws, {"type": "ping"})
                sent = True
            if sent:
                last_sent = trio.current_time()

    def _credit_due(self) -> int:
        """New credits to grant: the free tokens not already granted (none while stopping).
        While prefetching, only once they are half the limit: tokens free one job at a time
        as prefetched jobs drain, and a credit per freed token makes the server claim one job
        per statement (the credits still granted keep jobs coming meanwhile)."""
        if self._stopping:
            return 0
        due = min(self._tokens.free(), MAX_CREDITS) - self._credits
        tokens = self._tokens
        if 0 < due < max(1, tokens.limit // 2) and tokens.prefetch_now > 0:
            return 0
        return due

    async def _send_results(self, ws: WebSocketConnection, session: int) -> bool:
        todo = [item for item in self._outbox.values() if item.sent_on != session]
        for chunk in _chunks(todo):
            text = b'{"type":"results","results":[' + b",".join(i.item for i in chunk) + b"]}"
            await ws.send_message(text.decode("utf-8"))
            for item in chunk:
                item.sent_on = session
                item.tries += 1
        return bool(todo)

    async def _receive_loop(self, ws: WebSocketConnection, session: int, heartbeat: float) -> None:
        clock = ServerClock()  # this channel's server: a reconnect may reach another
        while True:
            message = await receive_json(ws, 2 * heartbeat)
            kind = message["type"]
            if kind == "jobs":
                self._start_jobs(message.get("jobs"), _number(message.get("sent_at")), clock)
            elif kind == "acks":
                self._settle_acks(message.get("results"))
            elif kind == "heartbeat_acks":
                self._beats.settle(message.get("results"))
            elif kind == "drained":
                self._drained = True
                self._changed.unpark_all()
            elif kind == "stopping":
                self._log.info("The server is stopping; its channel will close")
            elif kind != "pong":
                self._log.debug("Worker channel: unknown message ignored", type=kind)

    # -- jobs and results ---------------------------------------------------------------------

    def _start_jobs(self, jobs: object, sent_at: float | None, clock: ServerClock) -> None:
        if not isinstance(jobs, list):
            self._log.error("Worker channel: malformed jobs message ignored")
            return
        assert self._work is not None
        now = trio.current_time()
        if sent_at is not None:
            clock.observe(sent_at, now)
        for data in jobs:
            start_in = job_start_in(data)
            if start_in and sent_at is not None:  # its due instant, less no transit
                start = clock.local_time(sent_at + start_in * 1000, now)
            else:
                start = now + start_in
            try:
                ctx = parse_job(data if isinstance(data, dict) else {})
            except ValueError as exc:
                self._log.error("Worker channel: malformed job ignored", error=str(exc))
                continue
            if self._credits <= 0:
                self._log.error(
                    "The server sent a job beyond the credits granted; leaving it to its lease",
                    **job_meta(ctx),
                )
                continue
            self._credits -= 1
            self._tokens.take_granted()
            self._active += 1
            self.jobs_run += 1
            # The lease started on the server just before the message left (a job sent ahead:
            # it starts `start_in_ms` after): by our clock it runs out `timeout` seconds from
            # then, give or take the message's transit.
            self._work.start_soon(self._execute, ctx, start)

    async def _execute(self, ctx: ChronosContext, start: float) -> None:
        try:
            try:
                # A job sent ahead of its due instant (`start_in_ms`) starts at that instant;
                # its lease, too, runs from then.
                if start > trio.current_time():
                    await trio.sleep_until(start)
                report, deadline = await self._execute_handler(ctx, start)
                if report is not None:
                    # Bounded outbox: the token (and its credit) comes back only once there is
                    # room for this result among the unsettled ones.
                    await self._unsettled.acquire()
            finally:
                self._tokens.release()
                self._wake()
        except BaseException:
            self._job_over()
            raise
        if report is None:
            self._job_over()  # the lease was lost: nothing to report (logged)
        else:
            self._deliver(ctx, report, deadline)

    def _job_over(self) -> None:
        self._active -= 1
        if self._active == 0:  # what `_finished` waits for
            self._changed.unpark_all()

    def _deliver(self, ctx: ChronosContext, report: Report, deadline: float) -> None:
        """Queue a result (its outbox place taken) to be sent; from here on it is settled by
        its ack (`_settle_acks`), a break of the API key (`_auth_failed`) or, when none came
        in time, given up (`_expire_loop`): no task waits for it."""
        if self.auth_error is not None:
            self._refuse_report(ctx, report, str(self.auth_error), None, self.auth_error.status)
            self._free_place()
            return
        item = _Outgoing(ctx, report, deadline, result_item(ctx.execution_id, report.body))
        self._outbox[ctx.execution_id] = item
        self._expiry_seq += 1
        heapq.heappush(self._expiries, (deadline + ACK_GRACE_SECONDS, self._expiry_seq, item))
        if self._expiries[0][2] is item:  # the earliest now: the expiry loop sleeps less
            self._expiry_changed.unpark_all()
        self._wake()

    def _settle(self, item: _Outgoing) -> None:
        """The result is over (acknowledged, refused or given up): its place is free."""
        self._outbox.pop(item.ctx.execution_id, None)
        item.settled = True
        self._free_place()

    def _free_place(self) -> None:
        self._unsettled.release()
        self._job_over()
        if len(self._expiries) > 2 * len(self._outbox) + 64:  # mostly settled ones: drop them
            self._expiries = [e for e in self._expiries if not e[2].settled]
            heapq.heapify(self._expiries)

    async def _expire_loop(self) -> None:
        """Give up the results that got no ack until their lease ran out (+ a grace)."""
        while True:
            expiries = self._expiries
            while expiries and expiries[0][2].settled:
                heapq.heappop(expiries)
            if not expiries:
                await self._expiry_changed.park()
            elif expiries[0][0] <= trio.current_time():
                item = heapq.heappop(expiries)[2]
                log_give_up(self._log, item.ctx, item.report, item.tries, "no acknowledgement")
                self._settle(item)
            else:
                with trio.move_on_at(expiries[0][0]):
                    await self._expiry_changed.park()

    def _settle_acks(self, acks: object) -> None:
        if not isinstance(acks, list):
            self._log.error("Worker channel: malformed acks message ignored")
            return
        for ack in acks:
            if not isinstance(ack, dict):
                continue
            item = self._outbox.get(str(ack.get("execution_id")))
            if item is None:
                continue  # a result given up meanwhile
            if ack.get("success") is True:
                if log_settled(self._log, item.ctx, item.report):
                    self._settle(item)
                else:  # a failure that may be retried: the job is read to say when
                    self._outbox.pop(item.ctx.execution_id, None)
                    item.settled = True
                    assert self._work is not None
                    self._work.start_soon(self._log_then_free, item)
            else:
                code, message = ack.get("code"), ack.get("message")
                code = code if isinstance(code, str) else None
                error = f"{code}: {message}" if code else str(message)
                self._refuse(item, error, code, None)

    async def _log_then_free(self, item: _Outgoing) -> None:
        try:
            await log_attempt(self._api, self._log, item.ctx, item.report)
        finally:
            self._free_place()

    def _refuse(self, item: _Outgoing, error: str, code: str | None, status: int | None) -> None:
        self._refuse_report(item.ctx, item.report, error, code, status)
        self._settle(item)

    def _refuse_report(
        self, ctx: ChronosContext, report: Report, error: str, code: str | None, status: int | None
    ) -> None:
        log_refusal(self._log, ctx, report, error, code=code, status=status)


async def _until_broken(
    loop: Callable[[WebSocketConnection, int, float], Awaitable[None]],
    ws: WebSocketConnection,
    session: int,
    heartbeat: float,
    broken: list[BaseException],
    nursery: trio.Nursery,
) -> None:
    """Run one of a session's loops; a break ends the session (recorded, not raised, so the
    session raises one exception, not a group)."""
    try:
        await loop(ws, session, heartbeat)
    except (ConnectionClosed, ChronosRequestError) as exc:
        broken.append(exc)
        nursery.cancel_scope.cancel()


def _chunks(items: list[_Outgoing]) -> Iterator[list[_Outgoing]]:
    chunk: list[_Outgoing] = []
    size = 0
    for item in items:
        if chunk and (
            len(chunk) >= MAX_RESULTS_PER_MESSAGE or size + len(item.item) > MAX_RESULTS_BYTES
        ):
            yield chunk
            chunk, size = [], 0
        chunk.append(item)
        size += len(item.item)
    if chunk:
        yield chunk


def _number(value: object) -> float | None:
    """A JSON number as a float, or None for anything else."""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _seconds(value: Any, default: float) -> float:
    number = _number(value)
    return number if number is not None and 0 < number < 3600 else default
