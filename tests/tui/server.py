"""A real Chronos server for the dashboard's sync tests: `serve()` under `trio.run` in a thread.

The dashboard runs on asyncio in the test's own thread, the server on Trio in another, and the
two meet only over HTTP on 127.0.0.1 (port 0), as in production.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import trio
from trio_websocket import open_websocket_url

from chronos_server.pipeline.services import LoopSettings
from chronos_server.runtime import ServerHandle
from tests.conftest import API_KEY, make_settings, start_server

START_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class ThreadServer:
    url: str
    api_key: str

    def client(self) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.api_key}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


@contextmanager
def thread_server(tmp_path: Path, **overrides: object) -> Iterator[ThreadServer]:
    """Start a server (SQLite in `tmp_path` unless `database_url=` says otherwise; other
    `Settings` fields may be overridden too), yield its URL, stop it gracefully."""
    started: queue.Queue[tuple[ServerHandle, trio.lowlevel.TrioToken] | BaseException] = (
        queue.Queue()
    )
    settings = make_settings(tmp_path, **overrides)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            handle = await start_server(nursery, settings, LoopSettings(lease_grace_ms=0))
            started.put((handle, trio.lowlevel.current_trio_token()))

    def run() -> None:
        try:
            trio.run(main)
        except BaseException as exc:  # reported to the test thread, which re-raises it
            started.put(exc)

    thread = threading.Thread(target=run, name="chronos-test-server", daemon=True)
    thread.start()
    outcome = started.get(timeout=START_TIMEOUT_SECONDS)
    if isinstance(outcome, BaseException):
        raise RuntimeError("the test server did not start") from outcome
    handle, token = outcome
    try:
        yield ThreadServer(handle.url, API_KEY)
    finally:
        trio.from_thread.run_sync(handle.stop, trio_token=token)
        thread.join(timeout=START_TIMEOUT_SECONDS)
        assert not thread.is_alive(), "the test server did not stop"


@contextmanager
def worker_channel(
    server: ThreadServer, handlers: list[str], credits: int, worker: str
) -> Iterator[None]:
    """A worker channel (`GET /v1/worker/stream`) open with `hello` until the block ends, from a
    Trio thread of its own (trio-websocket plays the worker)."""
    opened: queue.Queue[BaseException | None] = queue.Queue()
    done = threading.Event()
    url = server.url.replace("http://", "ws://") + "/v1/worker/stream"
    headers = [(b"authorization", f"Bearer {server.api_key}".encode())]
    hello = {"type": "hello", "handlers": handlers, "credits": credits, "worker": worker}

    async def main() -> None:
        async with open_websocket_url(
            url, extra_headers=headers, connect_timeout=START_TIMEOUT_SECONDS
        ) as ws:
            with trio.fail_after(START_TIMEOUT_SECONDS):
                await ws.send_message(json.dumps(hello))
                welcome = json.loads(await ws.get_message())
            assert welcome["type"] == "welcome", welcome
            opened.put(None)
            await trio.to_thread.run_sync(done.wait)

    def run() -> None:
        try:
            trio.run(main)
        except BaseException as exc:  # reported to the test thread
            opened.put(exc)

    thread = threading.Thread(target=run, name="chronos-test-worker", daemon=True)
    thread.start()
    failure = opened.get(timeout=START_TIMEOUT_SECONDS)
    if failure is not None:
        raise RuntimeError("the worker channel did not open") from failure
    try:
        yield
    finally:
        done.set()
        thread.join(timeout=START_TIMEOUT_SECONDS)
