"""Extensions for throughput: batch claim (`max_jobs`) and batch report (`/executions/results`)."""

from __future__ import annotations

import trio

from tests.conftest import RunningServer


async def test_batch_claim_then_batch_report(server: RunningServer) -> None:
    c = server.client
    ids = []
    for i in range(5):
        r = await c.post("/v1/jobs", json={"name": f"b{i}", "handler": "bulk"})
        ids.append(r.json()["data"]["id"])
    with trio.fail_after(5):  # let the pipeline make all five claimable first
        while True:
            ready = await c.get("/v1/jobs", params={"status": "ready"})
            if ready.json()["meta"]["paging"]["total"] == len(ids):
                break
            await trio.sleep(0.01)
    claim = await c.post(
        "/v1/worker/jobs/claim", json={"handlers": ["bulk"], "wait_time_seconds": 5, "max_jobs": 3}
    )
    batch = claim.json()["data"]
    assert [j["job_id"] for j in batch] == ids[:3]  # oldest first
    rest = await c.post(
        "/v1/worker/jobs/claim", json={"handlers": ["bulk"], "wait_time_seconds": 0, "max_jobs": 9}
    )
    assert [j["job_id"] for j in rest.json()["data"]] == ids[3:]
    empty = await c.post(
        "/v1/worker/jobs/claim", json={"handlers": ["bulk"], "wait_time_seconds": 0, "max_jobs": 2}
    )
    assert empty.json()["data"] == []

    results = [
        {"execution_id": batch[0]["execution_id"], "status": "completed", "result": 1},
        {"execution_id": batch[1]["execution_id"], "status": "failed", "error": {"message": "x"}},
        {"execution_id": batch[0]["execution_id"], "status": "completed"},
        {"execution_id": "5f0c6b8e-3f44-4a3c-9e2f-4d1f6f1b2c3d", "status": "completed"},
    ]
    report = await c.post("/v1/worker/executions/results", json={"results": results})
    assert report.status_code == 200, report.text
    items = report.json()["data"]
    assert [i["success"] for i in items] == [True, True, False, False]
    assert items[2]["code"] == "execution_already_finished"
    assert items[3]["code"] == "execution_not_found"
    assert items[0]["data"]["result"] == 1
    done = (await c.get(f"/v1/jobs/{ids[0]}")).json()["data"]
    retrying = (await c.get(f"/v1/jobs/{ids[1]}")).json()["data"]
    assert done["status"] == "completed" and retrying["status"] == "retrying"

    bad = await c.post(
        "/v1/worker/executions/results",
        json={"results": [{"execution_id": "nope", "status": "completed"}]},
    )
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "results.0.execution_id"
    invalid = await c.post(
        "/v1/worker/executions/results",
        json={"results": [{"execution_id": ids[2], "status": "failed"}]},
    )
    assert invalid.status_code == 422 and invalid.json()["errors"][0]["field"] == "results.0.error"
