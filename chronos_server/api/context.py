"""Per-app services and per-request helpers shared by the route modules."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from quart import current_app, g, request

from chronos_server.api.auth import KeyCache, SlidingWindowLimiter
from chronos_server.api.timefmt import parse_instant
from chronos_server.api.validation import TargetPolicy
from chronos_server.core.models import Account, Page
from chronos_server.errors import FieldError, ValidationFailed, invalid
from chronos_server.loops.context import Pipeline

Reply = tuple[dict[str, Any], int]


@dataclass
class Services:
    pipeline: Pipeline
    policy: TargetPolicy
    limiter: SlidingWindowLimiter | None
    keys: KeyCache = field(default_factory=lambda: KeyCache(0.0))
    stopping: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def services() -> Services:
    found: Services = current_app.extensions["chronos"]
    return found


def account() -> Account:
    found: Account = g.account
    return found


def ok(data: Any, message: str, status: int = 200) -> Reply:
    return {"success": True, "message": message, "data": data}, status


def paged(items: list[Any], page: Page[Any], number: int, size: int, message: str) -> Reply:
    pages = (page.total + size - 1) // size
    body = {
        "success": True,
        "message": message,
        "data": items,
        "meta": {"paging": {"page": number, "pages": pages, "size": size, "total": page.total}},
    }
    return body, 200


def path_id(value: str, name: str = "id") -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise invalid(name, "must be a UUID") from None


def query_paging() -> tuple[int, int]:
    errors: list[FieldError] = []
    values = {}
    for name, default, low, high in (("page", 1, 1, 1_000_000), ("size", 20, 1, 100)):
        raw = request.args.get(name)
        try:
            value = default if raw is None else int(raw)
        except ValueError:
            errors.append(FieldError(name, "must be an integer"))
            continue
        if not low <= value <= high:
            errors.append(FieldError(name, f"must be between {low} and {high}"))
        values[name] = value
    if errors:
        raise ValidationFailed(None, errors)
    return values["page"], values["size"]


def query_choice(name: str, choices: frozenset[str]) -> str | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    if raw not in choices:
        raise invalid(name, "must be one of " + ", ".join(sorted(choices)))
    return raw


def query_choices(name: str, choices: frozenset[str]) -> list[str] | None:
    """A comma-separated list of allowed values, e.g. `status=failed,timeout`."""
    raw = request.args.get(name)
    if raw is None or raw.strip() == "":
        return None
    values = [v.strip() for v in raw.split(",") if v.strip()]
    unknown = [v for v in values if v not in choices]
    if unknown or not values:
        raise invalid(name, "must be one or more of " + ", ".join(sorted(choices)))
    return values


def query_instant(name: str) -> int | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    try:
        return parse_instant(raw)
    except ValueError as exc:
        raise invalid(name, f"is not a valid ISO 8601 timestamp ({exc})") from None


def query_uuid(name: str) -> str | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    return path_id(raw, name)


def query_text(name: str) -> str | None:
    raw = request.args.get(name)
    return raw.strip() or None if raw is not None else None
