"""What a route gets (`Call`: services, request, path parameters, account, query) and the helpers
that read it: envelopes, path ids, and the strict query string.

Query strings are strict: a parameter the endpoint does not know, an empty value, a value given
twice where one is expected, or text that cannot be stored is a 422 naming the parameter.
`status` filters take several values, repeated (`status=a&status=b`) or comma-separated.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from chronos_server.api.auth import KeyCache, KeyUsage, SlidingWindowLimiter
from chronos_server.api.cursor import decode_cursor
from chronos_server.api.text import text_problem
from chronos_server.api.timefmt import parse_instant
from chronos_server.api.validation import TargetPolicy
from chronos_server.core.models import Account, Page
from chronos_server.errors import FieldError, ValidationFailed, invalid
from chronos_server.pipeline.services import Pipeline
from chronos_server.web.messages import Request

Reply = tuple[dict[str, Any], int]
PAGING = frozenset({"page", "size", "cursor"})


@dataclass
class Services:
    pipeline: Pipeline
    policy: TargetPolicy
    limiter: SlidingWindowLimiter | None
    keys: KeyCache = field(default_factory=lambda: KeyCache(0.0))
    key_usage: KeyUsage = field(default_factory=KeyUsage)
    # Failed authentications per client address: past the limit, an unknown key is refused
    # with 429 before it costs a database read.
    auth_failures: SlidingWindowLimiter | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    worker_stream: bool = True  # `GET /v1/worker/stream` served (CHRONOS_WORKER_STREAM=off: 404)
    access_log: bool = False  # `--access-log`: one INFO line per request (`chronos.access`)


class Query:
    """A request's query string, checked against the names its endpoint accepts."""

    def __init__(self, raw: str, allowed: frozenset[str]) -> None:
        self.values: dict[str, list[str]] = {}
        if not raw:
            return
        try:
            pairs = parse_qsl(raw, keep_blank_values=True, errors="strict")
        except UnicodeDecodeError:
            raise invalid("query", "is not valid UTF-8") from None
        errors: list[FieldError] = []
        for name, value in pairs:
            if name not in allowed:
                errors.append(FieldError(name, "is not a known query parameter"))
            elif not value.strip():
                errors.append(FieldError(name, "must not be empty"))
            elif problem := text_problem(value):
                errors.append(FieldError(name, problem))
            else:
                self.values.setdefault(name, []).append(value)
        if errors:
            raise ValidationFailed(None, _unique(errors))

    def one(self, name: str) -> str | None:
        found = self.values.get(name)
        if found is None:
            return None
        if len(found) > 1:
            raise invalid(name, "must be given once")
        return found[0]

    def many(self, name: str) -> list[str] | None:
        """Repeated and/or comma-separated values, in order, without duplicates."""
        found = self.values.get(name)
        if found is None:
            return None
        items = [v.strip() for raw in found for v in raw.split(",")]
        if not all(items):
            raise invalid(name, "must not hold empty items")
        return list(dict.fromkeys(items))


def _unique(errors: list[FieldError]) -> list[FieldError]:
    return list(dict.fromkeys(errors))


@dataclass(slots=True)
class Call:
    svc: Services
    request: Request
    params: dict[str, str]
    account_or_none: Account | None
    query: Query

    @property
    def account(self) -> Account:
        assert self.account_or_none is not None, "an authenticated endpoint"
        return self.account_or_none

    @property
    def pipeline(self) -> Pipeline:
        return self.svc.pipeline

    def path_id(self, name: str = "id") -> str:
        return path_id(self.params[name], name)

    def keyset(self, kind: str) -> tuple[int, str] | None:
        """The `cursor` of a list (keyset paging), never together with `page`."""
        raw = self.query.one("cursor")
        if raw is None:
            return None
        if self.query.one("page") is not None:
            raise invalid("cursor", "cannot be combined with page")
        return decode_cursor(kind, raw)

    def paging(self) -> tuple[int, int]:
        errors: list[FieldError] = []
        values = {}
        for name, default, low, high in (("page", 1, 1, 1_000_000), ("size", 20, 1, 100)):
            try:
                values[name] = self.integer(name, default, low, high)
            except ValidationFailed as exc:
                errors.extend(exc.errors)
        if errors:
            raise ValidationFailed(None, errors)
        return values["page"], values["size"]

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        """A JSON Schema integer written in decimal (`15`, also `15.0`); not `int()`'s wider
        reading, which takes `+1`, `1_0`, surrounding spaces and non-ASCII digits."""
        raw = self.query.one(name)
        if raw is None:
            return default
        if not _INTEGER.fullmatch(raw):
            raise invalid(name, "must be an integer")
        value = int(raw.partition(".")[0])
        if not low <= value <= high:
            raise invalid(name, f"must be between {low} and {high}")
        return value

    def choice(self, name: str, choices: frozenset[str]) -> str | None:
        raw = self.query.one(name)
        if raw is not None and raw not in choices:
            raise invalid(name, "must be one of " + ", ".join(sorted(choices)))
        return raw

    def choices(self, name: str, choices: frozenset[str]) -> list[str] | None:
        """Several allowed values: `status=failed,timeout` or `status=failed&status=timeout`."""
        values = self.query.many(name)
        if values is not None and any(v not in choices for v in values):
            raise invalid(name, "must be one or more of " + ", ".join(sorted(choices)))
        return values

    def instant(self, name: str) -> int | None:
        raw = self.query.one(name)
        if raw is None:
            return None
        try:
            return parse_instant(raw)
        except ValueError as exc:
            raise invalid(name, f"is not a valid ISO 8601 timestamp ({exc})") from None

    def uuid(self, name: str) -> str | None:
        raw = self.query.one(name)
        return None if raw is None else path_id(raw, name)

    def text(self, name: str) -> str | None:
        raw = self.query.one(name)
        return None if raw is None else raw.strip()


def ok(data: Any, message: str, status: int = 200) -> Reply:
    return {"success": True, "message": message, "data": data}, status


def paged(
    items: list[Any],
    page: Page[Any],
    number: int,
    size: int,
    message: str,
    next_cursor: Callable[[], str] | None = None,
) -> Reply:
    """The spec's `meta.paging`, and two extensions: `total_estimated` (the list is too long to
    count on every request: `total` and `pages` are estimates) and `next_cursor` (keyset
    paging: pass it as `cursor` for the page after this one; null on the last page)."""
    pages = (page.total + size - 1) // size
    paging = {
        "page": number,
        "pages": pages,
        "size": size,
        "total": page.total,
        "total_estimated": page.estimated,
        "next_cursor": next_cursor() if next_cursor is not None and page.more else None,
    }
    body = {"success": True, "message": message, "data": items, "meta": {"paging": paging}}
    return body, 200


# The hyphenated form only (JSON Schema's `format: uuid`): `uuid.UUID` alone would also take
# braces, a `urn:uuid:` prefix or 32 bare hex digits, which the document does not allow.
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# A decimal integer, as JSON Schema's `integer` reads a query value (`15.0` included).
_INTEGER = re.compile(r"-?[0-9]+(?:\.0*)?")


def path_id(value: str, name: str = "id") -> str:
    if not _UUID.fullmatch(value):
        raise invalid(name, "must be a UUID")
    return str(uuid.UUID(value))
