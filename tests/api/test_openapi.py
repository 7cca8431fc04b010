"""`GET /v1/openapi.json` describes every endpoint of §5.1 with the validating request models."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import RunningServer

SPEC_ENDPOINTS = {
    ("post", "/v1/schedules"): "ScheduleCreate",
    ("get", "/v1/schedules"): None,
    ("get", "/v1/schedules/{id}"): None,
    ("patch", "/v1/schedules/{id}"): "SchedulePatch",
    ("post", "/v1/schedules/{id}/archive"): None,
    ("post", "/v1/schedules/{id}/run"): None,
    ("post", "/v1/jobs"): "JobCreate",
    ("get", "/v1/jobs"): None,
    ("get", "/v1/jobs/{id}"): None,
    ("post", "/v1/jobs/{id}/cancel"): None,
    ("get", "/v1/executions"): None,
    ("get", "/v1/executions/{id}"): None,
    ("post", "/v1/worker/jobs/claim"): "ClaimIn",
    ("post", "/v1/worker/executions/{id}/result"): "ResultIn",
}


async def _document(server: RunningServer) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=server.url) as anon:
        resp = await anon.get("/v1/openapi.json")
    assert resp.status_code == 200
    doc: dict[str, Any] = resp.json()
    return doc


async def test_every_spec_endpoint_is_described(server: RunningServer) -> None:
    doc = await _document(server)
    assert doc["openapi"].startswith("3.")
    described = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    assert set(SPEC_ENDPOINTS) <= described


async def test_request_bodies_reference_the_validating_models(server: RunningServer) -> None:
    doc = await _document(server)
    schemas = doc["components"]["schemas"]
    for (method, path), model in SPEC_ENDPOINTS.items():
        op = doc["paths"][path][method]
        if model is None:
            assert "requestBody" not in op, (method, path)
            continue
        ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        assert ref == f"#/components/schemas/{model}"
        assert model in schemas


async def test_component_schemas_carry_the_spec_rules(server: RunningServer) -> None:
    schemas = (await _document(server))["components"]["schemas"]
    assert schemas["ScheduleCreate"]["required"] == ["name"]
    assert schemas["ScheduleCreate"]["additionalProperties"] is False
    assert schemas["JobCreate"]["properties"]["timeout"]["maximum"] == 3600
    assert schemas["JobCreate"]["properties"]["max_retries"]["maximum"] == 25
    claim = schemas["ClaimIn"]
    assert claim["required"] == ["handlers"]
    assert claim["properties"]["handlers"]["maxItems"] == 100
    assert claim["properties"]["wait_time_seconds"]["maximum"] == 20
    assert set(schemas["ResultIn"]["properties"]["status"]["enum"]) == {"completed", "failed"}
    for ref in _refs(schemas):
        assert ref.removeprefix("#/components/schemas/") in schemas, ref


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []
