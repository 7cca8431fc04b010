"""The push sender: one signed HTTP request per attempt, under a cancel scope of the job's timeout.

Dispatch owns the nursery the requests run in; `PushSender.dispatch_once` takes at most as many
`queued` push jobs as there are free slots (`concurrency`), so a slow endpoint only ever holds its
own slots. One shared `httpx.AsyncClient` pools connections; redirects are never followed.

SSRF guard at send time (spec §9.6): the host is resolved once, every address is checked, and the
request goes to the checked address (Host header and TLS SNI keep the name), so a DNS answer that
changes between check and connect cannot reach a private address.

Exceptions: `BlockedDestination` (terminal), httpx transport errors and resolver `OSError`s
(retried) are mapped to an `Outcome` here; nothing else is caught.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import httpx
import trio

from chronos_server.api.timefmt import iso
from chronos_server.core.models import ClaimedJob, ExecutionError, ExecutionStatus, Outcome
from chronos_server.core.targets import is_blocked_address
from chronos_server.delivery.classify import classify_response
from chronos_server.delivery.signing import request_body, signature_headers
from chronos_server.errors import ExecutionAlreadyFinished, LeaseExpired, StoreUnavailable
from chronos_server.loops.context import Pipeline

log = logging.getLogger("chronos.push")
Resolver = Callable[[str, int], Awaitable[list[str]]]
BODY_PREFIX_BYTES = 4096
KEEPALIVE_CONNECTIONS = 20


class BlockedDestination(Exception):
    """The target resolves to an address push delivery must not reach (terminal)."""


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


def _wire_host(url: str) -> str:
    """The host as httpx will send it: IDNA A-labels, so the Host header and SNI stay ASCII.
    A name that cannot be encoded can never be delivered to, hence a terminal refusal."""
    try:
        return httpx.URL(url).raw_host.decode("ascii")
    except (httpx.InvalidURL, UnicodeError) as exc:
        raise BlockedDestination(f"{url} does not have a valid host name: {exc}") from exc


async def pin_destination(url: str, *, allow_private: bool, resolver: Resolver) -> PinnedRequest:
    """Resolve and check the target; return a URL that connects to the checked address."""
    parts = urlsplit(url)
    host = _wire_host(url)
    if allow_private:
        return PinnedRequest(url, None, None)
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        if is_blocked_address(literal):
            raise BlockedDestination(f"{host} is a private, loopback or link-local address")
        return PinnedRequest(url, None, None)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    addresses = await resolver(host, port)
    if not addresses:
        raise OSError(f"{host} did not resolve")
    for address in addresses:
        if is_blocked_address(ipaddress.ip_address(address)):
            raise BlockedDestination(f"{host} resolves to {address}, a blocked address")
    address = addresses[0]
    netloc = f"[{address}]" if ":" in address else address
    if parts.port is not None:
        netloc += f":{parts.port}"
    pinned = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
    host_header = host if parts.port is None else f"{host}:{parts.port}"
    return PinnedRequest(pinned, host_header, host if parts.scheme == "https" else None)


async def _read_prefix(response: httpx.Response) -> str:
    data = b""
    async for chunk in response.aiter_bytes():
        data += chunk
        if len(data) >= BODY_PREFIX_BYTES:
            break
    return data[:BODY_PREFIX_BYTES].decode("utf-8", errors="replace")


class PushSender:
    def __init__(
        self,
        pipeline: Pipeline,
        client: httpx.AsyncClient,
        settings: PushSettings,
        resolver: Resolver = system_resolver,
    ) -> None:
        self._p = pipeline
        self._client = client
        self._settings = settings
        self._resolver = resolver
        self.in_flight = 0
        self.peak_in_flight = 0
        self._idle = trio.Event()
        self._idle.set()

    async def dispatch_once(self, nursery: trio.Nursery) -> int:
        """Start as many queued push jobs as there are free slots; returns how many."""
        free = self._settings.concurrency - self.in_flight
        if free <= 0 or self._p.draining:
            return 0
        limit = min(free, self._p.settings.batch_size)
        started = await self._p.store.start_push_jobs(self._p.clock.now_ms(), limit)
        # One secret read per account per batch, not per request: a read is a thread round trip,
        # and a burst of them queued behind the reader pool delayed fan-out by seconds.
        secrets = {c.job.account_id: "" for c in started}
        for account_id in secrets:
            secrets[account_id] = await self._signing_secret(account_id)
        for claimed in started:
            self.in_flight += 1
            self._idle = trio.Event() if self._idle.is_set() else self._idle
            nursery.start_soon(self._deliver, claimed, secrets[claimed.job.account_id])
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        return len(started)

    async def wait_idle(self) -> None:
        await self._idle.wait()

    async def _signing_secret(self, account_id: str) -> str:
        account = await self._p.store.get_account(account_id)
        return account.signing_secret if account and account.signing_secret else ""

    async def _deliver(self, claimed: ClaimedJob, secret: str) -> None:
        try:
            outcome = await self.attempt(claimed, secret)
            await self._record(claimed, outcome)
        finally:
            self.in_flight -= 1
            if self.in_flight == 0:
                self._idle.set()
            self._p.dispatch_nudge.set()  # a slot is free

    async def _record(self, claimed: ClaimedJob, outcome: Outcome) -> None:
        p = self._p
        try:
            await p.store.finish_execution(
                None, claimed.execution.id, outcome, p.clock.now_ms(), p.rng
            )
        except (LeaseExpired, ExecutionAlreadyFinished):
            log.warning("push %s: outcome arrived after the sweep", claimed.execution.id)
        except StoreUnavailable as exc:
            log.warning("push %s: could not record outcome (%s)", claimed.execution.id, exc)
        if outcome.status is not ExecutionStatus.COMPLETED:
            p.admission_nudge.set()

    async def attempt(self, claimed: ClaimedJob, secret: str | None = None) -> Outcome:
        """Make the request for one execution and classify what happened. `secret` is the
        account's signing secret when the caller has already read it."""
        job, execution = claimed.job, claimed.execution
        assert job.delivery.http is not None
        target = job.delivery.http
        if secret is None:
            secret = await self._signing_secret(job.account_id)
        now = self._p.clock.now_ms()
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
            **signature_headers(secret, execution.id, now // 1000, body),
        }
        with trio.move_on_after(job.timeout):
            try:
                pinned = await pin_destination(
                    target.url,
                    allow_private=self._settings.allow_private,
                    resolver=self._resolver,
                )
                if pinned.host_header:
                    headers["Host"] = pinned.host_header
                extensions = {"sni_hostname": pinned.sni_hostname} if pinned.sni_hostname else {}
                request = self._client.build_request(
                    target.method, pinned.url, content=body, headers=headers, extensions=extensions
                )
                response = await self._client.send(request, stream=True)
                try:
                    text = await _read_prefix(response)
                finally:
                    await response.aclose()
            except BlockedDestination as exc:
                error = ExecutionError(str(exc), "BlockedDestination")
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


def new_push_client(settings: PushSettings) -> httpx.AsyncClient:
    # httpcore 1.0 rescans the whole pool on every request and response and, for each idle
    # connection, counts the pool again (encode/httpcore#1035): hundreds of idle keep-alive
    # connections make fan-out cubic. A small keep-alive allowance keeps each pass linear; under
    # a burst, connections beyond it close after their response instead of idling.
    limits = httpx.Limits(
        max_connections=settings.concurrency,
        max_keepalive_connections=min(settings.concurrency, KEEPALIVE_CONNECTIONS),
    )
    return httpx.AsyncClient(follow_redirects=False, timeout=None, limits=limits)
