"""`GET /v1/stats` against real jobs in several states."""

from __future__ import annotations

import sqlite3

import trio

from chronos_server.store.queries import load_queries
from tests.conftest import RunningServer


async def test_stats_counts_per_handler_and_state(server: RunningServer) -> None:
    c = server.client
    for i in range(3):
        await c.post("/v1/jobs", json={"name": f"a{i}", "handler": "alpha"})
    later = await c.post(
        "/v1/jobs", json={"name": "later", "handler": "beta", "delay": {"value": 1, "unit": "hour"}}
    )
    with trio.fail_after(5):  # let the pipeline make the three alpha jobs claimable first
        while True:
            ready = await c.get("/v1/jobs", params={"status": "ready", "handler": "alpha"})
            if ready.json()["meta"]["paging"]["total"] == 3:
                break
            await trio.sleep(0.01)
    claim = await c.post(
        "/v1/worker/jobs/claim", json={"handlers": ["alpha"], "wait_time_seconds": 5}
    )
    execution_id = claim.json()["data"]["execution_id"]
    await c.post(f"/v1/worker/executions/{execution_id}/result", json={"status": "completed"})
    await c.post(f"/v1/jobs/{later.json()['data']['id']}/cancel")

    body = (await c.get("/v1/stats")).json()
    assert body["success"] is True
    data = body["data"]
    by_handler = {row["handler"]: row for row in data["handlers"]}
    assert by_handler["alpha"]["counts"]["ready"] == 2, by_handler
    assert by_handler["alpha"]["counts"]["completed"] == 1
    assert by_handler["alpha"]["oldest_ready_age_ms"] >= 0
    assert by_handler["beta"]["counts"]["cancelled"] == 1
    assert by_handler["beta"]["oldest_ready_at"] is None
    assert data["totals"]["ready"] == 2 and data["totals"]["completed"] == 1
    assert len(data["throughput"]) == 60
    assert sum(m["completed"] for m in data["throughput"]) == 1

    bad = await c.get("/v1/stats", params={"window_minutes": "0"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "window_minutes"


def test_stats_queries_use_indexes(tmp_path: object) -> None:
    from chronos_server.store.sqlite import migrate

    conn = sqlite3.connect(":memory:", isolation_level=None)
    migrate(conn)
    queries = load_queries("sqlite")
    params = {"account_id": "a", "since": 0, "handlers": '["f", "g"]'}
    for name in ("stats_state_counts", "stats_finished", "stats_oldest_ready"):
        plan = " ".join(
            str(row[3]) for row in conn.execute("EXPLAIN QUERY PLAN " + queries[name], params)
        )
        assert "USING" in plan and "INDEX" in plan, (name, plan)
        assert "SCAN jobs" not in plan.replace("USING", ""), (name, plan)


async def test_status_lists_and_since_filter_jobs_and_executions(server: RunningServer) -> None:
    c = server.client
    first = (await c.post("/v1/jobs", json={"name": "a", "handler": "f"})).json()["data"]
    second = (await c.post("/v1/jobs", json={"name": "b", "handler": "f"})).json()["data"]
    await c.post(f"/v1/jobs/{second['id']}/cancel")
    claim = await c.post("/v1/worker/jobs/claim", json={"handlers": ["f"], "wait_time_seconds": 5})
    execution_id = claim.json()["data"]["execution_id"]
    failed = {"status": "failed", "error": {"message": "x"}, "retryable": False}
    await c.post(f"/v1/worker/executions/{execution_id}/result", json=failed)

    both = (await c.get("/v1/jobs", params={"status": "failed,cancelled"})).json()
    assert {j["id"] for j in both["data"]} == {first["id"], second["id"]}
    only = (await c.get("/v1/jobs", params={"status": "cancelled"})).json()
    assert [j["id"] for j in only["data"]] == [second["id"]]
    later = (await c.get("/v1/jobs", params={"since": second["created_at"]})).json()
    assert [j["id"] for j in later["data"]] == [second["id"]]
    runs = (await c.get("/v1/executions", params={"status": "failed,timeout"})).json()
    assert [e["id"] for e in runs["data"]] == [execution_id]
    none = (await c.get("/v1/executions", params={"status": "completed,timeout"})).json()
    assert none["data"] == [] and none["meta"]["paging"]["total"] == 0

    bad = await c.get("/v1/jobs", params={"status": "failed,nope"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "status"
    bad_since = await c.get("/v1/executions", params={"since": "yesterday"})
    assert bad_since.status_code == 422 and bad_since.json()["errors"][0]["field"] == "since"
