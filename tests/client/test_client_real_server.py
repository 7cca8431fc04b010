"""`Client` and `AsyncClient` against a real server on both stores: every endpoint this server
has, typed results, the error mapping, paging. Replay and handler limits are other branches'
routes (h-ops, h-limits); their tests are skipped until those are merged.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from chronos_worker import AsyncClient, Client
from chronos_worker.client import (
    APIConnectionError,
    AuthenticationError,
    ConflictError,
    InvalidRequestError,
    NotFoundError,
)
from chronos_worker.models import JobStatus, ScheduleStatus
from tests import pg
from tests.conftest import API_KEY, make_settings, open_running_server
from tests.tui.server import ThreadServer, thread_server


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'chronos.db'}"
    return pg.new_schema_url()


@pytest.fixture
def server(tmp_path: Path, database_url: str) -> Iterator[ThreadServer]:
    with thread_server(tmp_path, database_url=database_url) as running:
        yield running


@pytest.fixture
def chronos(server: ThreadServer) -> Iterator[Client]:
    with Client(server.url, server.api_key, timeout=30) as client:
        yield client


def fail_one(chronos: Client, handler: str, message: str = "boom") -> str:
    """A job of `handler` that ends `failed` (no retries); its id."""
    job = chronos.create_job(name=f"{handler} job", handler=handler, max_retries=0)
    claimed = chronos.claim_job([handler], wait_time_seconds=5)
    assert claimed is not None and claimed["job_id"] == job.id
    failure = {"status": "failed", "error": {"message": message, "name": "RuntimeError"}}
    chronos.report_result(claimed["execution_id"], failure)
    return job.id


def test_service_endpoints(chronos: Client) -> None:
    assert chronos.health().status == "ok"
    assert chronos.ready().status == "ready"
    assert "/v1/jobs" in chronos.openapi()["paths"]
    assert chronos.account().name == "default"
    assert chronos.stats(window_minutes=5).window_minutes == 5
    assert chronos.workers().channels == []


def test_schedules_end_to_end(chronos: Client) -> None:
    made = chronos.create_schedule(
        name="nightly", handler="report", cron="0 3 * * *", payload={"k": 1}
    )
    assert made.status is ScheduleStatus.ACTIVE and made.next_run_at is not None
    assert chronos.get_schedule(made.id) == made
    renamed = chronos.update_schedule(made.id, name="nightly report")
    assert renamed.name == "nightly report"
    assert chronos.pause_schedule(made.id).paused_at is not None
    assert chronos.resume_schedule(made.id).paused_at is None
    job = chronos.run_schedule(made.id)
    assert job.schedule_id == made.id and job.handler == "report"
    listed = chronos.list_schedules(status="active", handler="report")
    assert [s.id for s in listed.items] == [made.id] and listed.total == 1
    archived = chronos.archive_schedule(made.id)
    assert archived.status is ScheduleStatus.ARCHIVED
    with pytest.raises(ConflictError) as err:
        chronos.update_schedule(made.id, name="again")
    assert err.value.code == "schedule_archived"


def test_jobs_and_executions(chronos: Client) -> None:
    start = datetime.now(UTC) - timedelta(seconds=5)
    failed_id = fail_one(chronos, "mailer", "SMTP said no")
    waiting = chronos.create_job(name="later", handler="mailer", delay={"value": 1, "unit": "hour"})
    assert waiting.status is JobStatus.PENDING

    failed = chronos.get_job(failed_id)
    assert failed.status is JobStatus.FAILED and failed.attempt_count == 1
    page = chronos.list_jobs(status="failed", handler="mailer", since=start)
    assert [j.id for j in page.items] == [failed_id]
    both = chronos.list_jobs(status=["failed", "pending"])
    assert {j.id for j in both.items} == {failed_id, waiting.id}

    executions = chronos.list_executions(job_id=failed_id, status="failed")
    [execution] = executions.items
    assert execution.error is not None and execution.error.message == "SMTP said no"
    assert chronos.get_execution(execution.id) == execution

    cancelled = chronos.cancel_job(waiting.id)
    assert cancelled.status is JobStatus.CANCELLED
    with pytest.raises(ConflictError) as err:
        chronos.cancel_job(failed_id)
    assert err.value.status == 409 and err.value.code == "job_not_cancellable"


def test_batch_create_and_idempotency(chronos: Client) -> None:
    first = chronos.create_job(name="once", handler="h", idempotency_key="order-7")
    with pytest.raises(ConflictError) as held:
        chronos.create_job(name="once", handler="h", idempotency_key="order-7")
    assert held.value.code == "idempotency_key_conflict"
    assert [e.field for e in held.value.errors] == ["idempotency_key"]
    assert first.id in held.value.errors[0].message
    items = chronos.create_jobs(
        [{"name": "a", "handler": "h"}, {"name": "", "handler": "h"}, {"name": "c", "handler": "h"}]
    )
    assert [i.success for i in items] == [True, False, True]
    assert items[0].data is not None and items[0].data.name == "a"
    assert items[1].code == "validation_error" and items[1].errors[0]["field"] == "name"


def test_paging_iterates_every_item_once(chronos: Client) -> None:
    made = {
        chronos.create_job(name=f"j{i}", handler="pager", delay={"value": 10, "unit": "minute"}).id
        for i in range(7)
    }
    first = chronos.list_jobs(handler="pager", size=3)
    assert (len(first.items), first.total, first.pages, first.has_next) == (3, 7, 3, True)
    seen = [j.id for j in chronos.iter_jobs(handler="pager", size=3)]
    assert sorted(seen) == sorted(made) and len(seen) == 7


def test_errors_carry_code_status_and_fields(chronos: Client, server: ThreadServer) -> None:
    with pytest.raises(NotFoundError) as missing:
        chronos.get_job(str(uuid.uuid4()))
    assert missing.value.status == 404 and missing.value.code == "job_not_found"
    with pytest.raises(InvalidRequestError) as invalid:
        chronos.create_job(name="x", handler="h", timeout=0)
    assert invalid.value.status == 422 and invalid.value.code == "validation_error"
    assert [e.field for e in invalid.value.errors] == ["timeout"]
    with Client(server.url, "chrns_" + "W" * 40) as wrong, pytest.raises(AuthenticationError) as a:
        wrong.list_jobs()
    assert a.value.status == 401
    nowhere = Client("http://127.0.0.1:9", API_KEY, max_retries=0)
    with nowhere, pytest.raises(APIConnectionError):
        nowhere.health()


def test_replay_single_and_bulk(chronos: Client) -> None:
    failed_id = fail_one(chronos, "replayer")
    again = chronos.replay_job(failed_id)
    assert again.replay_of == failed_id and again.handler == "replayer"
    assert chronos.get_job(failed_id).last_error is not None
    # Another handler: the replay above is due now and would be claimed first.
    second = fail_one(chronos, "replayer-2")
    bulk = chronos.replay_jobs(status="failed", handler="replayer-2", limit=10)
    assert bulk.count == len(bulk.job_ids) == 1
    assert chronos.get_job(bulk.job_ids[0]).replay_of == second
    pending = chronos.create_job(
        name="p", handler="replayer", delay={"value": 10, "unit": "minute"}
    )
    with pytest.raises(ConflictError):
        chronos.replay_job(pending.id)


def test_handler_limits(chronos: Client) -> None:
    limits = chronos.set_handler_limits("slow", max_running=2, max_per_second=None)
    assert (limits.handler, limits.max_running, limits.max_per_second) == ("slow", 2, None)
    assert chronos.get_handler_limits("slow") == limits
    assert [x.handler for x in chronos.list_handler_limits()] == ["slow"]
    chronos.delete_handler_limits("slow")
    with pytest.raises(NotFoundError):
        chronos.get_handler_limits("slow")


async def test_async_client_under_trio(tmp_path: Path, database_url: str) -> None:
    settings = make_settings(tmp_path, database_url=database_url)
    async with (
        open_running_server(settings) as running,
        AsyncClient(running.url, API_KEY) as chronos,
    ):
        job = await chronos.create_job(
            name="t", handler="trio-h", delay={"value": 10, "unit": "minute"}
        )
        assert (await chronos.get_job(job.id)).id == job.id
        assert [j.id async for j in chronos.iter_jobs(handler="trio-h", size=1)] == [job.id]
        with pytest.raises(NotFoundError):
            await chronos.get_schedule(str(uuid.uuid4()))


def test_async_client_under_asyncio(server: ThreadServer) -> None:
    async def main() -> list[str]:
        async with AsyncClient(server.url, server.api_key) as chronos:
            made = [
                await chronos.create_job(
                    name=f"a{i}", handler="aio", delay={"value": 10, "unit": "minute"}
                )
                for i in range(3)
            ]
            assert (await chronos.stats()).totals[JobStatus.PENDING] == 3
            return [j.id async for j in chronos.iter_jobs(handler="aio", size=2)] + [
                m.id for m in made
            ]

    ids = asyncio.run(main())
    assert sorted(ids[:3]) == sorted(ids[3:])
