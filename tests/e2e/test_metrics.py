"""`--metrics-port`: a scrape after a small workload shows what happened, on both stores."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

from chronos_server.pipeline.services import LoopSettings
from tests.api.helpers import claim, ok, report
from tests.conftest import RunningServer, make_settings, open_running_server

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
async def metrics_server(tmp_path: Path, database_url: str) -> AsyncIterator[RunningServer]:
    settings = make_settings(tmp_path, database_url=database_url, metrics_port=0)
    async with open_running_server(settings, LoopSettings(lease_grace_ms=0)) as running:
        yield running


async def scrape(server: RunningServer) -> Samples:
    assert server.handle.metrics_url is not None
    async with httpx.AsyncClient() as plain:  # no API key: the listener needs none
        resp = await plain.get(server.handle.metrics_url + "/metrics")
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/plain")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(resp.text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_scrape_after_a_small_workload(metrics_server: RunningServer) -> None:
    client = metrics_server.client
    for _ in range(3):
        ok(await client.post("/v1/jobs", json={"name": "j", "handler": "h"}), 201)
    batch = {"jobs": [{"name": "b", "handler": "h"}, {"name": "b", "handler": "h"}]}
    ok(await client.post("/v1/jobs/batch", json=batch))
    executions = []
    for _ in range(2):
        claimed = await claim(client, ["h"], wait=5)
        assert claimed is not None
        executions.append(claimed["execution_id"])
    ok(await report(client, executions[0], status="completed", result={"ok": 1}))
    error = {"message": "nope"}
    ok(await report(client, executions[1], status="failed", error=error, retryable=False))

    samples = await scrape(metrics_server)
    assert value(samples, "chronos_jobs_created_total", source="api") == 3
    assert value(samples, "chronos_jobs_created_total", source="batch") == 2
    assert value(samples, "chronos_executions_total", outcome="completed") == 1
    assert value(samples, "chronos_executions_total", outcome="failed") == 1
    assert value(samples, "chronos_claims_total", result="job") == 2
    assert value(samples, "chronos_jobs_claimed_total") == 2
    assert value(samples, "chronos_claim_wait_seconds_count") == 2
    assert value(samples, "chronos_job_lateness_seconds_count", delivery="pull") == 2
    assert value(samples, "chronos_execution_duration_seconds_count", delivery="pull") == 2
    route = {"method": "POST", "route": "/v1/jobs", "status": "201"}
    assert value(samples, "chronos_http_requests_total", **route) == 3
    result = {"method": "POST", "route": "/v1/worker/executions/{id}/result", "status": "200"}
    assert value(samples, "chronos_http_requests_total", **result) == 2
    timed = {"method": "POST", "route": "/v1/jobs"}
    assert value(samples, "chronos_http_request_duration_seconds_count", **timed) == 3
    assert value(samples, "chronos_store_call_duration_seconds_count", operation="insert_jobs") >= 1
    open_jobs = {labels: n for (name, labels), n in samples.items() if name == "chronos_jobs" and n}
    assert sum(open_jobs.values()) == 3  # 5 created, 2 claimed and finished
    assert all(dict(labels)["handler"] == "h" for labels in open_jobs)
    assert value(samples, "chronos_parked_claims") == 0
    assert value(samples, "chronos_push_in_flight") == 0
    assert value(samples, "chronos_worker_channels") == 0

    # The open-jobs gauge is read at most every few seconds, however often Prometheus scrapes.
    ok(await client.post("/v1/jobs", json={"name": "j", "handler": "h"}), 201)
    again = await scrape(metrics_server)
    assert value(again, "chronos_jobs_created_total", source="api") == 4
    assert sum(n for (name, _), n in again.items() if name == "chronos_jobs") == 3


async def test_metrics_listener_serves_only_metrics(metrics_server: RunningServer) -> None:
    assert metrics_server.handle.metrics_url is not None
    async with httpx.AsyncClient(base_url=metrics_server.handle.metrics_url) as plain:
        assert (await plain.get("/v1/jobs")).status_code == 404
        refused = await plain.post("/metrics")
        assert refused.status_code == 405 and refused.headers["allow"] == "GET, HEAD"


async def test_no_metrics_listener_by_default(server: RunningServer) -> None:
    assert server.handle.metrics_url is None
    assert not server.handle.services.pipeline.metrics.enabled
    await trio.lowlevel.checkpoint()
