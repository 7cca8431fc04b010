"""Request models: the only place raw request JSON is touched (spec §5, §10).

Pydantic checks shape, types and per-field limits; `parse_body` maps its errors into the spec's
envelope (400 for a body that is not a JSON object, 422 with dotted field paths otherwise).
Every string field is a `Text` and every free-form JSON value a `JsonObject`/`JsonValue`, so
text neither store can hold (`text.py`) is refused here, once, for every field (push header
names and values are held to ASCII by `targets.check_headers`, a stricter rule).
Cross-field rules (cron XOR interval, handler for pull, ...) are enforced in `validation.py`
and `routes_worker.py`; the same models feed `GET /v1/openapi.json`, so each model also states
those rules in JSON Schema (`json_schema_extra`: documentation only, pydantic does not read it),
and rules JSON Schema cannot state carry an `x-chronos-rule` text. The schemathesis run in the
tests holds the document and the server to each other in both directions.
"""

from __future__ import annotations

from contextlib import suppress
from functools import cache
from typing import Annotated, Any, Literal, TypeVar, cast
from zoneinfo import available_timezones

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    WithJsonSchema,
    WrapValidator,
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
from chronos_server.core import slots
from chronos_server.core.limits import MAX_PER_SECOND, MAX_RUNNING_LIMIT, MIN_PER_SECOND
from chronos_server.errors import BadRequest, ChronosError, FieldError, ValidationFailed

_UNSTORABLE = "unstorable_text"
# Every string field carries this pattern (checked natively by pydantic-core, no Python call):
# no U+0000. A lone surrogate never reaches a str field: the JSON parser refuses its escape
# (see `parse_body`), and pydantic-core refuses one in a Python str (`string_unicode`).
NO_NUL = r"^[^\x00]*$"
J = TypeVar("J")
# Context for a body known to hold no NUL anywhere (see `parse_body`): the walk is skipped.
_NUL_FREE = {"nul_free": True}


def _whole_number(value: object) -> object:
    """JSON Schema's `integer` includes `15.0` (a number with no fraction), so it is read as 15;
    `15.5`, strings and booleans are still refused by the strict check that follows."""
    if type(value) is float and value.is_integer():
        return int(value)
    return value


def _check_json(value: J, info: ValidationInfo) -> J:
    if info.context is _NUL_FREE:
        return value
    found = json_problem(value)
    if found is not None:
        path, problem = found
        # The path inside the value rides in the context; `field_errors` appends it to `loc`.
        raise PydanticCustomError(_UNSTORABLE, problem, {"path": tuple(path)})
    return value


# What `str.strip()` removes (`str.isspace()`): a handler or query value made only of these is
# blank. Spelled out for the document, since a regex `\s` means other sets in other engines.
SPACE = (
    "\\t\\n\\x0b\\x0c\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a"
    "\\u2028\\u2029\\u202f\\u205f\\u3000"
)
# Documented pattern of a string that must hold something besides whitespace (and no NUL).
NOT_BLANK = f"^[^\\x00]*[^\\x00{SPACE}][^\\x00]*$"
UUID_PATTERN = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
_NOT_BLANK_DOC = {"pattern": NOT_BLANK, "description": "Trimmed; must not be blank."}
_INSTANT_DOC = {
    "format": "date-time",
    "x-chronos-rule": "ISO 8601 with an offset (RFC 3339 date-times are accepted); must be in "
    "the future and at most 365 days ahead",
}
_JSON_DOC = {
    "x-chronos-rule": "at most 65536 bytes serialized; no string or key anywhere in it may hold "
    "U+0000 or a lone surrogate"
}

