"""Strict query strings (issue 10, defect 7): an unknown parameter or an empty value is a 422
naming it, never silently ignored; `status` takes several values, repeated or comma-separated;
a parameter given twice where one is meant is a 422."""

from __future__ import annotations

import pytest

from tests.api.helpers import PULL_JOB, invalid, ok, paged
from tests.conftest import RunningServer


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/v1/executions?handler=x", "handler"),  # returned every handler's executions
        ("/v1/jobs?stauts=failed", "stauts"),
        ("/v1/schedules?job_id=x", "job_id"),
        ("/v1/stats?window=5", "window"),
        ("/v1/jobs/00000000-0000-4000-8000-000000000000?x=1", "x"),
    ],
)
async def test_an_unknown_query_parameter_is_422(
    server: RunningServer, path: str, field: str
) -> None:
    errors = invalid(await server.client.get(path), field)
    assert errors[0]["message"] == "is not a known query parameter"


@pytest.mark.parametrize(
    "query", ["status=", "handler=", "schedule_id=", "page=", "size=%20", "since="]
)
async def test_an_empty_query_value_is_422(server: RunningServer, query: str) -> None:
    name = query.split("=")[0]
    errors = invalid(await server.client.get(f"/v1/jobs?{query}"), name)
    assert errors[0]["message"] == "must not be empty"


async def test_a_single_valued_parameter_given_twice_is_422(server: RunningServer) -> None:
    invalid(await server.client.get("/v1/jobs?page=1&page=2"), "page")
    invalid(await server.client.get("/v1/jobs?handler=a&handler=b"), "handler")


@pytest.mark.parametrize(
    "query",
    ["status=pending&status=cancelled", "status=pending,cancelled", "status=pending, cancelled"],
)
async def test_status_takes_every_value_given(server: RunningServer, query: str) -> None:
    c = server.client
    kept = ok(await c.post("/v1/jobs", json=PULL_JOB | {"delay": {"value": 1, "unit": "day"}}), 201)
    gone = ok(await c.post("/v1/jobs", json=PULL_JOB | {"delay": {"value": 1, "unit": "day"}}), 201)
    ok(await c.post(f"/v1/jobs/{gone['id']}/cancel"))
    found, paging = paged(await c.get(f"/v1/jobs?{query}"))
    assert {j["id"] for j in found} == {kept["id"], gone["id"]}
    assert paging["total"] == 2
    only, _ = paged(await c.get("/v1/jobs?status=cancelled"))
    assert [j["id"] for j in only] == [gone["id"]]
