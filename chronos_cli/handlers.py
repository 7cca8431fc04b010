"""`chronos handlers limits list|get|set|clear` (server extension: README "Handler limits")."""

from __future__ import annotations

import click

from chronos_cli.support import Api, api_command, fields, print_json, table, when
from chronos_worker.client import calls
from chronos_worker.models import HandlerLimits

HEADERS = ["HANDLER", "MAX RUNNING", "MAX PER SECOND", "UPDATED (UTC)"]


def row(limits: HandlerLimits) -> list[object]:
    return [limits.handler, limits.max_running, limits.max_per_second, when(limits.updated_at)]


def show(api: Api, limits: HandlerLimits, found: dict[str, object]) -> None:
    if api.as_json:
        print_json(found.get("data"))
        return
    fields(
        [
            ("handler", limits.handler),
            ("max running", limits.max_running),
            ("max per second", limits.max_per_second),
            ("updated", when(limits.updated_at)),
        ]
    )


@click.group("handlers")
def handlers() -> None:
    """Handlers: per-handler limits (a server extension)."""


@handlers.group("limits")
def limits() -> None:
    """How many jobs of a handler run at once, and how many start per second."""


@limits.command("list")
@api_command
def list_(api: Api) -> None:
    """The limits set for this account's handlers."""
    found_limits, found = api.raw(calls.list_handler_limits())
    if api.as_json:
        print_json(found.get("data"))
        return
    table(HEADERS, [row(x) for x in found_limits])


@limits.command("get")
@click.argument("handler")
@api_command
def get(api: Api, handler: str) -> None:
    """One handler's limits (exit 4 if it has none)."""
    show(api, *api.raw(calls.get_handler_limits(handler)))


@limits.command("set")
@click.argument("handler")
@click.option("--max-running", type=click.IntRange(min=1), help="jobs running (or ready) at once")
@click.option(
    "--max-per-second", type=click.FloatRange(min=0, min_open=True), help="starts per second"
)
@api_command
def set_(api: Api, handler: str, max_running: int | None, max_per_second: float | None) -> None:
    """Set a handler's limits (replaces both; an option left out means no such limit)."""
    if max_running is None and max_per_second is None:
        raise click.UsageError("give --max-running, --max-per-second or both")
    show(api, *api.raw(calls.set_handler_limits(handler, max_running, max_per_second)))


@limits.command("clear")
@click.argument("handler")
@api_command
def clear(api: Api, handler: str) -> None:
    """Remove a handler's limits: its waiting jobs move on at once."""
    api.client.send(calls.delete_handler_limits(handler))
    if not api.as_json:
        click.echo(f"limits of {handler} removed")
