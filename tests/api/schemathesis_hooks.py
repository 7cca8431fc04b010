"""Schemathesis hooks for `test_schemathesis.py`: the generator learns the rules the document can
only state in words (`x-chronos-rule`), so a schema-valid request that breaks one of them is made
to keep it instead of being reported as "valid data rejected".

Each fix-up touches a value only when it is already schema-valid (right type, format, pattern),
so negative cases stay negative. And the claim long-poll is kept short: `wait_time_seconds`
(default 20) is set to 0 so a request never waits for a job that will not come.
"""

from __future__ import annotations

import re
import time
from typing import Any

import schemathesis

from chronos_server.api import cursor
from chronos_server.api.schemas import URL_DOC
from chronos_server.api.timefmt import iso, parse_instant
from chronos_server.core import slots, targets

DAY_MS = 86_400_000
_URL = re.compile(str(URL_DOC["pattern"]))


def _instant_ok(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        parse_instant(value)
    except ValueError:
        return False
    return True


def _fix_cron(body: dict[str, Any]) -> None:
    cron = body.get("cron")
    if isinstance(cron, str) and cron.isascii():
        try:
            slots.validate_cron(cron)
        except slots.CronError:
            body["cron"] = "*/5 * * * *"


def _fix_url(body: dict[str, Any]) -> None:
    delivery = body.get("delivery")
    http = delivery.get("http") if isinstance(delivery, dict) else None
    url = http.get("url") if isinstance(http, dict) else None
    if not (isinstance(url, str) and _URL.match(url) and len(url) <= 2048):
        return
    if targets.check_url(url, allow_http=False, allow_private=False) is not None:
        http["url"] = "https://example.com/hook"  # type: ignore[index]


def _fix_stop_at(body: dict[str, Any], now: int, create: bool) -> None:
    if not _instant_ok(body.get("stop_at")):
        return
    stop_at = now + 300 * DAY_MS
    body["stop_at"] = iso(stop_at)
    if not create:
        return
    interval = body.get("interval")
    if isinstance(interval, dict) and isinstance(interval.get("value"), int):
        interval["value"] = min(interval["value"], 1)
    cron, zone = body.get("cron"), body.get("timezone") or "UTC"
    if isinstance(cron, str) and isinstance(zone, str):
        try:
            if slots.first_slot(slots.validate_cron(cron), None, zone, now) > stop_at - DAY_MS:
                body["stop_at"] = None  # a cadence this sparse has no valid stop_at
        except ValueError:
            pass


_CURSOR_KINDS = {"/v1/jobs": cursor.JOBS, "/v1/executions": cursor.EXECUTIONS}
_CURSOR_KINDS["/v1/schedules"] = cursor.SCHEDULES


def _fix_cursor(case: schemathesis.Case[Any]) -> None:
    """`cursor` is opaque (a string the server handed out) and never comes with `page`: a
    generated one becomes a cursor of that list, and `page` goes."""
    query = case.query
    kind = _CURSOR_KINDS.get(case.operation.path)
    if kind is None or not isinstance(query, dict) or not isinstance(query.get("cursor"), str):
        return
    if not query["cursor"].strip():
        return
    query["cursor"] = cursor.encode_cursor(
        kind, 1_800_000_000_000, "00000000-0000-0000-0000-000000000000"
    )
    query.pop("page", None)


@schemathesis.hook
def before_call(
    context: schemathesis.HookContext, case: schemathesis.Case[Any], kwargs: Any
) -> None:
    _fix_cursor(case)
    body: Any = case.body
    if not isinstance(body, dict):
        return
    path, now = case.operation.path, int(time.time() * 1000)
    if path == "/v1/worker/jobs/claim":
        wait = body.get("wait_time_seconds", 20)
        if type(wait) in (int, float) and 0 < wait <= 20 and float(wait).is_integer():
            body["wait_time_seconds"] = 0
        return
    if path in ("/v1/schedules", "/v1/schedules/{id}"):
        _fix_cron(body)
        _fix_stop_at(body, now, create=path == "/v1/schedules")
    if path == "/v1/jobs" and _instant_ok(body.get("scheduled_for")):
        body["scheduled_for"] = iso(now + DAY_MS)
    _fix_url(body)
