"""What every HTTP command shares: `--server`/`--api-key`/`--json`, the client, the mapping of
the client's errors to the published exit codes (G-44), tables, and value parsers.

Exit codes (G-44): 0 ok, 1 general error, 2 usage (bad flags, or values the server refused as
invalid: 400/422), 3 auth (401/403), 4 not found, 5 conflict, 6 rate limited (after the client's
retries), 7 server or network.
"""

from __future__ import annotations

import functools
import json
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, ParamSpec, TypeVar

import click

from chronos_worker.client import (
    APIConnectionError,
    AuthenticationError,
    ChronosAPIError,
    Client,
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    RateLimitedError,
    ServerError,
)
from chronos_worker.client.core import Call

P = ParamSpec("P")
R = TypeVar("R")

EXIT_OK, EXIT_GENERAL, EXIT_USAGE, EXIT_AUTH = 0, 1, 2, 3
EXIT_NOT_FOUND, EXIT_CONFLICT, EXIT_RATE_LIMITED, EXIT_SERVER = 4, 5, 6, 7
EXIT_CODES = [
    (EXIT_OK, "ok"),
    (EXIT_GENERAL, "general error"),
    (EXIT_USAGE, "usage: a bad flag or argument, or a value the server refused (HTTP 400/422)"),
    (EXIT_AUTH, "auth: no API key, or the server refused it (HTTP 401/403)"),
    (EXIT_NOT_FOUND, "not found (HTTP 404)"),
    (EXIT_CONFLICT, "conflict: the resource's state does not allow it (HTTP 409)"),
    (EXIT_RATE_LIMITED, "rate limited (HTTP 429, after the client's own retries)"),
    (EXIT_SERVER, "server or network: no answer, or HTTP 5xx"),
]


class CommandFailed(click.ClickException):
    """A failed call: `chronos: <message>` on stderr, and its exit code."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code  # type: ignore[misc]  # click declares it on the class

    def show(self, file: Any = None) -> None:
        click.echo(f"chronos: {self.format_message()}", err=True)


def exit_code(error: ChronosAPIError) -> int:
    if isinstance(error, AuthenticationError):
        return EXIT_AUTH
    if isinstance(error, NotFoundError):
        return EXIT_NOT_FOUND
    if isinstance(error, ConflictError):
        return EXIT_CONFLICT
    if isinstance(error, RateLimitedError):
        return EXIT_RATE_LIMITED
    if isinstance(error, ServerError | APIConnectionError):
        return EXIT_SERVER
    if isinstance(error, InvalidRequestError):
        return EXIT_USAGE
    return EXIT_GENERAL


class Api:
    """One command's connection: the client, and whether to print JSON."""

    def __init__(
        self, server: str | None, api_key: str | None, as_json: bool, retries: int
    ) -> None:
        self.client = Client(server, api_key, max_retries=retries)
        self.as_json = as_json

    def raw(self, call: Call[Any]) -> tuple[Any, dict[str, Any]]:
        """(typed result, the envelope as the server sent it)."""
        found: dict[str, Any] = self.client.send(replace(call, parse=lambda env: env))
        return call.parse(found), found


def api_command(fn: Callable[..., None]) -> Callable[..., None]:
    """Add `--server`, `--api-key` and `--json`; hand the command an `Api`; map failures."""

    @click.option(
        "--server",
        envvar="CHRONOS_BASE_URL",
        metavar="URL",
        help="Chronos server (CHRONOS_BASE_URL, http://127.0.0.1:8080)",
    )
    @click.option("--api-key", envvar="CHRONOS_API_KEY", help="API key (CHRONOS_API_KEY)")
    @click.option("--json", "as_json", is_flag=True, help="print the API's `data` as JSON")
    @click.option(
        "--retries",
        type=click.IntRange(0, 10),
        envvar="CHRONOS_RETRIES",
        default=3,
        show_default=True,
        help="retries of 429 and of network errors for idempotent calls (CHRONOS_RETRIES)",
    )
    @functools.wraps(fn)
    def wrapper(
        server: str | None, api_key: str | None, as_json: bool, retries: int, **kwargs: Any
    ) -> None:
        api = Api(server, api_key, as_json, retries)
        try:
            with api.client:
                fn(api, **kwargs)
        except ChronosAPIError as error:
            raise CommandFailed(str(error), exit_code(error)) from error
        except ValueError as error:  # a value the client refused before sending
            raise click.UsageError(str(error)) from error

    return wrapper


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Columns aligned with two spaces; `-` for empty cells."""
    cells = [[("-" if v is None or v == "" else str(v)) for v in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    for line in [list(headers), *cells]:
        click.echo("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip())


def fields(pairs: Sequence[tuple[str, object]]) -> None:
    """One `name  value` line per field, for `get` commands."""
    width = max(len(name) for name, _ in pairs)
    for name, value in pairs:
        shown = "-" if value is None or value == "" else value
        if isinstance(shown, dict | list):
            shown = json.dumps(shown, ensure_ascii=False)
        click.echo(f"{name.ljust(width)}  {shown}")


def when(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


# -- value parsers ----------------------------------------------------------------------------

_SPAN = re.compile(r"(\d+)\s*(s|m|h|d|w)")
_UNITS = {"s": "second", "m": "minute", "h": "hour", "d": "day", "w": "week"}
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def span(value: str) -> dict[str, Any]:
    """`30s`, `5m`, `2h`, `1d`, `1w` → the API's `{value, unit}`."""
    found = _SPAN.fullmatch(value.strip())
    if found is None or int(found.group(1)) < 1:
        raise click.BadParameter(f"{value!r} is not a duration like 30s, 5m, 2h, 1d or 1w")
    return {"value": int(found.group(1)), "unit": _UNITS[found.group(2)]}


def instant(value: str, now: datetime | None = None) -> datetime:
    """An ISO 8601 instant, or `1h` / `30m` / `2d` meaning that long ago."""
    found = _SPAN.fullmatch(value.strip())
    if found is not None:
        ago = int(found.group(1)) * _SECONDS[found.group(2)]
        return (now or datetime.now(UTC)) - timedelta(seconds=ago)
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise click.BadParameter(
            f"{value!r} is neither an ISO 8601 time nor a span like 1h, 30m, 2d"
        ) from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def json_object(value: str, name: str) -> dict[str, Any]:
    """A JSON object given inline, or `@file` to read it from a file (`@-`: stdin)."""
    text = value
    if value.startswith("@"):
        path = value[1:]
        text = sys.stdin.read() if path == "-" else open(path, encoding="utf-8").read()  # noqa: SIM115
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"{name} is not valid JSON: {exc}") from exc
    if not isinstance(parsed, dict):
        raise click.BadParameter(f"{name} must be a JSON object")
    return parsed
