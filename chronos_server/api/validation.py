"""Cross-field request rules and the builders that turn validated bodies into domain records.

Every problem is collected as a FieldError naming the dotted field (G-34) and raised together
as one 422, before anything is written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

from chronos_server.api.schemas import (
    NOT_NULL_ON_PATCH,
    DeliveryIn,
    IntervalIn,
    JobCreate,
    ScheduleCreate,
    SchedulePatch,
)
from chronos_server.api.text import dotted
from chronos_server.api.timefmt import parse_instant
from chronos_server.core import policies, slots, targets
from chronos_server.core.models import (
    PULL,
    CatchUp,
    Delivery,
    DeliveryType,
    HttpTarget,
    Interval,
    IntervalUnit,
    Job,
    JobStatus,
    Overlap,
    Schedule,
    ScheduleStatus,
    Trigger,
)
from chronos_server.errors import FieldError, HandlerRequiredForPull, ValidationFailed

MAX_PAYLOAD_BYTES = 64 * 1024
MAX_AHEAD_MS = 365 * 86_400_000


@dataclass(frozen=True)
class TargetPolicy:
    allow_http: bool = False
    allow_private: bool = False


class _Errors:
    def __init__(self) -> None:
        self.items: list[FieldError] = []

    def add(self, field: str, message: str) -> None:
        self.items.append(FieldError(field, message))

    def raise_if_any(self) -> None:
        if self.items:
            raise ValidationFailed(None, self.items)


def _delivery(raw: DeliveryIn | None, policy: TargetPolicy, errs: _Errors) -> Delivery:
    if raw is None:
        return PULL
    if raw.type == "pull":
        if raw.http is not None:
            errs.add("delivery.http", "is not allowed for pull delivery")
        return PULL
    if raw.http is None:
        errs.add("delivery.http", "is required for push delivery")
        return Delivery(DeliveryType.PUSH)
    problem = targets.check_url(
        raw.http.url, allow_http=policy.allow_http, allow_private=policy.allow_private
    )
    if any(c <= " " or c == "\x7f" for c in raw.http.url):
        # `urlsplit` would quietly strip or drop them, so the URL stored is not the one sent.
        problem = "must not contain spaces or control characters"
    if problem:
        errs.add("delivery.http.url", problem)
    headers = raw.http.headers or {}
    for name, message in targets.check_headers(headers):
        path = ("delivery", "http", "headers", name) if name else ("delivery", "http", "headers")
        errs.add(dotted(path), message)  # a name holding NUL is echoed as U+FFFD
    retry_on = tuple(sorted(set(raw.http.retry_on_status or ())))
    target = HttpTarget(raw.http.url, raw.http.method, dict(headers), retry_on)
    return Delivery(DeliveryType.PUSH, target)


def _payload(payload: dict[str, Any] | None, errs: _Errors) -> dict[str, Any] | None:
    if payload is None:
        return None
    if not payload:
        errs.add("payload", "must not be empty")
        return payload
    try:
        # NaN/Infinity are accepted by the JSON parser but are not JSON: echoing them back would
        # make every later response carrying this payload unparseable.
        size = len(json.dumps(payload, separators=(",", ":"), allow_nan=False).encode())
    except ValueError:
        errs.add("payload", "must not contain NaN or Infinity")
        return payload
    if size > MAX_PAYLOAD_BYTES:
        errs.add("payload", f"must be at most {MAX_PAYLOAD_BYTES} bytes serialized")
    return payload


def _handler(handler: str | None, delivery: Delivery, errs: _Errors) -> str | None:
    trimmed = handler.strip() if handler is not None else None
    if handler is not None and not trimmed:
        errs.add("handler", "must not be blank")
    if delivery.type is DeliveryType.PULL and handler is None:
        errs.add("handler", "is required for pull delivery")
    return trimmed or None


def _instant(field: str, text: str | None, now: int, errs: _Errors) -> int | None:
    if text is None:
        return None
    try:
        value = parse_instant(text)
    except ValueError as exc:
        errs.add(field, f"is not a valid ISO 8601 timestamp ({exc})")
        return None
    if value <= now:
        errs.add(field, "must be in the future")
    elif value - now > MAX_AHEAD_MS:
        errs.add(field, "must be at most 365 days ahead")
    return value


def _interval(raw: IntervalIn | None) -> Interval | None:
    return Interval(raw.value, IntervalUnit(raw.unit)) if raw else None


def _check_interval(interval: Interval | None, errs: _Errors) -> None:
    # Same ceiling as `delay` (G-33); unbounded, a slot could land past year 9999 and the
    # stored schedule could no longer be rendered (500 on every list).
    if interval is not None and interval.ms > MAX_AHEAD_MS:
        errs.add("interval", "must be at most 365 days")


def _cadence(
    cron: str | None, interval: IntervalIn | None, errs: _Errors
) -> tuple[str | None, Interval | None]:
    if (cron is None) == (interval is None):
        errs.add("cron", "exactly one of cron and interval is required")
        return None, None
    if cron is not None:
        if not cron.isascii():
            # `\d` and `str.split()` would read non-ASCII digits and spaces; the dialect is ASCII.
            errs.add("cron", "must be ASCII")
            return None, None
        try:
            cron = slots.validate_cron(cron)
        except slots.CronError as exc:
            errs.add("cron", str(exc))
            return None, None
    return cron, _interval(interval)


def _timezone(name: str | None, default: str, errs: _Errors) -> str:
    if name is None:
        return default
    try:
        return slots.validate_timezone(name)
    except ValueError:
        errs.add("timezone", "is not a known IANA timezone")
        return default


def build_schedule(
    body: ScheduleCreate,
    *,
    schedule_id: str,
    account_id: str,
    account_tz: str,
    now: int,
    policy: TargetPolicy,
) -> Schedule:
    errs = _Errors()
    delivery = _delivery(body.delivery, policy, errs)
    handler = _handler(body.handler, delivery, errs)
    tz = _timezone(body.timezone, account_tz, errs)
    cron, interval = _cadence(body.cron, body.interval, errs)
    _check_interval(interval, errs)
    payload = _payload(body.payload, errs)
    stop_at = _instant("stop_at", body.stop_at, now, errs)
    errs.raise_if_any()
    anchor = now - now % 1000
    first = slots.first_slot(cron, interval.ms if interval else None, tz, anchor)
    if stop_at is not None and stop_at < first:
        errs.add("stop_at", "is earlier than the first slot")
        errs.raise_if_any()
    return Schedule(
        id=schedule_id,
        account_id=account_id,
        name=body.name,
        description=body.description,
        handler=handler,
        cron=cron,
        interval=interval,
        timezone=tz,
        runs=body.runs,
        stop_at=stop_at,
        delivery=delivery,
        payload=payload,
        timeout=body.timeout,
        max_retries=body.max_retries,
        status=ScheduleStatus.ACTIVE,
        run_count=0,
        next_run_at=first,
        last_run_at=None,
        anchor_at=anchor,
        created_at=now,
        updated_at=now,
        catch_up=CatchUp(body.catch_up),
        catch_up_limit=body.catch_up_limit,
        overlap=Overlap(body.overlap),
    )


def patch_schedule(
    current: Schedule, body: SchedulePatch, *, now: int, policy: TargetPolicy
) -> Schedule:
    """Apply a PATCH (G-31): absent = unchanged, null clears, cadence changes recompute. A paused
    schedule stays paused (its kept-aside next slot is the one recomputed)."""
    sent = body.model_fields_set
    errs = _Errors()
    for field in NOT_NULL_ON_PATCH:
        if field in sent and getattr(body, field) is None:
            errs.add(field, "must not be null")
    errs.raise_if_any()
    delivery = _delivery(body.delivery, policy, errs) if "delivery" in sent else current.delivery
    handler = current.handler
    if "handler" in sent:
        handler = _handler(body.handler, Delivery(DeliveryType.PUSH), errs)
    tz = (
        _timezone(body.timezone, current.timezone, errs) if "timezone" in sent else current.timezone
    )
    cron, interval = current.cron, current.interval
    if "cron" in sent or "interval" in sent:
        # Sending one clears the other (G-31); the result must still have exactly one.
        cron, interval = _cadence(
            body.cron if "cron" in sent else None,
            body.interval if "interval" in sent else None,
            errs,
        )
        _check_interval(interval, errs)
    payload = _payload(body.payload, errs) if "payload" in sent else current.payload
    stop_at = current.stop_at
    if "stop_at" in sent:
        stop_at = _instant("stop_at", body.stop_at, now, errs)
    errs.raise_if_any()
    if delivery.type is DeliveryType.PULL and not handler:
        raise HandlerRequiredForPull()
    updated = replace(
        current,
        name=body.name if "name" in sent and body.name else current.name,
        description=body.description if "description" in sent else current.description,
        handler=handler,
        cron=cron,
        interval=interval,
        timezone=tz,
        runs=body.runs if "runs" in sent else current.runs,
        stop_at=stop_at,
        delivery=delivery,
        payload=payload,
        timeout=body.timeout if body.timeout is not None else current.timeout,
        max_retries=body.max_retries if body.max_retries is not None else current.max_retries,
        catch_up=CatchUp(body.catch_up) if body.catch_up is not None else current.catch_up,
        catch_up_limit=body.catch_up_limit or current.catch_up_limit,
        overlap=Overlap(body.overlap) if body.overlap is not None else current.overlap,
        updated_at=policies.bump(current, now),
    )
    if {"cron", "interval", "timezone"} & sent:
        anchor, next_run = slots.recompute_next_run(
            cron, interval.ms if interval else None, tz, current.anchor_at, current.last_run_at, now
        )
        updated = policies.with_pending_slot(replace(updated, anchor_at=anchor), next_run)
    if slots.completes_before(
        updated.pending_slot, updated.runs, updated.run_count, updated.stop_at
    ):
        updated = policies.complete(updated, now)
    return updated


def build_job(
    body: JobCreate, *, job_id: str, account_id: str, now: int, policy: TargetPolicy
) -> Job:
    errs = _Errors()
    delivery = _delivery(body.delivery, policy, errs)
    handler = _handler(body.handler, delivery, errs)
    payload = _payload(body.payload, errs)
    if body.delay is not None and body.scheduled_for is not None:
        errs.add("delay", "cannot be combined with scheduled_for")
    run_at = now
    if body.delay is not None:
        delay_ms = _interval(body.delay).ms  # type: ignore[union-attr]
        if delay_ms > MAX_AHEAD_MS:
            errs.add("delay", "must be at most 365 days")
        run_at = now + delay_ms
    instant = _instant("scheduled_for", body.scheduled_for, now, errs)
    if instant is not None:
        run_at = instant
    errs.raise_if_any()
    return Job(
        id=job_id,
        account_id=account_id,
        schedule_id=None,
        name=body.name,
        description=body.description,
        handler=handler,
        delivery=delivery,
        payload=payload,
        timeout=body.timeout,
        max_retries=body.max_retries,
        idempotency_key=body.idempotency_key,
        status=JobStatus.PENDING,
        scheduled_for=run_at,
        run_at=run_at,
        attempt_count=0,
        last_execution_id=None,
        first_trigger=Trigger.API,
        created_at=now,
        updated_at=now,
    )