# Bounds go on `StrictInt` itself, the whole-number reading outside them: a `Field` bound put
# after a validator is lost from the JSON schema (pydantic writes it as an unknown `ge` key).
Whole = BeforeValidator(_whole_number)
Text = Annotated[StrictStr, Field(pattern=NO_NUL)]
Name = Annotated[Text, Field(min_length=1, max_length=255)]
Description = Annotated[Text, Field(max_length=1000)]
Handler = Annotated[Name, Field(json_schema_extra=_NOT_BLANK_DOC)]
Instant = Annotated[Text, Field(json_schema_extra=_INSTANT_DOC)]
JsonObject = Annotated[
    dict[str, Any],
    AfterValidator(_check_json),
    Field(
        json_schema_extra={"minProperties": 1, "propertyNames": {"pattern": NO_NUL}, **_JSON_DOC}
    ),
]
JsonValue = Annotated[Any, AfterValidator(_check_json), Field(json_schema_extra=_JSON_DOC)]
Timeout = Annotated[StrictInt, Field(ge=1, le=3600), Whole]
MaxRetries = Annotated[StrictInt, Field(ge=0, le=25), Whole]
# No documented maximum; bounded so the value fits every SQL integer column (else a 500).
Runs = Annotated[StrictInt, Field(ge=1, le=2_147_483_647), Whole]
Unit = Literal["second", "minute", "hour", "day", "week"]
# An interval or delay is at most 365 days (G-33; `validation.MAX_AHEAD_MS`).
_MAX_PER_UNIT = {"second": 31_536_000, "minute": 525_600, "hour": 8_760, "day": 365, "week": 52}


def _shape(
    given: dict[str, str] | None = None, null: tuple[str, ...] = (), **const: str
) -> dict[str, Any]:
    """Schema: each `given` name is present with that JSON type (so not null), each `null` name
    is absent or null, each `const` name (if present) holds that value."""
    props: dict[str, Any] = {n: {"type": t} for n, t in (given or {}).items()}
    props |= {n: {"type": "null"} for n in null}
    props |= {n: {"const": v} for n, v in const.items()}
    out: dict[str, Any] = {"properties": props}
    if given:
        out["required"] = list(given)
    return out


# Pull delivery (explicit, or by default when `delivery` is absent or null) needs a handler.
_HANDLER_FOR_PULL = {
    "anyOf": [
        _shape({"handler": "string"}),
        {
            "required": ["delivery"],
            "properties": {
                "delivery": {
                    "type": "object",
                    "required": ["type"],
                    "properties": {"type": {"const": "push"}},
                }
            },
        },
    ]
}


def _rules(*rules: dict[str, Any]) -> dict[str, Any]:
    return {"allOf": list(rules)}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IntervalIn(_Strict):
    model_config = ConfigDict(
        json_schema_extra=_rules(
            {
                "oneOf": [
                    {"properties": {"unit": {"const": u}, "value": {"maximum": m}}}
                    for u, m in _MAX_PER_UNIT.items()
                ],
                "description": "At most 365 days.",
            }
        )
    )
    value: Annotated[StrictInt, Field(ge=1), Whole]
    unit: Unit


