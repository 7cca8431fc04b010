"""Per-handler limits (extension; README "Handler limits"):

- `GET /v1/handlers/limits`: the account's limits, by handler name;
- `GET /v1/handlers/{name}/limits`: one handler's (404 `handler_limits_not_found` if none);
- `PUT /v1/handlers/{name}/limits` `{"max_running": int|null, "max_per_second": number|null}`:
  set them, replacing what was there (at least one not null);
- `DELETE /v1/handlers/{name}/limits`: 204; the jobs waiting for them go on at once.

The handler name in the path is read as a job's `handler` is (trimmed, 1-255 characters). A
change wakes admission, which lets waiting jobs go as far as the new limits allow.
"""

from __future__ import annotations

from typing import Any

from chronos_server.api.context import Call, Reply, ok
from chronos_server.api.routing import Endpoint, Routes
from chronos_server.api.schemas import LimitsIn, parse_body
from chronos_server.api.text import text_problem
from chronos_server.api.timefmt import iso
from chronos_server.core.limits import HandlerLimit
from chronos_server.errors import HandlerLimitsNotFound, invalid

MAX_HANDLER = 255


def limits_json(limit: HandlerLimit) -> dict[str, Any]:
    return {
        "handler": limit.handler,
        "max_running": limit.max_running,
        "max_per_second": limit.max_per_second,
        "updated_at": iso(limit.updated_at),
    }


def _handler(call: Call) -> str:
    raw = call.params["name"]
    if problem := text_problem(raw):
        raise invalid("name", problem)
    name = raw.strip()
    if not name:
        raise invalid("name", "must not be blank")
    if len(raw) > MAX_HANDLER:
        raise invalid("name", f"must be at most {MAX_HANDLER} characters")
    return name


async def list_limits(call: Call) -> Reply:
    found = await call.pipeline.store.list_handler_limits(call.account.id)
    return ok([limits_json(limit) for limit in found], "Handler limits")


async def get_limits(call: Call) -> Reply:
    found = await call.pipeline.store.get_handler_limits(call.account.id, _handler(call))
    if found is None:
        raise HandlerLimitsNotFound()
    return ok(limits_json(found), "Handler limits")


async def put_limits(call: Call) -> Reply:
    handler = _handler(call)
    body = parse_body(LimitsIn, call.request.body)
    if body.max_running is None and body.max_per_second is None:
        raise invalid(
            "max_running",
            "at least one of max_running and max_per_second must be given (DELETE removes "
            "a handler's limits)",
        )
    pipeline = call.pipeline
    stored = await pipeline.store.set_handler_limits(
        call.account.id, handler, body.max_running, body.max_per_second, pipeline.clock.now_ms()
    )
    pipeline.limited.add(call.account.id, handler)
    pipeline.admission_nudge.set()  # a raised limit lets waiting jobs go now
    return ok(limits_json(stored), "Handler limits set")


async def delete_limits(call: Call) -> Reply:
    handler = _handler(call)
    pipeline = call.pipeline
    released = await pipeline.store.delete_handler_limits(
        call.account.id, handler, pipeline.clock.now_ms()
    )
    if released is None:
        raise HandlerLimitsNotFound()
    pipeline.limited.discard(call.account.id, handler)
    for batch in released.ready:
        pipeline.board.notify(batch.account_id, batch.handler, batch.count)
    if released.queued_push:
        pipeline.dispatch_nudge.set()
    return {}, 204


ROUTES: Routes = [
    ("GET", "/v1/handlers/limits", Endpoint(list_limits)),
    ("GET", "/v1/handlers/{name}/limits", Endpoint(get_limits)),
    ("PUT", "/v1/handlers/{name}/limits", Endpoint(put_limits)),
    ("DELETE", "/v1/handlers/{name}/limits", Endpoint(delete_limits)),
]
