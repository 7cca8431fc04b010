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


async def test_document_states_the_cross_field_rules(server: RunningServer) -> None:
    schemas = (await _document(server))["components"]["schemas"]
    cadence, handler = schemas["ScheduleCreate"]["allOf"]
    assert [set(b["required"]) for b in cadence["oneOf"]] == [{"cron"}, {"interval"}]
    assert handler["anyOf"][0]["required"] == ["handler"]  # or push delivery
    assert schemas["JobCreate"]["allOf"][0] == handler
    completed, failed = schemas["ResultIn"]["allOf"][0]["oneOf"]
    assert failed["required"] == ["error"] and failed["properties"]["result"] == {"type": "null"}
    assert completed["properties"]["retryable"] == {"type": "null"}
    assert schemas["BatchResultItem"]["properties"]["execution_id"]["format"] == "uuid"
    # Bounds are JSON Schema keywords, not pydantic's names for them.
    assert not {"ge", "le", "gt", "lt"} & _keys(schemas)


async def test_document_lists_parameters_statuses_and_security(server: RunningServer) -> None:
    doc = await _document(server)
    jobs = {p["name"]: p for p in doc["paths"]["/v1/jobs"]["get"]["parameters"]}
    assert set(jobs) == {"page", "size", "cursor", "status", "since", "schedule_id", "handler"}
    assert jobs["status"]["explode"] is True and jobs["status"]["schema"]["type"] == "array"
    assert jobs["page"]["schema"]["maximum"] == 1_000_000
    executions = {p["name"] for p in doc["paths"]["/v1/executions"]["get"]["parameters"]}
    assert executions == {"page", "size", "cursor", "status", "since", "job_id"}
    for path in ("/healthz", "/readyz", "/v1/openapi.json"):
        assert doc["paths"][path]["get"]["security"] == []
    report = doc["paths"]["/v1/worker/executions/{id}/result"]["post"]["responses"]
    assert {"200", "400", "401", "404", "409", "422", "429", "503"} <= set(report)
    assert report["429"]["headers"]["Retry-After"]["required"] is True
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def _keys(node: Any) -> set[str]:
    if isinstance(node, dict):
        return set(node) | {k for v in node.values() for k in _keys(v)}
    if isinstance(node, list):
        return {k for v in node for k in _keys(v)}
    return set()


async def test_the_batch_create_extension_is_described(server: RunningServer) -> None:
    doc = await _document(server)
    op = doc["paths"]["/v1/jobs/batch"]["post"]
    body = op["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/JobsBatchIn"}
    jobs = doc["components"]["schemas"]["JobsBatchIn"]["properties"]["jobs"]
    assert (jobs["minItems"], jobs["maxItems"]) == (1, 1000)
    # Any item is answered in its own result, so the document accepts any JSON value there.
    assert set(jobs["items"]) == {"description"}
    data = op["responses"]["200"]["content"]["application/json"]["schema"]["properties"]["data"]
    assert data["items"] == {"$ref": "#/components/schemas/BatchJobResult"}
    assert "409" not in op["responses"]
