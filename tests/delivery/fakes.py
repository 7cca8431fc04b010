"""Fakes for the push tests: a scripted resolver and a world (pipeline on the inline in-memory
SQLite store, an account with a known signing secret, and push jobs made to order).

No threads and no sockets anywhere here, so `autojump_clock` is safe with all of it.
"""

from __future__ import annotations

import random
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import trio

from chronos_server.clock import TrioClock
from chronos_server.core.models import (
    ClaimedJob,
    Delivery,
    DeliveryType,
    HttpTarget,
    Job,
    JobStatus,
    Trigger,
)
from chronos_server.pipeline.services import LoopSettings, Pipeline
from chronos_server.store.sqlite import open_sqlite_store
from chronos_server.store.transactions import new_id

# whsec_ + base64 of the bytes 0x00..0x1f: the raw Standard Webhooks key is known byte for byte.
SECRET = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
ORIGIN_MS = 1_800_000_000_000  # a whole second
PUBLIC_IP = "93.184.216.34"


@dataclass
class FakeResolver:
    """`answers[host]` → addresses; an unknown host fails like getaddrinfo (EAI_NONAME)."""

    answers: dict[str, list[str]] = field(default_factory=dict)
    error: OSError | UnicodeError | None = None
    calls: list[tuple[str, int]] = field(default_factory=list)

    async def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append((host, port))
        await trio.lowlevel.checkpoint()
        if self.error is not None:
            raise self.error
        if host not in self.answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return list(self.answers[host])


@dataclass
class World:
    p: Pipeline
    account_id: str

    def now(self) -> int:
        return self.p.clock.now_ms()

    async def add_push_job(
        self,
        url: str = "https://hooks.example.com/chronos",
        *,
        status: JobStatus = JobStatus.QUEUED,
        method: str = "POST",
        headers: dict[str, str] | None = None,
        retry_on_status: tuple[int, ...] = (),
        timeout: int = 30,
        max_retries: int = 3,
        payload: dict[str, Any] | None = None,
        run_at: int | None = None,
    ) -> Job:
        target = HttpTarget(url, method, dict(headers or {}), retry_on_status)
        when = self.now() if run_at is None else run_at
        job = Job(
            id=new_id(), account_id=self.account_id, schedule_id=None, name="push",
            description=None, handler="report", delivery=Delivery(DeliveryType.PUSH, target),
            payload=payload, timeout=timeout, max_retries=max_retries, idempotency_key=None,
            status=status, scheduled_for=when, run_at=when, attempt_count=0,
            last_execution_id=None, first_trigger=Trigger.API, created_at=self.now(),
            updated_at=self.now(),
        )  # fmt: skip
        await self.p.store.insert_job(job)
        return job

    async def start_one(self, **job_args: Any) -> ClaimedJob:
        """A queued push job moved to `running` with its first execution, as dispatch does."""
        await self.add_push_job(**job_args)
        started = await self.p.store.start_push_jobs(self.now(), 1)
        assert len(started) == 1
        return started[0]

    async def job(self, job_id: str) -> Job:
        job = await self.p.store.get_job(self.account_id, job_id)
        assert job is not None
        return job


@asynccontextmanager
async def open_world(settings: LoopSettings | None = None) -> AsyncIterator[World]:
    """Must run inside trio (TrioClock reads trio's clock, virtual under MockClock)."""
    async with open_sqlite_store("sqlite://:memory:", inline=True) as store:
        clock = TrioClock(ORIGIN_MS)
        account, _ = await store.ensure_account("default", clock.now_ms())
        await store.set_signing_secret(account.id, SECRET)
        pipeline = Pipeline(store, clock, random.Random(7), settings or LoopSettings())
        yield World(pipeline, account.id)
