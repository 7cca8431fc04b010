"""`GET /v1/worker/stream` (extension): one WebSocket per worker, instead of long-polls.

The worker opens it with its API key (the `Authorization` header of the upgrade request), says
`hello` with its handlers and its free slots (credits), and from then on the server sends a job
the moment one is ready and a credit is left — no claim request, no re-poll — and acknowledges
the results the worker sends, with the codes of `POST /v1/worker/executions/:id/result`. Leases,
retries and execution records are exactly those of the long-poll path: the same claim protocol
(`pipeline/claims.py`) and the same report recording (`pipeline/outcomes.py`).

Messages are JSON text, one object each, with a `type` (README, "Worker channel"):

    worker → server   hello {handlers, worker?, credits}   credit {n}   results {results: [...]}
                      ping   drain   heartbeat {execution_ids: [...], extend_seconds?}
                      timed_start   brief_acks
    server → worker   welcome {heartbeat_seconds, max_credits, lead_ms, brief_acks}
                      jobs {jobs: [...], sent_at?}
                      acks {results: [...]}   pong   stopping   drained
                      heartbeat_acks {results: [...]}

`timed_start` says the worker starts a job that carries `start_in_ms` that many milliseconds after
it arrives: from then on the server may send a job up to `lead_ms` (welcome) before it is due,
its execution started (and its lease counted) as of the due instant, so the claim and the
message happen before the instant instead of after it. Such a `jobs` message says when it left
(`sent_at`, Unix ms by the server's clock): the worker takes the message's transit out of the
wait (`chronos_worker/server_clock.py`).

`brief_acks` says the worker does not read the execution an accepted result's ack carries in
`data`: from then on those acks are `{execution_id, success: true}` alone (most of what a busy
channel encodes and decodes otherwise). The welcome's `brief_acks: true` says the server knows it.

`drain` is a worker's graceful stop: no job is sent on the channel after it (a claim in progress
is given up, its jobs go back to `ready`), results are still taken, and `drained` is sent once
every job sent on the channel is reported; the worker then closes it.

Close codes: 1008 a message that is not JSON, not an object, of an unknown type, out of order or
invalid (reason says which); 1009 a message over 1 MiB; 1003 a binary message; 1001 the server
is stopping or the worker went silent for `IDLE_SECONDS`. A job sent on a channel that breaks
before its result arrives is retried after its lease, like any other.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal

import trio
from pydantic import BaseModel, ConfigDict, Field, StrictInt, TypeAdapter
from pydantic import ValidationError as PydanticValidationError

from chronos_server.api.context import Call, Reply, ok, path_id
from chronos_server.api.routes_worker import outcome_of
from chronos_server.api.routing import Endpoint, Routes
from chronos_server.api.schemas import (
    MAX_EXTEND_SECONDS,
    BatchResultItem,
    Handler,
    Text,
    field_errors,
)
from chronos_server.api.serialize import claim_json, execution_json
from chronos_server.api.timefmt import iso
from chronos_server.core.models import ClaimedJob, Outcome
from chronos_server.errors import BadRequest, ChronosError, NotFound, Stopping, ValidationFailed
from chronos_server.pipeline.claims import claim_jobs
from chronos_server.pipeline.outcomes import extend_leases, record_reports
from chronos_server.pipeline.services import ChannelInfo, Pipeline
from chronos_server.pipeline.signals import HAND_OFF_EARLY_MS, Nudge
from chronos_server.web.websocket import HandshakeRefused, WebSocket, WebSocketClosed

HELLO_SECONDS = 10.0
# How often the worker should ping when it has nothing else to say. Each ping is a read and a
# write on the socket for the server: at 15 s, 10,000 idle workers cost 15 % of a core, at 30 s
# 8-12 %, at 60 s 5 %. A worker whose host vanished is noticed sooner than this by TCP
# keep-alive (`web.websocket.keep_alive`: ~30 s); pings keep proxies from closing an idle
# channel and catch a peer that is up but no longer answers.
HEARTBEAT_SECONDS = 60.0
IDLE_SECONDS = 125.0  # nothing from the worker this long: it is gone
PARK_SECONDS = 60.0  # a parked claim is renewed this often (no query while nothing is ready)
MAX_CREDITS = 1000
# The most jobs one claim statement takes for a channel (as a batch claim's `max_jobs`): a worker
# granting 200 credits gets two batches, the first on its way while the second is claimed.
MAX_JOBS_PER_CLAIM = 100
RESULT_MESSAGES_BUFFERED = 64


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Hello(_Message):
    type: Literal["hello"]
    handlers: Annotated[list[Handler], Field(min_length=1, max_length=100)]
    worker: Annotated[Text, Field(max_length=255)] | None = None
    credits: Annotated[StrictInt, Field(ge=0, le=MAX_CREDITS)]


class Credit(_Message):
    type: Literal["credit"]
    n: Annotated[StrictInt, Field(ge=1, le=MAX_CREDITS)]


class Results(_Message):
    type: Literal["results"]
    results: Annotated[list[dict[str, Any]], Field(min_length=1, max_length=100)]


class Ping(_Message):
    type: Literal["ping"]


class Drain(_Message):
    type: Literal["drain"]


class TimedStart(_Message):
    type: Literal["timed_start"]


class BriefAcks(_Message):
    type: Literal["brief_acks"]


class Heartbeat(_Message):
    """Lease extension for executions sent on any channel of the account (extension)."""

    type: Literal["heartbeat"]
    execution_ids: Annotated[list[str], Field(min_length=1, max_length=100)]
    extend_seconds: Annotated[StrictInt, Field(ge=1, le=MAX_EXTEND_SECONDS)] | None = None


AnyMessage = Hello | Credit | Results | Ping | Drain | Heartbeat | TimedStart | BriefAcks
ClientMessage = Annotated[AnyMessage, Field(discriminator="type")]
_MESSAGES: TypeAdapter[AnyMessage] = TypeAdapter(ClientMessage)
_ITEM = TypeAdapter(BatchResultItem)
_PING = Ping(type="ping")


class BadMessage(Exception):
    """A message that closes the channel (1008), with why."""


PING_TEXT = '{"type":"ping"}'
PONG_TEXT = '{"type":"pong"}'


def parse_message(text: str) -> AnyMessage:
    if text == PING_TEXT:  # most of what an idle channel says: no validation to do
        return _PING
    try:
        return _MESSAGES.validate_json(text)
    except PydanticValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "message"
        raise BadMessage(f"{where}: {first['msg']}"[:100]) from None


async def stream(call: Call) -> Reply:
    accept = call.request.accept_websocket
    if accept is None:
        raise BadRequest("GET /v1/worker/stream needs a WebSocket upgrade")
    if not call.svc.worker_stream:
        raise NotFound("Route not found")  # switched off: as if the route did not exist
    if call.pipeline.shutdown.stopping:
        raise Stopping()
    try:
        ws = await accept([])
    except HandshakeRefused as exc:
        raise BadRequest(f"Not a valid WebSocket handshake: {exc}") from None
    await Channel(call.pipeline, call.account.id, ws).run()
    return ok(None, "Channel closed")  # never written: the connection was handed over


class Channel:
    def __init__(self, p: Pipeline, account_id: str, ws: WebSocket) -> None:
        self.p = p
        self.account_id = account_id
        self.ws = ws
        self.handlers: list[str] = []
        self.worker: str | None = None
        self.credit = Nudge()
        self.timed_start = False  # the worker starts jobs at `start_in_ms`: may get them early
        self.brief_acks = False  # the worker does not read an accepted result's execution
        self.draining = trio.Event()
        self.claim_scope = trio.CancelScope()
        self.outstanding: set[str] = set()  # executions sent and not yet reported here
        self.settled = trio.Event()
        self.info = ChannelInfo(account_id, [], None, p.clock.now_ms())
        # Results wait here while the previous ones are recorded: one store call then takes all
        # that arrived meanwhile (a group commit with no timer). Bounded: a worker that sends
        # faster than the store records waits on its socket, not in the server's memory.
        self._results_in, self._results_out = trio.open_memory_channel[list[dict[str, Any]]](
            RESULT_MESSAGES_BUFFERED
        )

    @property
    def credits(self) -> int:
        return self.info.credits

    @credits.setter
    def credits(self, value: int) -> None:
        self.info.credits = value

    async def run(self) -> None:
        try:
            await self._handshake()
        except BadMessage as exc:
            await self.ws.close(1008, f"bad message: {exc}")
            return
        except WebSocketClosed:
            return
        self.info.handlers, self.info.worker = self.handlers, self.worker
        self.p.channels[id(self)] = self.info
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._read_loop, nursery.cancel_scope)
                nursery.start_soon(self._report_loop)
                try:
                    await self._send_loop()
                    if not self.p.shutdown.stopping:
                        await self._finish_drain()
                    await self._finish_at_stop()
                except WebSocketClosed:
                    pass
                nursery.cancel_scope.cancel()
        finally:
            del self.p.channels[id(self)]
        await self.ws.close(1001, "server stopping")  # nothing to do if already closed

    async def _handshake(self) -> None:
        with trio.move_on_after(HELLO_SECONDS):
            hello = parse_message(await self.ws.receive())
            if not isinstance(hello, Hello):
                raise BadMessage("the first message must be a hello")
            self.handlers = list(dict.fromkeys(h.strip() for h in hello.handlers))
            if not all(self.handlers):
                raise BadMessage("handlers: handler names must not be blank")
            self.worker, self.credits = hello.worker, hello.credits
            await self._send(
                {
                    "type": "welcome",
                    "heartbeat_seconds": HEARTBEAT_SECONDS,
                    "max_credits": MAX_CREDITS,
                    "lead_ms": HAND_OFF_EARLY_MS,
                    "brief_acks": True,
                }
            )
            return
        raise BadMessage(f"no hello within {HELLO_SECONDS:g} s")

    async def _send(self, message: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(message, separators=(",", ":"), ensure_ascii=False))

    async def _send_loop(self) -> None:
        """Claim as many jobs as there are credits, send them, until the stop."""
        p = self.p
        while not (p.shutdown.stopping or self.draining.is_set()):
            if self.credits <= 0:
                with trio.move_on_after(PARK_SECONDS):
                    async with trio.open_nursery() as waits:  # a credit, the stop or a drain
                        for wait in (self.credit.wait, p.shutdown.begun.wait, self.draining.wait):
                            waits.start_soon(_cancel_after, wait, waits.cancel_scope)
                continue
            claimed = []
            # A drain cancels a parked claim; cancelled, `claim_jobs` leaves no job claimed.
            with self.claim_scope:
                claimed = await claim_jobs(
                    p,
                    self.account_id,
                    self.handlers,
                    self.worker,
                    PARK_SECONDS,
                    min(self.credits, MAX_JOBS_PER_CLAIM),
                    early=self.timed_start,
                )
            self.claim_scope = trio.CancelScope()
            if not claimed:
                continue
            self.credits -= len(claimed)
            self.outstanding.update(c.execution.id for c in claimed)
            await self._send(self._jobs_message(claimed))

    def _jobs_message(self, claimed: list[ClaimedJob]) -> dict[str, Any]:
        """The claim answers; a job handed over before its execution's start (an early hand-off)
        says how long after this instant (`sent_at`, the server's clock) to start it."""
        now = self.p.clock.exact_ms()
        jobs = []
        early = False
        for c in claimed:
            job = claim_json(c)
            if c.execution.started_at > now:
                job["start_in_ms"] = round(c.execution.started_at - now, 2)
                early = True
            jobs.append(job)
        message: dict[str, Any] = {"type": "jobs", "jobs": jobs}
        if early:
            message["sent_at"] = round(now, 3)
        return message

    async def _finish_drain(self) -> None:
        """The worker asked to drain: once every job it holds is reported, say `drained`; then
        keep taking its messages until it closes the channel (or the server stops)."""
        async with trio.open_nursery() as waits:
            waits.start_soon(_cancel_after, self.p.shutdown.begun.wait, waits.cancel_scope)
            while wake_at := self._in_flight_until():
                self.settled = trio.Event()
                with trio.move_on_after((wake_at - self.p.clock.now_ms()) / 1000):
                    await self.settled.wait()
            await self._send({"type": "drained"})
            await trio.sleep_forever()  # the read loop ends the channel when the worker closes

    def _in_flight_until(self) -> int | None:
        """Drops the jobs of this channel that are no longer in flight (reported, refused, or
        their lease over); when the first lease of the others ends, or None if none is left."""
        now = self.p.clock.now_ms()
        ends = {e: self.p.leases.until(e) for e in self.outstanding}
        self.outstanding = {e for e, until in ends.items() if until is not None and until > now}
        return min((ends[e] or 0 for e in self.outstanding), default=None)

    async def _finish_at_stop(self) -> None:
        """Tell the worker; take its results until every job it holds is reported, or the
        stop's deadline."""
        await self._send({"type": "stopping"})
        deadline = self.p.shutdown.deadline
        assert deadline is not None
        with trio.move_on_at(deadline):
            while self.outstanding:
                self.settled = trio.Event()
                await self.settled.wait()

    async def _read_loop(self, scope: trio.CancelScope) -> None:
        try:
            while True:
                with trio.move_on_after(IDLE_SECONDS) as idle:
                    message = parse_message(await self.ws.receive())
                if idle.cancelled_caught:
                    await self.ws.close(1001, f"no message for {IDLE_SECONDS:g} s")
                    return
                await self._on_message(message)
        except BadMessage as exc:
            await self.ws.close(1008, f"bad message: {exc}")
        except WebSocketClosed:
            pass
        finally:
            scope.cancel()  # a closed or broken channel ends the send loop too

    async def _on_message(self, message: AnyMessage) -> None:
        if isinstance(message, Credit):
            self.credits = min(MAX_CREDITS, self.credits + message.n)
            self.credit.set()
        elif isinstance(message, Results):
            await self._results_in.send(message.results)
        elif isinstance(message, Ping):
            await self.ws.send(PONG_TEXT)
        elif isinstance(message, TimedStart):
            if not self.timed_start:
                self.timed_start = True
                self.claim_scope.cancel()  # a claim parked before this parks again, early
        elif isinstance(message, BriefAcks):
            self.brief_acks = True
        elif isinstance(message, Drain):
            self.draining.set()
            self.claim_scope.cancel()
        elif isinstance(message, Heartbeat):
            await self._on_heartbeat(message)
        else:
            raise BadMessage("hello may be sent once")

    async def _on_heartbeat(self, message: Heartbeat) -> None:
        checked: list[tuple[str, ChronosError | None]] = []
        for i, raw_id in enumerate(message.execution_ids):
            try:
                checked.append((path_id(raw_id, f"execution_ids.{i}"), None))
            except ChronosError as exc:
                checked.append((raw_id, exc))
        items = [(e, message.extend_seconds) for e, refused in checked if refused is None]
        extended = iter(await extend_leases(self.p, self.account_id, items) if items else [])
        acks: list[dict[str, Any]] = []
        for execution_id, refused in checked:
            result = refused if refused is not None else next(extended)
            if isinstance(result, ChronosError):
                acks.append(_ack(execution_id, result))
                if execution_id in self.outstanding:  # over on the server: not in flight
                    self.settled.set()
            else:
                expires = result.lease_expires_at
                acks.append(
                    {
                        "execution_id": execution_id,
                        "success": True,
                        "lease_expires_at": iso(expires) if expires is not None else None,
                    }
                )
        await self._send({"type": "heartbeat_acks", "results": acks})

    async def _report_loop(self) -> None:
        async for items in self._results_out:
            while True:  # every results message that came in while the last call ran
                try:
                    items = items + self._results_out.receive_nowait()
                except trio.WouldBlock:
                    break
            await self._on_results(items)

    async def _on_results(self, items: list[dict[str, Any]]) -> None:
        checked = [_check_item(item) for item in items]
        valid = [c for c in checked if not isinstance(c[1], ChronosError)]
        recorded = await record_reports(
            self.p, self.account_id, [(e, o) for e, o in valid if isinstance(o, Outcome)]
        )
        answers = iter(recorded)
        acks: list[dict[str, Any]] = []
        for execution_id, checked_outcome in checked:
            result = checked_outcome if isinstance(checked_outcome, ChronosError) else next(answers)
            acks.append(_ack(execution_id, result, brief=self.brief_acks))
        await self._send({"type": "acks", "results": acks})
        # Settled only once acknowledged: a stop waiting for these must not close first.
        self.outstanding.difference_update(execution_id for execution_id, _ in checked)
        if not self.outstanding:
            self.settled.set()


def _check_item(item: dict[str, Any]) -> tuple[str, Outcome | ChronosError]:
    raw_id = item.get("execution_id")
    execution_id = raw_id if isinstance(raw_id, str) else ""
    try:
        body = _ITEM.validate_python(item)
        return path_id(body.execution_id, "execution_id"), outcome_of(body)
    except PydanticValidationError as exc:
        return execution_id, ValidationFailed(None, field_errors(exc))
    except ChronosError as exc:
        return execution_id, exc


def _ack(execution_id: str, result: Any, *, brief: bool = False) -> dict[str, Any]:
    if isinstance(result, ChronosError):
        ack: dict[str, Any] = {
            "execution_id": execution_id,
            "success": False,
            "code": result.code,
            "message": result.message,
        }
        if result.errors:
            ack["errors"] = [e.to_json() for e in result.errors]
        return ack
    if brief:
        return {"execution_id": execution_id, "success": True}
    return {"execution_id": execution_id, "success": True, "data": execution_json(result)}


async def _cancel_after(wait: Callable[[], Awaitable[None]], scope: trio.CancelScope) -> None:
    await wait()
    scope.cancel()


async def workers(call: Call) -> Reply:
    """Extension: the worker channels open on this server process for the caller's account, and
    per handler how many channels serve it and their free credits."""
    mine = [c for c in call.pipeline.channels.values() if c.account_id == call.account.id]
    per_handler: dict[str, dict[str, int]] = {}
    for c in mine:
        for handler in c.handlers:
            entry = per_handler.setdefault(handler, {"channels": 0, "credits": 0})
            entry["channels"] += 1
            entry["credits"] += c.credits
    data = {
        "channels": [
            {
                "worker": c.worker,
                "handlers": c.handlers,
                "credits": c.credits,
                "connected_at": iso(c.connected_at),
            }
            for c in sorted(mine, key=lambda c: c.connected_at)
        ],
        "handlers": [
            {"handler": h, **v} for h, v in sorted(per_handler.items(), key=lambda kv: kv[0])
        ],
    }
    return ok(data, "Workers")


ROUTES: Routes = [
    ("GET", "/v1/worker/stream", Endpoint(stream)),
    ("GET", "/v1/workers", Endpoint(workers)),
]
