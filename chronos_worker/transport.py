"""How the worker's requests reach the server: a `Sender` sends one request to a path under
`base_url` and returns the `Answer` (status, reason, headers, body), or raises `SendError` when
there is none (no connection, reset, timeout of the HTTP layer, a malformed answer).

    HttpxSender  over an `httpx.AsyncClient`: the `http_client` given to `Chronos(...)` (tests,
                 proxies, custom TLS), or one opened here when a proxy is configured in the
                 environment (`HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY`), which httpx honours
    LeanSender   over `lean_http.LeanClient`, the worker's own keep-alive HTTP/1.1 client, with
                 the TLS settings httpx would use (`httpx.create_ssl_context()`); the default

This module and `lean_http` are the only ones that touch the HTTP layer; `api.py` sees
`Answer`s and `SendError`s.
"""

from __future__ import annotations

import urllib.request
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Protocol

import httpx

from .lean_http import Answer, LeanClient, LeanHTTPError
from .settings import WorkerSettings

__all__ = ["Answer", "HttpxSender", "LeanSender", "SendError", "Sender", "open_sender"]


class SendError(Exception):
    """A request got no answer; the message says why."""


class Sender(Protocol):
    async def send(self, method: str, path: str, body: bytes | None, limit_s: float) -> Answer:
        """`method` `path` (under the base URL) with `body`; `limit_s` is the caller's bound,
        which it also enforces with a Trio cancel scope."""
        ...


class HttpxSender:
    """Requests through an `httpx.AsyncClient` it does not own."""

    def __init__(
        self, client: httpx.AsyncClient, base_url: str, headers: Mapping[str, str]
    ) -> None:
        self._client = client
        self._base_url = base_url
        self._headers = dict(headers)

    async def send(self, method: str, path: str, body: bytes | None, limit_s: float) -> Answer:
        try:
            response = await self._client.request(
                method, self._base_url + path, content=body, headers=self._headers, timeout=limit_s
            )
        except httpx.HTTPError as exc:
            raise SendError(repr(exc)) from exc
        headers = {name.lower(): value for name, value in response.headers.items()}
        return Answer(response.status_code, response.reason_phrase, headers, response.content)


class LeanSender:
    """Requests through a `LeanClient` it owns (closed by `open_sender`)."""

    def __init__(self, client: LeanClient) -> None:
        self._client = client

    async def send(self, method: str, path: str, body: bytes | None, limit_s: float) -> Answer:
        try:
            return await self._client.request(method, path, body)
        except LeanHTTPError as exc:
            raise SendError(f"{type(exc).__name__}({str(exc)!r})") from exc


@asynccontextmanager
async def open_sender(
    settings: WorkerSettings, headers: Mapping[str, str]
) -> AsyncIterator[Sender]:
    """The sender for `settings`: the injected client, else a lean client when the base URL
    can take one (no proxy, no credentials or query in it), else an httpx client."""
    if settings.http_client is not None:
        yield HttpxSender(settings.http_client, settings.base_url, headers)
        return
    url = httpx.URL(settings.base_url)
    if _lean_can_serve(url):
        client = LeanClient(
            scheme=url.scheme,
            host=url.raw_host.decode("ascii"),
            port=url.port or (443 if url.scheme == "https" else 80),
            prefix=url.raw_path.decode("ascii").rstrip("/"),
            headers=dict(headers),
            ssl_context=httpx.create_ssl_context() if url.scheme == "https" else None,
        )
        try:
            yield LeanSender(client)
        finally:
            await client.aclose()
        return
    async with httpx.AsyncClient() as own:
        yield HttpxSender(own, settings.base_url, headers)


def _lean_can_serve(url: httpx.URL) -> bool:
    if url.userinfo or url.query or url.fragment:
        return False  # rare; httpx knows what to do with them
    proxies = urllib.request.getproxies_environment()
    return not (proxies.get(url.scheme) or proxies.get("all"))