_HEADER_DOC = {
    "maxProperties": 20,
    "propertyNames": {
        "minLength": 1,
        "maxLength": 256,
        "pattern": "^[!#$%&'*+\\-.^_`|~0-9A-Za-z]+$",
        "not": {
            "pattern": "^(?:[Cc][Oo][Nn][Tt][Ee][Nn][Tt]-[Tt][Yy][Pp][Ee]"
            "|[Uu][Ss][Ee][Rr]-[Aa][Gg][Ee][Nn][Tt]"
            "|[Hh][Oo][Ss][Tt]|[Cc][Oo][Nn][Tt][Ee][Nn][Tt]-[Ll][Ee][Nn][Gg][Tt][Hh]"
            "|[Tt][Rr][Aa][Nn][Ss][Ff][Ee][Rr]-[Ee][Nn][Cc][Oo][Dd][Ii][Nn][Gg]"
            "|[Cc][Oo][Nn][Nn][Ee][Cc][Tt][Ii][Oo][Nn]|[Kk][Ee][Ee][Pp]-[Aa][Ll][Ii][Vv][Ee]"
            "|[Tt][Ee]|[Tt][Rr][Aa][Ii][Ll][Ee][Rr]|[Uu][Pp][Gg][Rr][Aa][Dd][Ee]"
            "|[Ee][Xx][Pp][Ee][Cc][Tt]|[Pp][Rr][Oo][Xx][Yy]-[Cc][Oo][Nn][Nn][Ee][Cc][Tt][Ii][Oo][Nn]"
            "|[Xx]-[Cc][Hh][Rr][Oo][Nn][Oo][Ss]-.*|[Ww][Ee][Bb][Hh][Oo][Oo][Kk]-.*)$"
        },
    },
    "additionalProperties": {"type": "string", "maxLength": 4096, "pattern": "^[\\t -~]*$"},
    "description": "Added to every delivery. Names are RFC 9110 tokens; Chronos's own, framing "
    "and hop-by-hop headers are reserved.",
}
# `targets.check_url`; the scheme part is adjusted by `openapi.py` when plain http is allowed.
URL_DOC = {
    "maxLength": 2048,
    "pattern": "^[Hh][Tt][Tt][Pp][Ss]://[^/?#\\x00-\\x20\\x7f][^\\x00-\\x20\\x7f]*$",
    "x-chronos-rule": "an absolute https URL with a host, without credentials; localhost and "
    "literal loopback, private, link-local, CGNAT, multicast, unspecified and reserved addresses "
    "are refused (unless the operator allows private targets)",
}


class HttpIn(_Strict):
    url: Annotated[Text, Field(min_length=1, json_schema_extra=URL_DOC)]
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
    # Plain strings: `targets.check_headers` holds names to ASCII tokens and values to printable
    # ASCII, a stricter rule than `Text` (it refuses NUL too) with a more useful message.
    headers: Annotated[dict[StrictStr, StrictStr], Field(json_schema_extra=_HEADER_DOC)] | None = (
        None
    )
    retry_on_status: (
        Annotated[list[Annotated[StrictInt, Field(ge=400, le=499), Whole]], Field(max_length=20)]
        | None
    ) = None


class DeliveryIn(_Strict):
    """`http` is required for push and not allowed for pull."""

    model_config = ConfigDict(
        json_schema_extra=_rules(
            {
                "oneOf": [
                    _shape(null=("http",), type="pull"),
                    _shape({"http": "object"}, type="push"),
                ]
            }
        )
    )
    type: Literal["pull", "push"]
    http: HttpIn | None = None


# Cron text is ASCII (`validation._cadence`); fields are split on ASCII whitespace.
_CRON_SPACE = "[\\t-\\r\\x1c-\\x1f ]"
_CRON_FIELD = "[0-9A-Za-z*/,\\-]+"
_CRON_DOC = {
    "pattern": f"^{_CRON_SPACE}*{_CRON_FIELD}(?:{_CRON_SPACE}+{_CRON_FIELD}){{4}}{_CRON_SPACE}*$",
    "x-chronos-rule": "5 fields (minute hour day-of-month month day-of-week): `*`, numbers, "
    "ranges, lists, steps and 3-letter month and day names, within each field's range, the day "
    "existing in one of the months; no `@` macros, seconds fields, `L`, `W`, `#` or `?` (G-23)",
}
_CRON = Annotated[Text, Field(json_schema_extra=_CRON_DOC)]
_STOP_AT_DOC = {
    **_INSTANT_DOC,
    "x-chronos-rule": f"{_INSTANT_DOC['x-chronos-rule']}, and not before the first slot",
}
_STOP_AT = Annotated[Text, Field(json_schema_extra=_STOP_AT_DOC)]
# Exactly one of cron and interval is given (and not null).
_CRON_OR_INTERVAL = {
    "oneOf": [
        _shape({"cron": "string"}, ("interval",)),
        _shape({"interval": "object"}, ("cron",)),
    ]
}


@cache
def known_timezones() -> list[str]:
    """The IANA names `slots.validate_timezone` accepts on this server, for the document."""
    names = []
    for name in sorted(available_timezones()):
        with suppress(ValueError):
            names.append(slots.validate_timezone(name))
    return names


