"""A pull job created with no worker is `ready`; claim + report completes it with its history."""

from __future__ import annotations

from tests.conftest import RunningServer


async def test_pull_job_ready_then_claimed_and_completed(server: RunningServer) -> None:
    c = server.client
    created = await c.post("/v1/jobs", json={"name": "one", "handler": "h", "payload": {"n": 1}})
    assert created.status_code == 201, created.text
    job_id = created.json()["data"]["id"]

    claim = await c.post("/v1/worker/jobs/claim", json={"handlers": ["h"], "wait_time_seconds": 5})
    data = claim.json()["data"]
    assert data["job_id"] == job_id and data["attempt"] == 1 and data["payload"] == {"n": 1}

    report = await c.post(
        f"/v1/worker/executions/{data['execution_id']}/result",
        json={"status": "completed", "result": {"ok": True}},
    )
    assert report.status_code == 200, report.text
    job = (await c.get(f"/v1/jobs/{job_id}")).json()["data"]
    assert job["status"] == "completed" and job["attempt_count"] == 1
    executions = (await c.get("/v1/executions", params={"job_id": job_id})).json()
    assert [e["status"] for e in executions["data"]] == ["completed"]
    assert executions["data"][0]["trigger"] == "api"
    assert executions["data"][0]["result"] == {"ok": True}
