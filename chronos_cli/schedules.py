"""`chronos schedules list|get|create|update|archive|run|pause|resume`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from chronos_cli.listing import paging_options, show_list
from chronos_cli.support import Api, api_command, fields, json_object, print_json, span, when
from chronos_worker.client import calls
from chronos_worker.client.calls import body_of
from chronos_worker.models import Job, Schedule

F = TypeVar("F", bound=Callable[..., Any])
HEADERS = ["ID", "NAME", "HANDLER", "EVERY", "STATUS", "NEXT RUN (UTC)", "RUNS"]


def every(s: Schedule) -> str:
    if s.cron:
        return f"cron {s.cron}" + (f" ({s.timezone})" if s.timezone != "UTC" else "")
    if s.interval:
        return f"{s.interval.value} {s.interval.unit}(s)"
    return "-"


def row(s: Schedule) -> list[object]:
    status = "paused" if s.paused_at and s.status == "active" else s.status.value
    return [s.id, s.name, s.handler, every(s), status, when(s.next_run_at), s.run_count]


def show(api: Api, schedule: Schedule, found: dict[str, Any]) -> None:
    if api.as_json:
        print_json(found.get("data"))
        return
    fields(
        [
            ("id", schedule.id),
            ("name", schedule.name),
            ("description", schedule.description),
            ("handler", schedule.handler),
            ("every", every(schedule)),
            ("status", row(schedule)[4]),
            ("delivery", schedule.delivery),
            ("payload", schedule.payload),
            ("timeout", schedule.timeout),
            ("max retries", schedule.max_retries),
            ("runs", f"{schedule.run_count}" + (f" of {schedule.runs}" if schedule.runs else "")),
            ("next run", when(schedule.next_run_at)),
            ("last run", when(schedule.last_run_at)),
            ("created", when(schedule.created_at)),
        ]
    )


def body_options(fn: F) -> F:
    """The schedule's fields as flags; `--body` gives any of them (and others) as JSON."""
    options = [
        click.option("--name"),
        click.option("--description"),
        click.option("--handler"),
        click.option("--cron", help="5-field cron expression"),
        click.option("--every", "interval", help="fixed interval: 30s, 5m, 2h, 1d, 1w"),
        click.option("--timezone", help="IANA timezone of the cron expression"),
        click.option("--payload", help="JSON object, or @file"),
        click.option("--push-url", help="push delivery to this URL (POST); default: pull"),
        click.option("--timeout", type=int, help="seconds an execution may take"),
        click.option("--max-retries", type=int),
        click.option("--runs", type=int, help="stop after this many runs"),
        click.option(
            "--catch-up",
            type=click.Choice(["latest", "none", "all"]),
            help="missed slots (extension): run the latest one, none, or all",
        ),
        click.option("--catch-up-limit", type=int, help="with --catch-up all: at most this many"),
        click.option(
            "--overlap",
            type=click.Choice(["allow", "skip", "queue", "cancel_previous"]),
            help="a slot while the previous job is unfinished (extension)",
        ),
        click.option("--body", help="the request body as a JSON object, or @file"),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def schedule_body(**given: Any) -> dict[str, Any]:
    body = json_object(given.pop("body"), "--body") if given.get("body") else {}
    given.pop("body", None)
    if given.get("interval"):
        given["interval"] = span(given["interval"])
    if given.get("payload"):
        given["payload"] = json_object(given["payload"], "--payload")
    push_url = given.pop("push_url", None)
    if push_url:
        given["delivery"] = {"type": "push", "http": {"url": push_url, "method": "POST"}}
    return body_of(body, {k: v for k, v in given.items() if v is not None})


@click.group("schedules")
def schedules() -> None:
    """Recurring schedules (cron or interval)."""


@schedules.command("list")
@click.option("--status", help="active, completed or archived (a,b for several)")
@click.option("--handler")
@paging_options
@api_command
def list_(api: Api, status: str | None, handler: str | None, **paging: Any) -> None:
    """List schedules, newest first."""
    call = calls.list_schedules(status, handler, paging["page"], paging["size"])
    show_list(api, call, paging["every"], HEADERS, row)


@schedules.command("get")
@click.argument("schedule_id")
@api_command
def get(api: Api, schedule_id: str) -> None:
    """Show one schedule."""
    show(api, *api.raw(calls.get_schedule(schedule_id)))


@schedules.command("create")
@body_options
@api_command
def create(api: Api, **given: Any) -> None:
    """Create a schedule (`--name` and `--cron` or `--every`; `--handler` for pull)."""
    show(api, *api.raw(calls.create_schedule(schedule_body(**given))))


@schedules.command("update")
@click.argument("schedule_id")
@body_options
@api_command
def update(api: Api, schedule_id: str, **given: Any) -> None:
    """Change a schedule's fields (only those given)."""
    body = schedule_body(**given)
    if not body:
        raise click.UsageError("nothing to change: give at least one field")
    show(api, *api.raw(calls.update_schedule(schedule_id, body)))


def _action(name: str, doc: str) -> None:
    @schedules.command(name, help=doc)
    @click.argument("schedule_id")
    @api_command
    def command(api: Api, schedule_id: str) -> None:
        show(api, *api.raw(calls.schedule_action(schedule_id, name)))


_action("archive", "Archive a schedule: no more runs; its pending jobs are cancelled.")
_action("pause", "Pause a schedule (extension): no runs until it is resumed.")
_action("resume", "Resume a paused schedule (extension).")


@schedules.command("run")
@click.argument("schedule_id")
@api_command
def run(api: Api, schedule_id: str) -> None:
    """Run a schedule now: a one-off job with its settings."""
    from chronos_cli.jobs import show as show_job

    job, found = api.raw(calls.run_schedule(schedule_id))
    assert isinstance(job, Job)
    show_job(api, job, found)