def _timezone_doc(schema: dict[str, Any]) -> None:
    schema["enum"] = known_timezones()


_TIMEZONE = Annotated[Text, Field(json_schema_extra=_timezone_doc)]


# Schedule policies (extension; README "Schedule policies"); the defaults are the spec's G-27/G-28.
CatchUpIn = Annotated[
    Literal["latest", "none", "all"],
    Field(
        description="Extension. Missed slots (downtime, a pause): `latest` spawns the most "
        "recent one (the default, spec G-27), `none` none of them (a slot up to 60 s late is "
        "not missed; on resume every slot until then is), `all` up to `catch_up_limit` of the "
        "most recent, oldest first."
    ),
]
CatchUpLimit = Annotated[
    StrictInt,
    Field(ge=1, le=1000, description="Extension. Missed slots `catch_up: all` spawns at most."),
    Whole,
]
OverlapIn = Annotated[
    Literal["allow", "skip", "queue", "cancel_previous"],
    Field(
        description="Extension. A slot while an earlier job of the schedule is unfinished: "
        "`allow` spawns anyway (the default, spec G-28), `skip` spawns nothing (not counted "
        "toward `runs`), `queue` spawns a job that stays `pending` until the earlier ones "
        "finished, `cancel_previous` cancels the earlier ones not yet running (a running one "
        "finishes its attempt, without a retry)."
    ),
]


class ScheduleCreate(_Strict):
    model_config = ConfigDict(json_schema_extra=_rules(_CRON_OR_INTERVAL, _HANDLER_FOR_PULL))
    name: Name
    description: Description | None = None
    handler: Handler | None = None
    cron: _CRON | None = None
    interval: IntervalIn | None = None
    timezone: _TIMEZONE | None = None
    runs: Runs | None = None
    stop_at: _STOP_AT | None = None
    delivery: DeliveryIn | None = None
    payload: JsonObject | None = None
    timeout: Timeout = 30
    max_retries: MaxRetries = 3
    catch_up: CatchUpIn = "latest"
    catch_up_limit: CatchUpLimit = 10
    overlap: OverlapIn = "allow"


# PATCH: these fields cannot be cleared, so null is not allowed for them (G-31).
NOT_NULL_ON_PATCH = (
    "name",
    "timeout",
    "max_retries",
    "delivery",
    "timezone",
    "catch_up",
    "catch_up_limit",
    "overlap",
)


def _patch_doc(schema: dict[str, Any]) -> None:
    for name in NOT_NULL_ON_PATCH:
        prop = schema["properties"][name]
        prop.pop("default", None)
        (kept,) = [b for b in prop.pop("anyOf") if b.get("type") != "null"]
        prop.update(kept)
    schema.update(
        _rules(
            {
                # Sending one of cron/interval clears the other: what is sent must leave one.
                "anyOf": [
                    {"properties": {"cron": False, "interval": False}},
                    *_CRON_OR_INTERVAL["oneOf"],
                ]
            }
        )
    )
    schema["x-chronos-rule"] = (
        "a schedule left with pull delivery and no handler is refused with 400 "
        "handler_required_for_pull"
    )


class SchedulePatch(_Strict):
    """Every field optional; `model_fields_set` tells absent (unchanged) from null (cleared)."""

    model_config = ConfigDict(json_schema_extra=_patch_doc)
    name: Name | None = None
    description: Description | None = None
    handler: Handler | None = None
    cron: _CRON | None = None
    interval: IntervalIn | None = None
    timezone: _TIMEZONE | None = None
    runs: Runs | None = None
    stop_at: _STOP_AT | None = None
    delivery: DeliveryIn | None = None
    payload: JsonObject | None = None
    timeout: Timeout | None = None
    max_retries: MaxRetries | None = None
    catch_up: CatchUpIn | None = None
    catch_up_limit: CatchUpLimit | None = None
    overlap: OverlapIn | None = None


