"""Fixtures for the worker SDK tests: a fake server, its client and a Chronos factory."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest

from chronos_worker import Chronos

from .fakes import FakeServer, RecordingLogger

API_KEY = "chrns_testkey"
BASE_URL = "http://chronos.test"
RNG_SEED = 2026  # the jitter of retry pauses, the same in every run

MakeChronos = Callable[..., Chronos]


@pytest.fixture(autouse=True)
def _no_chronos_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Tests never see the developer's CHRONOS_* variables (and the CLI's writes are undone)."""
    monkeypatch.delenv("CHRONOS_API_KEY", raising=False)
    monkeypatch.delenv("CHRONOS_BASE_URL", raising=False)
    monkeypatch.delenv("CHRONOS_WORKER_PROTOCOL", raising=False)
    monkeypatch.delenv("CHRONOS_WORKER_PREFETCH", raising=False)
    yield


@pytest.fixture
def server() -> FakeServer:
    return FakeServer()


@pytest.fixture
def logger() -> RecordingLogger:
    return RecordingLogger()


@pytest.fixture
async def http_client(server: FakeServer) -> AsyncIterator[httpx.AsyncClient]:
    async with server.client() as client:
        yield client


@pytest.fixture
def make_chronos(http_client: httpx.AsyncClient, logger: RecordingLogger) -> MakeChronos:
    def make(**options: Any) -> Chronos:
        options.setdefault("api_key", API_KEY)
        options.setdefault("base_url", BASE_URL)
        options.setdefault("retry_delay_ms", 1000)
        options.setdefault("logger", logger)
        options.setdefault("rng", random.Random(RNG_SEED))
        return Chronos(http_client=http_client, **options)

    return make
