"""Shared fixtures: a real server on port 0 (SQLite file in tmp_path) and an HTTP client for it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import pytest
import trio

from chronos_server.pipeline.services import LoopSettings
from chronos_server.runtime import ServerHandle, serve
from chronos_server.settings import Settings
from chronos_server.web.server import Limits

API_KEY = "chrns_" + "T" * 40
SIGNING_SECRET = "whsec_" + "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTEyMzQ="


@dataclass
class RunningServer:
    handle: ServerHandle
    client: httpx.AsyncClient
    settings: Settings

    @property
    def url(self) -> str:
        return self.handle.url


def make_settings(tmp_path: Path, **overrides: object) -> Settings:
    base = Settings(
        host="127.0.0.1",
        port=0,
        database_url=f"sqlite:///{tmp_path / 'chronos.db'}",
        bootstrap_api_key=API_KEY,
        bootstrap_signing_secret=SIGNING_SECRET,
        rate_limit=None,
        shutdown_grace_seconds=2.0,
    )
    return replace(base, **overrides)  # type: ignore[arg-type]


async def start_server(
    nursery: trio.Nursery,
    settings: Settings,
    loop_settings: LoopSettings | None = None,
    limits: Limits | None = None,
) -> ServerHandle:
    async def run(*, task_status: trio.TaskStatus[ServerHandle]) -> None:
        await serve(settings, loop_settings=loop_settings, limits=limits, task_status=task_status)

    handle: ServerHandle = await nursery.start(run)
    return handle


@asynccontextmanager
async def open_running_server(
    settings: Settings, loop_settings: LoopSettings | None = None, limits: Limits | None = None
) -> AsyncIterator[RunningServer]:
    """A real server in this process plus an authenticated client for it; stopped on exit."""
    async with trio.open_nursery() as nursery:
        handle = await start_server(nursery, settings, loop_settings, limits)
        headers = {"Authorization": f"Bearer {API_KEY}"}
        async with httpx.AsyncClient(base_url=handle.url, headers=headers, timeout=30) as client:
            yield RunningServer(handle, client, settings)
        handle.stop()


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    async with open_running_server(
        make_settings(tmp_path), LoopSettings(lease_grace_ms=0)
    ) as running:
        yield running


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """This session's own PostgreSQL database (tests/pg.py). A sync fixture on purpose: a skip
    raised inside a Trio task loses its message, and "why skipped" must be readable."""
    from tests import pg

    return pg.session_url()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Drop the session's own PostgreSQL database (tests/pg.py), if a test created one."""
    from tests import pg

    pg.drop_session_database()