class JobCreate(_Strict):
    model_config = ConfigDict(
        json_schema_extra=_rules(
            _HANDLER_FOR_PULL,
            # `delay` and `scheduled_for` exclude each other (G-34).
            {"anyOf": [_shape(null=("delay",)), _shape(null=("scheduled_for",))]},
        )
    )
    name: Name
    description: Description | None = None
    handler: Handler | None = None
    delivery: DeliveryIn | None = None
    payload: JsonObject | None = None
    delay: IntervalIn | None = None
    scheduled_for: Instant | None = None
    idempotency_key: Name | None = None
    timeout: Timeout = 30
    max_retries: MaxRetries = 3


class ClaimIn(_Strict):
    handlers: Annotated[list[Handler], Field(min_length=1, max_length=100)]
    wait_time_seconds: Annotated[StrictInt, Field(ge=0, le=20), Whole] = 20
    worker: Annotated[Text, Field(max_length=255)] | None = None
    # Extension (batch claim): when given, `data` is a list of up to `max_jobs` jobs.
    max_jobs: Annotated[StrictInt, Field(ge=1, le=100), Whole] | None = None
    # Extension (timed start, offered by the `Chronos-Timed-Start` header of a claim's answer):
    # the worker starts a job that carries `start_in_ms` that many ms after the answer arrives,
    # so the server may hand it a job up to that header's ms before the job is due.
    timed_start: StrictBool | None = None


MAX_EXTEND_SECONDS = 3600


class HeartbeatIn(_Strict):
    """Extension: the body of `POST /v1/worker/executions/:id/heartbeat` (optional)."""

    # The lease then ends `extend_seconds` from now (never earlier than it did); default: the
    # job's `timeout`.
    extend_seconds: Annotated[StrictInt, Field(ge=1, le=MAX_EXTEND_SECONDS), Whole] | None = None


class ErrorIn(_Strict):
    message: Annotated[Text, Field(max_length=4096)]
    name: Annotated[Text, Field(max_length=255)] | None = None
    stack: (
        Annotated[Text, Field(json_schema_extra={"description": "Kept up to 16 KiB."})] | None
    ) = None


# `error` (required) and `retryable` go with `failed`, `result` with `completed`.
_OUTCOME = {
    "oneOf": [
        _shape(null=("error", "retryable"), status="completed"),
        _shape({"error": "object"}, ("result",), status="failed"),
    ]
}


class ResultIn(_Strict):
    model_config = ConfigDict(json_schema_extra=_rules(_OUTCOME))
    status: Literal["completed", "failed"]
    result: JsonValue = None
    error: ErrorIn | None = None
    retryable: StrictBool | None = None


_UUID_DOC = {"format": "uuid", "pattern": UUID_PATTERN}


class BatchResultItem(ResultIn):
    execution_id: Annotated[Text, Field(min_length=1, json_schema_extra=_UUID_DOC)]


class BatchResultsIn(_Strict):
    """Extension (batch report): several results in one request, each judged on its own."""

    results: Annotated[list[BatchResultItem], Field(min_length=1, max_length=100)]


MAX_BATCH_JOBS = 1000


class JobItemInvalid:
    """A batch item that failed its body checks, with the error a single create of it gets."""

    def __init__(self, error: ChronosError) -> None:
        self.error = error


