"""Request models: the only place raw request JSON is touched (spec §5, §10).

Pydantic checks shape, types and per-field limits; `parse_body` maps its errors into the spec's
envelope (400 for a body that is not a JSON object, 422 with dotted field paths otherwise).
Every string field is a `Text` and every free-form JSON value a `JsonObject`/`JsonValue`, so
text neither store can hold (`text.py`) is refused here, once, for every field (push header
names and values are held to ASCII by `targets.check_headers`, a stricter rule).
Cross-field rules (cron XOR interval, handler for pull, ...) live in `validation.py`.
The same models feed `GET /v1/openapi.json`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationInfo,
)
from pydantic import ValidationError as PydanticValidationError
from pydantic_core import PydanticCustomError

from chronos_server.api.text import (
    NUL,
    SURROGATE,
    dotted,
    json_problem,
    surrogate_body_problem,
)
from chronos_server.errors import BadRequest, FieldError, ValidationFailed

_UNSTORABLE = "unstorable_text"
# Every string field carries this pattern (checked natively by pydantic-core, no Python call):
# no U+0000. A lone surrogate never reaches a str field: the JSON parser refuses its escape
# (see `parse_body`), and pydantic-core refuses one in a Python str (`string_unicode`).
NO_NUL = r"^[^\x00]*$"
J = TypeVar("J")
# Context for a body known to hold no NUL anywhere (see `parse_body`): the walk is skipped.
_NUL_FREE = {"nul_free": True}


def _check_json(value: J, info: ValidationInfo) -> J:
    if info.context is _NUL_FREE:
        return value
    found = json_problem(value)
    if found is not None:
        path, problem = found
        # The path inside the value rides in the context; `field_errors` appends it to `loc`.
        raise PydanticCustomError(_UNSTORABLE, problem, {"path": tuple(path)})
    return value


Text = Annotated[StrictStr, Field(pattern=NO_NUL)]
Name = Annotated[Text, Field(min_length=1, max_length=255)]
Description = Annotated[Text, Field(max_length=1000)]
Handler = Name
JsonObject = Annotated[dict[str, Any], AfterValidator(_check_json)]
JsonValue = Annotated[Any, AfterValidator(_check_json)]
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
    url: Annotated[Text, Field(min_length=1)]
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
    # Plain strings: `targets.check_headers` holds names to ASCII tokens and values to printable
    # ASCII, a stricter rule than `Text` (it refuses NUL too) with a more useful message.
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
    cron: Text | None = None
    interval: IntervalIn | None = None
    timezone: Text | None = None
    runs: Runs | None = None
    stop_at: Text | None = None
    delivery: DeliveryIn | None = None
    payload: JsonObject | None = None
    timeout: Timeout = 30
    max_retries: MaxRetries = 3


class SchedulePatch(_Strict):
    """Every field optional; `model_fields_set` tells absent (unchanged) from null (cleared)."""

    name: Name | None = None
    description: Description | None = None
    handler: Handler | None = None
    cron: Text | None = None
    interval: IntervalIn | None = None
    timezone: Text | None = None
    runs: Runs | None = None
    stop_at: Text | None = None
    delivery: DeliveryIn | None = None
    payload: JsonObject | None = None
    timeout: Timeout | None = None
    max_retries: MaxRetries | None = None


class JobCreate(_Strict):
    name: Name
    description: Description | None = None
    handler: Handler | None = None
    delivery: DeliveryIn | None = None
    payload: JsonObject | None = None
    delay: IntervalIn | None = None
    scheduled_for: Text | None = None
    idempotency_key: Name | None = None
    timeout: Timeout = 30
    max_retries: MaxRetries = 3


class ClaimIn(_Strict):
    handlers: Annotated[list[Handler], Field(min_length=1, max_length=100)]
    wait_time_seconds: Annotated[StrictInt, Field(ge=0, le=20)] = 20
    worker: Annotated[Text, Field(max_length=255)] | None = None
    # Extension (batch claim): when given, `data` is a list of up to `max_jobs` jobs.
    max_jobs: Annotated[StrictInt, Field(ge=1, le=100)] | None = None


class ErrorIn(_Strict):
    message: Annotated[Text, Field(max_length=4096)]
    name: Annotated[Text, Field(max_length=255)] | None = None
    stack: Text | None = None


class ResultIn(_Strict):
    status: Literal["completed", "failed"]
    result: JsonValue = None
    error: ErrorIn | None = None
    retryable: StrictBool | None = None


class BatchResultItem(ResultIn):
    execution_id: Annotated[Text, Field(min_length=1)]


class BatchResultsIn(_Strict):
    """Extension (batch report): several results in one request, each judged on its own."""

    results: Annotated[list[BatchResultItem], Field(min_length=1, max_length=100)]


M = TypeVar("M", bound=BaseModel)

_MESSAGES = {
    "missing": "is required",
    "extra_forbidden": "is not allowed",
    # A lone surrogate in a str field: only reachable when a model is validated from Python.
    "string_unicode": SURROGATE,
}


def field_errors(exc: PydanticValidationError, prefix: str = "") -> list[FieldError]:
    out = []
    for err in exc.errors(include_url=False):
        loc = list(err["loc"])
        message = _MESSAGES.get(err["type"], err["msg"])
        if err["type"] == "string_pattern_mismatch" and err.get("ctx", {}).get("pattern") == NO_NUL:
            message = NUL
        if err["type"] == _UNSTORABLE and "ctx" in err:
            loc.extend(err["ctx"]["path"])
        path = dotted(loc)
        field = f"{prefix}.{path}" if prefix and path else (prefix or path)
        out.append(FieldError(field, message))
    return out


def parse_body(model: type[M], raw: str | bytes) -> M:
    """Validate a request body: 400 if it is not a JSON object, 422 naming each bad field."""
    # In JSON text a NUL can only be written as the escape `\u0000` (a raw control character is
    # refused by the parser, as is a lone surrogate escape), so a body without that escape holds
    # no unstorable text and the payload/result walk can be skipped: the walk was most of the
    # cost of the text rule on the create path.
    escaped = (b"\\u0000" in raw) if isinstance(raw, bytes) else ("\\u0000" in raw)
    try:
        return model.model_validate_json(raw or b"", context=None if escaped else _NUL_FREE)
    except PydanticValidationError as exc:
        top = [e for e in exc.errors() if not e["loc"]]
        if top and top[0]["type"] == "json_invalid":
            found = surrogate_body_problem(raw)
            if found is not None:
                path, message = found
                raise ValidationFailed(None, [FieldError(dotted(path), message)]) from exc
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
