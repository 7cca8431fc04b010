"""The push sender: one signed HTTP request per attempt, under a cancel scope of the job's timeout.

Dispatch owns the nursery the requests run in; `PushSender.dispatch_once` takes at most as many
`queued` push jobs as there are free slots (`concurrency`), so a slow endpoint only ever holds its
own slots. One shared httpx transport (`PushTransport`: h11 on Trio sockets, O(1) keep-alive
pool) carries every request; requests and responses are httpx objects, so tests swap in
`httpx.MockTransport`. Nothing of an httpx client applies: no redirects, cookies or proxies.
Outcomes are recorded in batches: the responses that arrive while one batch is written go into
the next transaction (group commit), so a burst costs a few transactions, not one per job.

SSRF guard at send time (spec §9.6): the host is resolved once, every address is checked, and the
request goes to the checked address (Host header and TLS SNI keep the name), so a DNS answer that
changes between check and connect cannot reach a private address. A numeric host is read as
resolvers read it (`2130706433` is 127.0.0.1, `core.targets.host_address`) and never resolved.

Exceptions: `BlockedDestination` (terminal), httpx transport errors and resolver `OSError`s
(retried) are mapped to an `Outcome` here; nothing else is caught.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import SplitResult, urlsplit, urlunsplit

import httpx
import trio

from chronos_server.api.timefmt import iso
from chronos_server.core.models import (
    ClaimedJob,
    ExecutionError,
    ExecutionStatus,
    HttpTarget,
    Job,
    ObservedOutcome,
    Outcome,
)
from chronos_server.core.targets import Address, host_address, is_blocked_address, is_token
from chronos_server.delivery.classify import classify_response
from chronos_server.delivery.signing import request_body, signature_headers
from chronos_server.delivery.transport import Ahead, PushTransport
from chronos_server.errors import ChronosError, StoreUnavailable
from chronos_server.pipeline.services import Pipeline
from chronos_server.store.base import SigningSecrets
from chronos_server.telemetry import logs

log = logging.getLogger("chronos.push")
Resolver = Callable[[str, int], Awaitable[list[str]]]
BODY_PREFIX_BYTES = 4096
KEEPALIVE_CONNECTIONS = 20
RECORD_BATCH = 500  # outcomes per transaction
# Requests started per scheduler pass in a burst (see `dispatch_once`). On the fan-out bench,
# 32 brought the first request of 1,000 forward from +200 ms to +80 ms, at no cost to the last.
START_CHUNK = 32
NO_SECRETS = SigningSecrets(current="")  # an account without a secret signs with an empty key


class BlockedDestination(Exception):
    """The target resolves to an address push delivery must not reach (terminal)."""


# What building a request can raise (`PushSender.attempt` maps each to an outcome).
_BUILD_ERRORS = (BlockedDestination, httpx.HTTPError, OSError, UnicodeError)


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await trio.socket.getaddrinfo(host, port, type=trio.socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True)
class PushSettings:
    concurrency: int = 256
    user_agent: str = "chronos.sh/1.0"
    allow_private: bool = False


@dataclass(frozen=True)
class PinnedRequest:
    url: str
    host_header: str | None
    sni_hostname: str | None


@lru_cache(maxsize=4096)
def parse_url(url: str) -> httpx.URL:
    """httpx's URL parsing costs more than the rest of building a request; a burst of pushes
    mostly goes to a few endpoints, and `httpx.URL` is immutable, so parsed URLs are shared."""
    return httpx.URL(url)


@lru_cache(maxsize=4096)
def _wire_host(url: str) -> str:
    """The host as httpx will send it: IDNA A-labels, so the Host header and SNI stay ASCII.
    A name that cannot be encoded can never be delivered to, hence a terminal refusal."""
    try:
        return parse_url(url).raw_host.decode("ascii")
    except (httpx.InvalidURL, UnicodeError) as exc:
        raise BlockedDestination(f"{url} does not have a valid host name: {exc}") from exc


@lru_cache(maxsize=4096)
def _literal(host: str) -> Address | None:
    """The address a numeric host names (None for a name to resolve); cached like `_wire_host`."""
    try:
        return host_address(host)
    except ValueError as exc:
        raise BlockedDestination(f"{host} is not a valid address: {exc}") from exc


async def pin_destination(url: str, *, allow_private: bool, resolver: Resolver) -> PinnedRequest:
    """Resolve and check the target; return a URL that connects to the checked address."""
    parts = urlsplit(url)
    host = _wire_host(url)
    if allow_private:
        return PinnedRequest(url, None, None)
    literal = _literal(host)
    if literal is not None:
        if is_blocked_address(literal):
            shown = host if str(literal) == host else f"{host} ({literal})"
            raise BlockedDestination(f"{shown} is a private, loopback or link-local address")
        if str(literal) == host:
            return PinnedRequest(url, None, None)
        # `2130706433`-style forms: sent to the address as written canonically, as a browser
        # would, so nothing after this check reads the host a second time.
        return PinnedRequest(_with_address(parts, str(literal)), None, None)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    addresses = await resolver(host, port)
    if not addresses:
        raise OSError(f"{host} did not resolve")
    for address in addresses:
        if is_blocked_address(ipaddress.ip_address(address)):
            raise BlockedDestination(f"{host} resolves to {address}, a blocked address")
    pinned = _with_address(parts, addresses[0])
    host_header = host if parts.port is None else f"{host}:{parts.port}"
    return PinnedRequest(pinned, host_header, host if parts.scheme == "https" else None)


def _with_address(parts: SplitResult, address: str) -> str:
    netloc = f"[{address}]" if ":" in address else address
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


def _bad_header_name(headers: dict[str, str]) -> str | None:
    """A stored header name no request can carry (a row written before names were checked as
    ASCII tokens at create): httpx could not even encode it."""
    return next((name for name in headers if not is_token(name)), None)


async def _read_prefix(response: httpx.Response) -> str:
    """The first 4 KiB of the body as received, as text (NUL, which PostgreSQL text cannot
    hold, and invalid UTF-8 become U+FFFD). A transport may hand over a body already read
    (as `httpx.MockTransport` does); otherwise the transport's stream is read directly, and
    closed here when we stop early."""
    if response.is_stream_consumed or not isinstance(response.stream, httpx.AsyncByteStream):
        return _text(response.content[:BODY_PREFIX_BYTES])
    data = b""
    chunks = aiter(response.stream)
    try:
        async for chunk in chunks:
            data += chunk
            if len(data) >= BODY_PREFIX_BYTES:
                break
    finally:
        close = getattr(chunks, "aclose", None)
        if close is not None:
            await close()
    return _text(data[:BODY_PREFIX_BYTES])


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace").replace("\x00", "\ufffd")


class PushSender:
    def __init__(
        self,
        pipeline: Pipeline,
        transport: httpx.AsyncBaseTransport,
        settings: PushSettings,
        resolver: Resolver = system_resolver,
    ) -> None:
        self._p = pipeline
        self._transport = transport
        self._settings = settings
        self._resolver = resolver
        self.in_flight = 0
        self.peak_in_flight = 0
        self._idle = trio.Event()
        self._idle.set()
        self._unrecorded: list[ObservedOutcome] = []
        self._recording = False
        # Failed attempts waiting for their outcome to be written, for the log line after.
        self._failed: dict[str, tuple[ClaimedJob, Outcome]] = {}
        # Requests in flight for handlers with limits: their outcome frees a slot.
        self._limited: set[str] = set()

    async def dispatch_once(self, nursery: trio.Nursery) -> int:
        """Start as many queued push jobs as there are free slots; returns how many."""
        free = self._settings.concurrency - self.in_flight
        if free <= 0 or self._p.shutdown.stopping:
            return 0
        limit = min(free, self._p.settings.batch_size)
        # The slots are taken before the jobs become `running`, so a graceful stop that waits for
        # `wait_idle` cannot slip in between and cancel requests that were never sent.
        self._take_slots(limit)
        try:
            started = await self._p.store.start_push_jobs(self._p.clock.now_ms(), limit)
            # One secret read per account per batch, not per request: a read is a thread round
            # trip, and a burst of them queued behind the reader pool delayed fan-out by seconds.
            secrets = {c.job.account_id: NO_SECRETS for c in started}
            for account_id in secrets:
                secrets[account_id] = await self._signing_secrets(account_id)
        except BaseException:
            self._slots_free(limit, nudge=False)  # any started job is left to the sweeper
            raise
        self._slots_free(limit - len(started), nudge=False)
        for claimed in started:
            if logs.states_enabled():
                logs.state_change(
                    "job %s running: push execution %s, attempt %d",
                    claimed.job.id,
                    claimed.execution.id,
                    claimed.execution.attempt,
                    job_id=claimed.job.id,
                    execution_id=claimed.execution.id,
                    attempt=claimed.execution.attempt,
                    status="running",
                )
            if self._p.limited.covers(claimed.job.account_id, claimed.job.handler):
                self._limited.add(claimed.execution.id)
        for i, claimed in enumerate(started, 1):
            nursery.start_soon(self._deliver, claimed, secrets[claimed.job.account_id])
            if i % START_CHUNK == 0:
                # Trio runs every runnable task before it polls for I/O: without this pause the
                # first request of a burst would leave only once every request was built. The
                # ones started so far connect and send in the meantime. Shielded: a cancel here
                # would leave started jobs without a task, and their slots taken for good.
                await trio.lowlevel.cancel_shielded_checkpoint()
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        return len(started)

    def _take_slots(self, n: int) -> None:
        self.in_flight += n
        if self.in_flight and self._idle.is_set():
            self._idle = trio.Event()

    async def wait_idle(self) -> None:
        await self._idle.wait()

    async def _signing_secrets(self, account_id: str) -> SigningSecrets:
        found = await self._p.store.get_signing_secrets(account_id)
        return found or NO_SECRETS

    async def _deliver(self, claimed: ClaimedJob, secrets: SigningSecrets) -> None:
        # Sent at the later of now and its start (an execution started ahead waits for it).
        sent = (
            trio.current_time()
            + max(0.0, claimed.execution.started_at - self._p.clock.exact_ms()) / 1000
        )
        try:
            outcome = await self.attempt(claimed, secrets)
        except BaseException:
            self._slots_free(1)
            raise
        ended = self._p.clock.now_ms()
        metrics = self._p.metrics
        answered = max(0.0, trio.current_time() - sent)
        metrics.push_answered(outcome.http_status, outcome.status, answered)
        metrics.execution_finished(outcome.status, "push", ended - claimed.execution.started_at)
        if outcome.status is not ExecutionStatus.COMPLETED:
            self._failed[claimed.execution.id] = (claimed, outcome)
        self._unrecorded.append(ObservedOutcome(claimed.execution.id, outcome, ended))
        if not self._recording:  # else the task writing a batch now takes this one next
            await self._record_pending()

    async def _request(
        self, target: HttpTarget, headers: dict[str, str], body: bytes
    ) -> httpx.Request:
        """The request to send: to the checked address (`pin_destination`), the name kept in
        the Host header and SNI."""
        pinned = await pin_destination(
            target.url, allow_private=self._settings.allow_private, resolver=self._resolver
        )
        if pinned.host_header:
            headers = {**headers, "Host": pinned.host_header}
        extensions = {"sni_hostname": pinned.sni_hostname} if pinned.sni_hostname else {}
        return httpx.Request(
            target.method,
            parse_url(pinned.url),
            content=body,
            headers=headers,
            extensions=extensions,
        )

    async def _until(self, instant: int) -> None:
        """Sleep until the clock reads `instant` (a sleep never ends early; `exact_ms` keeps
        the millisecond's fraction, so the request never leaves before the instant either)."""
        ahead = instant - self._p.clock.exact_ms()
        if ahead > 0:
            await trio.sleep(ahead / 1000)

    def _slots_free(self, n: int, *, nudge: bool = True) -> None:
        self.in_flight -= n
        if self.in_flight == 0:
            self._idle.set()
        if nudge:
            self._p.dispatch_nudge.set()

    async def _record_pending(self) -> None:
        """Write outcomes until none is waiting, each batch in one transaction. A request's slot
        stays taken until its outcome is written, so a graceful stop waits for the writes, and
        while the store is unavailable the batch is kept and retried (the held slots are the
        back-pressure) rather than dropped to time out later as if nobody had answered."""
        self._recording = True
        try:
            while self._unrecorded:
                batch = self._unrecorded[:RECORD_BATCH]
                del self._unrecorded[:RECORD_BATCH]
                try:
                    await self._record(batch)
                except StoreUnavailable as exc:
                    self._p.store_health.failed("push sender", exc)
                    log.debug("push: could not record %d outcomes yet (%s)", len(batch), exc)
                    self._unrecorded[:0] = batch
                    await trio.sleep(self._p.settings.error_backoff_seconds)
                    continue
                self._slots_free(len(batch))
        finally:
            self._recording = False
            if self._unrecorded:  # cancelled: the sweeper times these executions out and retries
                self._slots_free(len(self._unrecorded))
                for o in self._unrecorded:
                    self._failed.pop(o.execution_id, None)
                self._unrecorded.clear()

    async def _record(self, batch: list[ObservedOutcome]) -> None:
        p = self._p
        refused = await p.store.record_push_outcomes(batch, p.clock.now_ms(), p.rng)
        for execution_id, error in refused.items():
            log.warning("push %s: outcome not recorded (%s)", execution_id, error.message)
        freed = False
        for o in batch:
            if o.execution_id in self._limited:
                self._limited.discard(o.execution_id)
                freed = True
        p.outcomes_recorded(
            failed=sum(o.outcome.status is not ExecutionStatus.COMPLETED for o in batch),
            freed_limited=freed,
        )
        p.store_health.ok()
        await self._log_recorded(batch, refused)

    async def _log_recorded(
        self, batch: list[ObservedOutcome], refused: dict[str, ChronosError]
    ) -> None:
        """The INFO line of each failed attempt (its job read to say whether it is retried:
        failures only) and the DEBUG line of each completed one."""
        for o in batch:
            failed = self._failed.pop(o.execution_id, None)
            if o.execution_id in refused:
                continue
            if failed is None:
                if logs.states_enabled():
                    logs.state_change(
                        "push execution %s completed (HTTP %s)",
                        o.execution_id,
                        o.outcome.http_status,
                        execution_id=o.execution_id,
                        http_status=o.outcome.http_status,
                        status="completed",
                    )
                continue
            claimed, outcome = failed
            if not logs.failures.isEnabledFor(logging.INFO):
                continue
            try:
                job = await self._p.store.get_job(claimed.job.account_id, claimed.job.id)
            except ChronosError:
                job = None
            logs.attempt_failed(
                delivery="push",
                job_id=claimed.job.id,
                execution_id=claimed.execution.id,
                attempt=claimed.execution.attempt,
                outcome=outcome.status,
                handler=claimed.job.handler,
                job_status=job.status if job is not None else None,
                error=logs.describe_error(outcome),
                http_status=outcome.http_status,
            )

    async def attempt(self, claimed: ClaimedJob, secrets: SigningSecrets | None = None) -> Outcome:
        """Make the request for one execution and classify what happened. `secrets` are the
        account's signing secrets when the caller has already read them. An execution started
        ahead of its due instant (admission's push lead) has its request built and signed now
        and sent at its `started_at`, never before."""
        job, execution = claimed.job, claimed.execution
        assert job.delivery.http is not None
        target = job.delivery.http
        bad_name = _bad_header_name(target.headers)
        if bad_name is not None:
            message = f"header name {bad_name!r} is not a valid HTTP token (ASCII only)"
            error = ExecutionError(message, "InvalidHeader")
            return Outcome(ExecutionStatus.FAILED, error=error, retryable=False)
        if secrets is None:
            secrets = await self._signing_secrets(job.account_id)
        # Signed as of the instant it is sent (`now` unless the execution starts later).
        now = max(self._p.clock.now_ms(), execution.started_at)
        body = request_body(
            job_id=job.id,
            handler=job.handler,
            execution_id=execution.id,
            scheduled_for=iso(job.scheduled_for) or "",
            attempt=execution.attempt,
            payload=job.payload,
        )
        headers = {
            **target.headers,
            "Content-Type": "application/json",
            "User-Agent": self._settings.user_agent,
            # Whether a rotation's previous secret still signs is decided now, at send time.
            **signature_headers(
                secrets.current or "",
                execution.id,
                now // 1000,
                body,
                previous=secrets.previous_at(now),
            ),
        }
        request: httpx.Request | None = None
        opened: Ahead | None = None
        try:
            lead = (execution.started_at - self._p.clock.exact_ms()) / 1000
            if lead > 0:
                # Started ahead: the destination is resolved, the request built and its
                # connection opened now, so only sending is left for the instant. Whatever goes
                # wrong here (or is not done by then) is done again at the instant, where it
                # counts as the attempt's.
                with trio.move_on_after(lead), contextlib.suppress(*_BUILD_ERRORS):
                    request = await self._request(target, headers, body)
                    if isinstance(self._transport, PushTransport):
                        opened = await self._transport.open_ahead(request)
                await self._until(execution.started_at)
            self._p.metrics.started("push", self._p.clock.now_ms() - job.run_at)
            return await self._exchange(job, target, headers, body, request, opened)
        finally:
            if opened is not None:
                opened.close()

    async def _exchange(
        self,
        job: Job,
        target: HttpTarget,
        headers: dict[str, str],
        body: bytes,
        request: httpx.Request | None,
        opened: Ahead | None,
    ) -> Outcome:
        """Send the request (built and its connection opened ahead, if they were) under the
        job's timeout and classify what happened."""
        with trio.move_on_after(job.timeout):
            try:
                if request is None:
                    request = await self._request(target, headers, body)
                if opened is not None:
                    assert isinstance(self._transport, PushTransport)
                    response = await self._transport.handle_async_request(request, opened)
                else:
                    response = await self._transport.handle_async_request(request)
                try:
                    text = await _read_prefix(response)
                finally:
                    await response.aclose()
            except BlockedDestination as exc:
                error = ExecutionError(str(exc), "BlockedDestination")
                return Outcome(ExecutionStatus.FAILED, error=error, retryable=False)
            except (httpx.LocalProtocolError, httpx.UnsupportedProtocol, UnicodeError) as exc:
                # A request that can never be sent as configured: retrying cannot help.
                error = ExecutionError(str(exc), type(exc).__name__)
                return Outcome(ExecutionStatus.FAILED, error=error, retryable=False)
            except (httpx.HTTPError, OSError) as exc:
                error = ExecutionError(str(exc) or type(exc).__name__, type(exc).__name__)
                return Outcome(ExecutionStatus.FAILED, error=error)
            return classify_response(
                response.status_code,
                text,
                retry_on_status=target.retry_on_status,
                retry_after=response.headers.get("Retry-After"),
                now_ms=self._p.clock.now_ms(),
            )
        error = ExecutionError(f"No complete response within {job.timeout} s", "Timeout")
        return Outcome(ExecutionStatus.TIMEOUT, error=error)


def new_push_transport(settings: PushSettings) -> PushTransport:
    return PushTransport(max_idle=min(settings.concurrency, KEEPALIVE_CONNECTIONS))