def _job_item(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """Validate one item exactly as a `POST /v1/jobs` body (same parser mode, same context); a
    failure becomes that item's result instead of failing the whole request."""
    try:
        return handler(value)
    except PydanticValidationError as exc:
        if any(not e["loc"] for e in exc.errors()):
            return JobItemInvalid(BadRequest("Job must be a JSON object"))
        return JobItemInvalid(ValidationFailed(None, field_errors(exc)))


_JOB_ITEM_DOC = {
    "description": "A job, exactly as the body of `POST /v1/jobs` (`JobCreate`). One that "
    "fails its checks fails only its own result (with the code, message and errors a single "
    "create of it would get), so any JSON value is accepted here."
}


class JobsBatchIn(_Strict):
    """Extension (batch create): up to 1,000 jobs, each judged on its own, written together."""

    jobs: Annotated[
        list[Annotated[JobCreate, WrapValidator(_job_item), WithJsonSchema(_JOB_ITEM_DOC)]],
        Field(min_length=1, max_length=MAX_BATCH_JOBS),
    ]

    def items(self) -> list[JobCreate | JobItemInvalid]:
        """Each item validated, or in its place why it is not (`_job_item`)."""
        return cast(list[JobCreate | JobItemInvalid], self.jobs)


FinishedStatus = Literal["completed", "failed", "cancelled"]
_FINISHED = ("completed", "failed", "cancelled")


def _one_or_many(value: object) -> object:
    """`"failed"` reads as `["failed"]`; a bad single value is named `status`, not `status.0`."""
    if isinstance(value, str):
        if value not in _FINISHED:
            raise PydanticCustomError("enum", "must be one of completed, failed, cancelled")
        return [value]
    return value


_STATUSES_DOC = {
    "anyOf": [
        {"enum": list(_FINISHED)},
        {"type": "array", "minItems": 1, "maxItems": 3, "items": {"enum": list(_FINISHED)}},
    ],
    "description": "One finished state, or several.",
}
_PAST_INSTANT_DOC = {
    "format": "date-time",
    "x-chronos-rule": "ISO 8601 with an offset (RFC 3339 date-times are accepted)",
}
PastInstant = Annotated[Text, Field(json_schema_extra=_PAST_INSTANT_DOC)]


class JobReplayIn(_Strict):
    """`POST /v1/jobs/:id/replay`: no options (an empty body or `{}`)."""


class JobsReplayIn(_Strict):
    """Extension (bulk replay): which finished jobs to run again (`store.base.ReplayFilter`)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-chronos-rule": "jobs are matched on `finished_at` (since inclusive, until "
            "exclusive; a window that ends before it begins matches nothing)"
        }
    )
    status: Annotated[
        list[FinishedStatus],
        Field(min_length=1, max_length=3),
        BeforeValidator(_one_or_many),
        WithJsonSchema(_STATUSES_DOC),
    ]
    handler: Handler | None = None
    schedule_id: Annotated[Text, Field(json_schema_extra=_UUID_DOC)] | None = None
    since: PastInstant | None = None
    until: PastInstant | None = None
    limit: Annotated[StrictInt, Field(ge=1, le=1000), Whole] = 100

    def statuses(self) -> list[str]:
        return list(self.status)


# Per-handler limits (extension; README "Handler limits", `core/limits.py`).
MaxRunning = Annotated[
    StrictInt,
    Field(
        ge=1,
        le=MAX_RUNNING_LIMIT,
        description="Jobs of the handler `ready` or `running` at once (push: sent and not "
        "answered yet); null: no such limit.",
    ),
    Whole,
]
MaxPerSecond = Annotated[
    StrictFloat,
    Field(
        ge=MIN_PER_SECOND,
        le=MAX_PER_SECOND,
        description="Jobs of the handler started per second (a token bucket holding a tenth of "
        "a second's worth, at least one); null: no such limit.",
    ),
]
_SOME_LIMIT = {
    "anyOf": [_shape({"max_running": "integer"}), _shape({"max_per_second": "number"})],
    "description": "At least one limit is given (DELETE removes a handler's limits).",
}


class LimitsIn(_Strict):
    """Extension: a handler's limits, replaced as a whole (absent = null = no such limit)."""

    model_config = ConfigDict(json_schema_extra=_rules(_SOME_LIMIT))
    max_running: MaxRunning | None = None
    max_per_second: MaxPerSecond | None = None


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
        JobsBatchIn,
        HeartbeatIn,
        JobReplayIn,
        JobsReplayIn,
        LimitsIn,
    ]
    schemas: dict[str, Any] = {}
    for model in models:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    return schemas
