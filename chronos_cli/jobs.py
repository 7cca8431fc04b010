"""`chronos jobs list|get|create|cancel|replay`."""

from __future__ import annotations

from typing import Any

import click

from chronos_cli.listing import paging_options, show_list
from chronos_cli.support import (
    Api,
    api_command,
    fields,
    instant,
    json_object,
    print_json,
    span,
    table,
    when,
)
from chronos_worker.client import calls
from chronos_worker.client.calls import body_of
from chronos_worker.models import Job, ReplayResult

HEADERS = ["ID", "NAME", "HANDLER", "STATUS", "ATTEMPTS", "CREATED (UTC)", "LAST ERROR"]
STATUSES = "pending, admitting, queued, ready, running, retrying, completed, failed, cancelled"


def row(job: Job) -> list[object]:
    error = (job.last_error or "")[:60]
    return [job.id, job.name, job.handler, job.status.value, job.attempt_count,
            when(job.created_at), error]  # fmt: skip


def show(api: Api, job: Job, found: dict[str, Any]) -> None:
    if api.as_json:
        print_json(found.get("data"))
        return
    fields(
        [
            ("id", job.id),
            ("name", job.name),
            ("handler", job.handler),
            ("status", job.status.value),
            ("schedule", job.schedule_id),
            ("attempts", f"{job.attempt_count} (max retries {job.max_retries})"),
            ("scheduled for", when(job.scheduled_for)),
            ("run at", when(job.run_at)),
            ("finished", when(job.finished_at)),
            ("last error", job.last_error),
            ("replay of", job.replay_of),
            ("delivery", job.delivery),
            ("payload", job.payload),
            ("created", when(job.created_at)),
        ]
    )


@click.group("jobs")
def jobs() -> None:
    """One-off and spawned jobs."""


@jobs.command("list")
@click.option("--status", multiple=True, help=f"one of {STATUSES} (repeat for several)")
@click.option("--handler")
@click.option("--schedule", "schedule_id", help="jobs of this schedule")
@click.option("--since", help="created since: ISO 8601 time, or 1h / 30m / 2d ago")
@paging_options
@api_command
def list_(
    api: Api,
    status: tuple[str, ...],
    handler: str | None,
    schedule_id: str | None,
    since: str | None,
    **paging: Any,
) -> None:
    """List jobs, newest first."""
    statuses = [s for given in status for s in given.split(",") if s]
    call = calls.list_jobs(
        statuses or None,
        handler,
        schedule_id,
        instant(since) if since else None,
        paging["page"],
        paging["size"],
    )
    show_list(api, call, paging["every"], HEADERS, row)


@jobs.command("get")
@click.argument("job_id")
@api_command
def get(api: Api, job_id: str) -> None:
    """Show one job."""
    show(api, *api.raw(calls.get_job(job_id)))


@jobs.command("create")
@click.option("--name", help="required unless in --body")
@click.option("--handler")
@click.option("--payload", help="JSON object, or @file")
@click.option("--delay", help="run after: 30s, 5m, 2h, 1d, 1w")
@click.option("--at", "scheduled_for", help="run at this ISO 8601 time")
@click.option("--push-url", help="push delivery to this URL (POST); default: pull")
@click.option("--timeout", type=int, help="seconds an execution may take")
@click.option("--max-retries", type=int)
@click.option("--idempotency-key")
@click.option("--body", help="the request body as a JSON object, or @file")
@api_command
def create(api: Api, body: str | None, **given: Any) -> None:
    """Create a one-off job."""
    if given.get("payload"):
        given["payload"] = json_object(given["payload"], "--payload")
    if given.get("delay"):
        given["delay"] = span(given["delay"])
    push_url = given.pop("push_url", None)
    if push_url:
        given["delivery"] = {"type": "push", "http": {"url": push_url, "method": "POST"}}
    base = json_object(body, "--body") if body else {}
    request = body_of(base, {k: v for k, v in given.items() if v is not None})
    show(api, *api.raw(calls.create_job(request)))


@jobs.command("cancel")
@click.argument("job_id")
@api_command
def cancel(api: Api, job_id: str) -> None:
    """Cancel a job that has not started."""
    show(api, *api.raw(calls.cancel_job(job_id)))


@jobs.command("replay")
@click.argument("job_id", required=False)
@click.option("--status", multiple=True, help="bulk: finished statuses to replay")
@click.option("--handler", help="bulk: only this handler")
@click.option("--schedule", "schedule_id", help="bulk: only jobs of this schedule")
@click.option("--since", help="bulk: finished since (ISO 8601, or 1h / 30m / 2d ago)")
@click.option("--until", help="bulk: finished before")
@click.option("--limit", type=click.IntRange(1, 1000), help="bulk: at most this many [100]")
@api_command
def replay(
    api: Api,
    job_id: str | None,
    status: tuple[str, ...],
    handler: str | None,
    schedule_id: str | None,
    since: str | None,
    until: str | None,
    limit: int | None,
) -> None:
    """Run a finished job again as a new job (JOB_ID), or every job matching the filters
    (`--status failed --since 1h`)."""
    bulk = bool(status or handler or schedule_id or since or until or limit)
    if job_id is not None and bulk:
        raise click.UsageError("give a JOB_ID or bulk filters, not both")
    if job_id is not None:
        show(api, *api.raw(calls.replay_job(job_id)))
        return
    statuses = [s for given in status for s in given.split(",") if s]
    if not statuses:
        raise click.UsageError("give a JOB_ID, or --status (e.g. --status failed) to replay many")
    call = calls.replay_jobs(
        statuses,
        handler,
        schedule_id,
        instant(since) if since else None,
        instant(until) if until else None,
        limit,
    )
    result, found = api.raw(call)
    assert isinstance(result, ReplayResult)
    if api.as_json:
        print_json(found.get("data"))
        return
    click.echo(f"Replayed {result.count} job(s)")
    table(["NEW JOB"], [[i] for i in result.job_ids])
