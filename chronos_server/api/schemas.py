"""Request models: the only place raw request JSON is touched (spec §5, §10).

Pydantic checks shape, types and per-field limits; `parse_body` maps its errors into the spec's
envelope (400 for a body that is not a JSON object, 422 with dotted field paths otherwise).
Cross-field rules (cron XOR interval, handler for pull, ...) live in `validation.py`.
The same models feed `GET /v1/openapi.json`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr
from pydantic import ValidationError as PydanticValidationError

from chronos_server.errors import BadRequest, FieldError, ValidationFailed

Name = Annotated[StrictStr, Field(min_length=1, max_length=255)]
Description = Annotated[StrictStr, Field(max_length=1000)]
Handler = Annotated[StrictStr, Field(min_length=1, max_length=255)]
Timeout = Annotated[StrictInt, Field(ge=1, le=3600)]
MaxRetries = Annotated[StrictInt, Field(ge=0, le=25)]
# No documented maximum; bounded so the value fits every SQL integer column (else a 500).
Runs = Annotated[StrictInt, Field(ge=1, le=2_147_483_647)]
Unit = Literal["second", "minute", "hour", "day", "week"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IntervalIn(_Strict):
    value: Annotated[StrictInt, Field(ge=1)]
    unit: Unit


class HttpIn(_Strict):
    url: Annotated[StrictStr, Field(min_length=1)]
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
    headers: dict[StrictStr, StrictStr] | None = None
    retry_on_status: (
        Annotated[list[Annotated[StrictInt, Field(ge=400, le=499)]], Field(max_length=20)] | None
    ) = None


class DeliveryIn(_Strict):
    type: Literal["pull", "push"]
    http: HttpIn | None = None


class ScheduleCreate(_Strict):
    name: Name
    description: Description | None = None
    handler: Handler | None = None
    cron: StrictStr | None = None
    interval: IntervalIn | None = None
    timezone: StrictStr | None = None
    runs: Runs | None = None
    stop_at: StrictStr | None = None
    delivery: DeliveryIn | None = None
    payload: dict[str, Any] | None = None
    timeout: Timeout = 30
    max_retries: MaxRetries = 3


class SchedulePatch(_Strict):
    """Every field optional; `model_fields_set` tells absent (unchanged) from null (cleared)."""

    name: Name | None = None
    description: Description | None = None
    handler: Handler | None = None
    cron: StrictStr | None = None
    interval: IntervalIn | None = None
    timezone: StrictStr | None = None
    runs: Runs | None = None
    stop_at: StrictStr | None = None
    delivery: DeliveryIn | None = None
    payload: dict[str, Any] | None = None
    timeout: Timeout | None = None
    max_retries: MaxRetries | None = None


class JobCreate(_Strict):
    name: Name
    description: Description | None = None
    handler: Handler | None = None
    delivery: DeliveryIn | None = None
    payload: dict[str, Any] | None = None
    delay: IntervalIn | None = None
    scheduled_for: StrictStr | None = None
    idempotency_key: Annotated[StrictStr, Field(min_length=1, max_length=255)] | None = None
    timeout: Timeout = 30
    max_retries: MaxRetries = 3


class ClaimIn(_Strict):
    handlers: Annotated[list[Handler], Field(min_length=1, max_length=100)]
    wait_time_seconds: Annotated[StrictInt, Field(ge=0, le=20)] = 20
    worker: Annotated[StrictStr, Field(max_length=255)] | None = None
    # Extension (batch claim): when given, `data` is a list of up to `max_jobs` jobs.
    max_jobs: Annotated[StrictInt, Field(ge=1, le=100)] | None = None


class ErrorIn(_Strict):
    message: Annotated[StrictStr, Field(max_length=4096)]
    name: Annotated[StrictStr, Field(max_length=255)] | None = None
    stack: StrictStr | None = None


class ResultIn(_Strict):
    status: Literal["completed", "failed"]
    result: Any = None
    error: ErrorIn | None = None
    retryable: StrictBool | None = None


class BatchResultItem(ResultIn):
    execution_id: Annotated[StrictStr, Field(min_length=1)]


class BatchResultsIn(_Strict):
    """Extension (batch report): several results in one request, each judged on its own."""

    results: Annotated[list[BatchResultItem], Field(min_length=1, max_length=100)]


M = TypeVar("M", bound=BaseModel)

_MESSAGES = {"missing": "is required", "extra_forbidden": "is not allowed"}


def field_errors(exc: PydanticValidationError, prefix: str = "") -> list[FieldError]:
    out = []
    for err in exc.errors(include_url=False):
        path = ".".join(str(part) for part in err["loc"])
        field = f"{prefix}.{path}" if prefix and path else (prefix or path)
        out.append(FieldError(field, _MESSAGES.get(err["type"], err["msg"])))
    return out


def parse_body(model: type[M], raw: str | bytes) -> M:
    """Validate a request body: 400 if it is not a JSON object, 422 naming each bad field."""
    try:
        return model.model_validate_json(raw or b"")
    except PydanticValidationError as exc:
        top = [e for e in exc.errors() if not e["loc"]]
        if top and top[0]["type"] == "json_invalid":
            raise BadRequest("Request body is not valid JSON") from exc
        if top:
            raise BadRequest("Request body must be a JSON object") from exc
        raise ValidationFailed(None, field_errors(exc)) from exc


def openapi_components() -> dict[str, Any]:
    models: list[type[BaseModel]] = [
        ScheduleCreate,
        SchedulePatch,
        JobCreate,
        ClaimIn,
        ResultIn,
        BatchResultsIn,
    ]
    schemas: dict[str, Any] = {}
    for model in models:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    return schemas
