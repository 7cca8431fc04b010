"""Creating jobs over HTTP on both stores: the batch create extension (`POST /v1/jobs/batch`) and
the group commit of concurrent single creates (`pipeline/group_commit.py`)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import trio

from chronos_server.core.models import Job
from chronos_server.errors import ChronosError, StoreUnavailable
from tests.api.helpers import fails, ok, paged
from tests.conftest import RunningServer

GOOD = {"name": "good", "handler": "h", "delay": {"value": 1, "unit": "day"}}


async def all_jobs(client: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
    data, paging = paged(await client.get("/v1/jobs", params={"size": 100}))
    assert paging["total"] == len(data)
    return {job["id"]: job for job in data}


def refused(item: dict[str, Any], code: str) -> list[dict[str, str]]:
    assert item["success"] is False, item
    assert item["code"] == code and item["message"]
    assert "data" not in item
    errors: list[dict[str, str]] = item["errors"]
    return errors


def created(item: dict[str, Any]) -> dict[str, Any]:
    assert item["success"] is True and set(item) == {"success", "data"}, item
    job: dict[str, Any] = item["data"]
    return job


# --- the batch create ------------------------------------------------------------------------


async def test_good_items_are_created_and_bad_ones_refused_each_with_its_field(
    server: RunningServer,
) -> None:
    c = server.client
    items: list[Any] = [
        {**GOOD, "name": "first", "payload": {"n": 1}},
        {**GOOD, "timeout": 3601},
        {"name": "no handler"},
        [1, 2],
        {**GOOD, "name": "second", "description": "d", "max_retries": 0},
        {**GOOD, "cron": "* * * * *"},
        {**GOOD, "scheduled_for": (datetime.now(UTC) + timedelta(hours=1)).isoformat()},
        {**GOOD, "name": "third"},
    ]
    resp = await c.post("/v1/jobs/batch", json={"jobs": items})
    results = ok(resp)
    assert resp.json()["message"] == "3 of 8 job(s) created"
    assert len(results) == len(items)
    jobs = [created(results[i]) for i in (0, 4, 7)]
    assert [j["name"] for j in jobs] == ["first", "second", "third"]
    assert jobs[0]["payload"] == {"n": 1} and jobs[1]["description"] == "d"
    assert jobs[1]["max_retries"] == 0 and jobs[0]["status"] == "pending"
    assert [e["field"] for e in refused(results[1], "validation_error")] == ["timeout"]
    assert refused(results[2], "validation_error") == [
        {"field": "handler", "message": "is required for pull delivery"}
    ]
    assert refused(results[3], "bad_request") == []
    assert [e["field"] for e in refused(results[5], "validation_error")] == ["cron"]
    assert [e["field"] for e in refused(results[6], "validation_error")] == ["delay"]
    # The same answers a single create of each gives, fields and all.
    for i in (1, 2, 5, 6):
        single = await c.post("/v1/jobs", json=items[i])
        assert single.json()["errors"] == results[i]["errors"]
    stored = await all_jobs(c)
    assert set(stored) == {j["id"] for j in jobs}
    for job in jobs:  # what the answer said is what was stored
        assert {k: v for k, v in stored[job["id"]].items() if k != "updated_at"} == {
            k: v for k, v in job.items() if k != "updated_at"
        }


async def test_results_come_in_request_order(server: RunningServer) -> None:
    items = [{**GOOD, "name": f"job-{i:03d}"} for i in range(120)]
    results = ok(await server.client.post("/v1/jobs/batch", json={"jobs": items}))
    assert [created(r)["name"] for r in results] == [i["name"] for i in items]
    assert len({created(r)["id"] for r in results}) == 120


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"jobs": [GOOD] * 1001}, 422, "jobs"),
        ({"jobs": []}, 422, "jobs"),
        ({"jobs": GOOD}, 422, "jobs"),
        ({"jobs": [GOOD], "extra": 1}, 422, "extra"),
        ({}, 422, "jobs"),
        ([GOOD], 400, None),
        (None, 400, None),
    ],
    ids=["1001 items", "no items", "not a list", "unknown field", "no jobs", "a list", "null"],
)
async def test_a_malformed_request_is_refused_whole_and_writes_nothing(
    server: RunningServer, body: Any, status: int, field: str | None
) -> None:
    resp = await server.client.post("/v1/jobs/batch", json=body)
    code = "validation_error" if status == 422 else "bad_request"
    errors = fails(resp, status, code)["errors"]
    assert [e["field"] for e in errors] == ([field] if field else [])
    assert await all_jobs(server.client) == {}


async def test_text_that_is_not_json_is_refused_whole_naming_the_item(
    server: RunningServer,
) -> None:
    raw = json.dumps({"jobs": [GOOD, GOOD, {**GOOD, "name": "\ud800"}]}).encode()
    resp = await server.client.post("/v1/jobs/batch", content=raw)
    assert [e["field"] for e in fails(resp, 422, "validation_error")["errors"]] == ["jobs.2.name"]
    assert await all_jobs(server.client) == {}


async def test_idempotency_keys_inside_a_batch_across_batches_and_with_single_creates(
    server: RunningServer,
) -> None:
    c = server.client
    single = ok(await c.post("/v1/jobs", json={**GOOD, "idempotency_key": "k1"}), 201)
    keys = ["k1", "k2", "k2", "k3", None, "k3"]
    items = [{**GOOD, "idempotency_key": k} if k else GOOD for k in keys]
    results = ok(await c.post("/v1/jobs/batch", json={"jobs": items}))

    def holder(item: dict[str, Any]) -> str:
        [error] = refused(item, "idempotency_key_conflict")
        assert error["field"] == "idempotency_key"
        return error["message"].removeprefix("already used by job ")

    assert holder(results[0]) == single["id"]  # held before the batch
    k2, k3 = created(results[1]), created(results[3])
    assert holder(results[2]) == k2["id"]  # held by an earlier item
    assert holder(results[5]) == k3["id"]
    assert created(results[4])["idempotency_key"] is None
    # A single create after the batch, and another batch, meet the batch's keys.
    again = fails(
        await c.post("/v1/jobs", json={**GOOD, "idempotency_key": "k3"}),
        409,
        "idempotency_key_conflict",
    )
    assert again["errors"][0]["message"] == f"already used by job {k3['id']}"
    later = ok(
        await c.post(
            "/v1/jobs/batch",
            json={"jobs": [{**GOOD, "idempotency_key": "k2"}, {**GOOD, "idempotency_key": "k4"}]},
        )
    )
    assert holder(later[0]) == k2["id"]
    made = [single, k2, k3, created(results[4]), created(later[1])]
    assert set(await all_jobs(c)) == {job["id"] for job in made}


# --- group commit of single creates ---------------------------------------------------------


class HeldWrites:
    """The live server's `insert_jobs`, with its first call held until `release()`; a call
    whose jobs `fail_if` picks raises `StoreUnavailable` without writing."""

    def __init__(self, server: RunningServer, monkeypatch: pytest.MonkeyPatch) -> None:
        self.store = server.handle.services.pipeline.store
        self.writer = server.handle.services.pipeline.job_writer
        self.real: Callable[[list[Job]], Awaitable[list[Job | ChronosError]]] = (
            self.store.insert_jobs
        )
        self.calls: list[int] = []
        self.held = trio.Event()
        self.released = trio.Event()
        self.fail_if: Callable[[list[Job]], bool] = lambda jobs: False
        monkeypatch.setattr(self.store, "insert_jobs", self.insert_jobs)

    async def insert_jobs(self, jobs: list[Job]) -> list[Job | ChronosError]:
        self.calls.append(len(jobs))
        if len(self.calls) == 1:
            self.held.set()
            await self.released.wait()
        if self.fail_if(jobs):
            raise StoreUnavailable("database gone")
        return await self.real(jobs)

    async def wait_queued(self, n: int) -> None:
        with trio.fail_after(10):
            while self.writer.waiting < n:  # noqa: ASYNC110 (they arrive over real sockets)
                await trio.sleep(0.005)


async def post_all(
    client: httpx.AsyncClient, bodies: list[dict[str, Any]], out: list[httpx.Response | None]
) -> None:
    async def one(i: int) -> None:
        out[i] = await client.post("/v1/jobs", json=bodies[i])

    async with trio.open_nursery() as nursery:
        for i in range(len(bodies)):
            nursery.start_soon(one, i)


async def test_concurrent_creates_share_a_write_and_each_gets_its_own_answer(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes = HeldWrites(server, monkeypatch)
    limits = httpx.Limits(max_connections=40)
    headers = dict(server.client.headers)
    async with httpx.AsyncClient(base_url=server.url, headers=headers, limits=limits) as c:
        first: list[httpx.Response | None] = [None]
        keys = [f"key-{i % 6}" if i % 3 else None for i in range(30)]
        bodies: list[dict[str, Any]] = [
            {**GOOD, "name": f"c{i}", "idempotency_key": k} for i, k in enumerate(keys)
        ]
        answers: list[httpx.Response | None] = [None] * len(bodies)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(post_all, c, [{**GOOD, "idempotency_key": "key-1"}], first)
            await writes.held.wait()  # the first create's write is in flight
            nursery.start_soon(post_all, c, bodies, answers)
            await writes.wait_queued(len(bodies))
            writes.released.set()
    assert writes.calls == [1, len(bodies)]  # all thirty in ONE write
    assert first[0] is not None
    holder = {"key-1": ok(first[0], 201)["id"]}
    mine: dict[str, str] = {}
    for body, resp in zip(bodies, answers, strict=True):
        assert resp is not None
        key = body["idempotency_key"]
        if resp.status_code == 201:
            job = ok(resp, 201)
            assert job["name"] == body["name"] and job["idempotency_key"] == key
            mine[job["id"]] = body["name"]
            if key is not None:
                assert key not in holder  # one job per key
                holder[key] = job["id"]
    for body, resp in zip(bodies, answers, strict=True):
        assert resp is not None
        if resp.status_code != 201:
            error = fails(resp, 409, "idempotency_key_conflict")["errors"][0]
            assert error["message"] == f"already used by job {holder[body['idempotency_key']]}"
    # Ten without a key, and one for each of key-2, key-4, key-5 (key-1 was taken before).
    assert len(mine) == 10 + 3
    stored = await all_jobs(server.client)
    assert set(stored) == set(mine) | {holder["key-1"]}


async def test_a_store_failure_in_a_shared_write_answers_503_to_exactly_its_creates(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes = HeldWrites(server, monkeypatch)
    limits = httpx.Limits(max_connections=20)
    headers = dict(server.client.headers)
    async with httpx.AsyncClient(base_url=server.url, headers=headers, limits=limits) as c:
        first: list[httpx.Response | None] = [None]
        doomed: list[dict[str, Any]] = [
            {**GOOD, "name": f"doomed-{i}", "idempotency_key": f"d{i}"} for i in range(8)
        ]
        answers: list[httpx.Response | None] = [None] * len(doomed)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(post_all, c, [{**GOOD, "name": "before"}], first)
            await writes.held.wait()
            nursery.start_soon(post_all, c, doomed, answers)
            await writes.wait_queued(len(doomed))
            writes.fail_if = lambda jobs: any(j.name.startswith("doomed") for j in jobs)
            writes.released.set()
        writes.fail_if = lambda jobs: False
        after = ok(await c.post("/v1/jobs", json={**GOOD, "name": "after"}), 201)
        retried = ok(await c.post("/v1/jobs", json=doomed[0]), 201)  # its key was not taken
    assert writes.calls == [1, len(doomed), 1, 1]
    assert first[0] is not None
    before = ok(first[0], 201)
    for resp in answers:
        assert resp is not None
        fails(resp, 503, "service_unavailable")
    stored = await all_jobs(server.client)
    assert set(stored) == {before["id"], after["id"], retried["id"]}  # nothing half-written
