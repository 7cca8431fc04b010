"""The server reads values the way the OpenAPI document declares them (JSON Schema 2020-12):
each case here was a disagreement between the two, found by holding them to each other
(tests/api/test_schemathesis.py) or by reading both side by side."""

from __future__ import annotations

import uuid

from tests.api.helpers import PULL_JOB, fails, invalid, ok, paged
from tests.conftest import RunningServer

JOB_ID = "2c1b7a0e-3f4d-4b6a-9c8e-1a2b3c4d5e6f"


async def test_whole_numbers_written_with_a_fraction_are_integers(server: RunningServer) -> None:
    # JSON Schema's `integer` is any number without a fractional part: 30.0 is one, 30.5 is not.
    job = ok(await server.client.post("/v1/jobs", json=PULL_JOB | {"timeout": 30.0}), 201)
    assert job["timeout"] == 30 and isinstance(job["timeout"], int)
    invalid(await server.client.post("/v1/jobs", json=PULL_JOB | {"timeout": 30.5}), "timeout")
    invalid(await server.client.post("/v1/jobs", json=PULL_JOB | {"timeout": True}), "timeout")
    claim = {"handlers": ["nobody"], "wait_time_seconds": 0.0, "max_jobs": 2.0}
    assert ok(await server.client.post("/v1/worker/jobs/claim", json=claim)) == []


async def test_query_integers_are_decimal_numbers(server: RunningServer) -> None:
    paged(await server.client.get("/v1/jobs", params={"page": "1.0", "size": "20"}))
    # `int()` would read all of these; none is a JSON Schema integer.
    for raw in ("+1", "1_0", " 1", "١"):
        invalid(await server.client.get("/v1/jobs", params={"size": raw}), "size")
    invalid(
        await server.client.get("/v1/stats", params={"window_minutes": "6_0"}), "window_minutes"
    )


async def test_ids_are_hyphenated_uuids(server: RunningServer) -> None:
    fails(await server.client.get(f"/v1/jobs/{JOB_ID.upper()}"), 404, "job_not_found")
    hexed = uuid.UUID(JOB_ID).hex
    for other in (hexed, f"{{{JOB_ID}}}", f"urn:uuid:{JOB_ID}"):
        invalid(await server.client.get(f"/v1/jobs/{other}"), "id")
        invalid(await server.client.get("/v1/jobs", params={"schedule_id": other}), "schedule_id")
    report = {"results": [{"execution_id": hexed, "status": "completed"}]}
    resp = await server.client.post("/v1/worker/executions/results", json=report)
    invalid(resp, "results.0.execution_id")


async def test_rfc3339_date_times_are_accepted(server: RunningServer) -> None:
    # `format: date-time` allows a lower-case `t`/`z` and a leap second.
    for since in ("2026-01-15t09:00:00z", "2016-12-31T23:59:60Z", "2026-01-15T09:00:00.5+01:00"):
        paged(await server.client.get("/v1/jobs", params={"since": since}))
        paged(await server.client.get("/v1/executions", params={"since": since}))
    invalid(await server.client.get("/v1/jobs", params={"since": "2026-01-15T09:00:00"}), "since")


async def test_cron_is_ascii(server: RunningServer) -> None:
    body = {"name": "s", "handler": "h", "cron": "\u0663 * * * *"}  # an Arabic-Indic digit 3
    invalid(await server.client.post("/v1/schedules", json=body), "cron")
    body["cron"] = "3\u2003*\u2003* * *"  # em spaces: `str.split()` would split on them
    invalid(await server.client.post("/v1/schedules", json=body), "cron")


async def test_push_urls_hold_no_spaces_or_control_characters(server: RunningServer) -> None:
    for url in ("https://example.com/a\tb", " https://example.com/", "https://example.com/\x7f"):
        http = {"url": url, "method": "POST"}
        body = {"name": "j", "delivery": {"type": "push", "http": http}}
        invalid(await server.client.post("/v1/jobs", json=body), "delivery.http.url")
