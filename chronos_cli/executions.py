"""`chronos executions list|get`."""

from __future__ import annotations

from typing import Any

import click

from chronos_cli.listing import paging_options, show_list
from chronos_cli.support import Api, api_command, fields, instant, print_json, when
from chronos_worker.client import calls
from chronos_worker.models import Execution

HEADERS = ["ID", "JOB", "ATTEMPT", "STATUS", "STARTED (UTC)", "MS", "ERROR"]


def error_text(e: Execution) -> str | None:
    if e.error is not None:
        return e.error.message
    if e.http_status is not None and e.status != "completed":
        return f"HTTP {e.http_status}"
    return None


def row(e: Execution) -> list[object]:
    text = error_text(e)
    return [e.id, e.job_id, e.attempt, e.status.value, when(e.started_at), e.duration_ms,
            text[:60] if text else None]  # fmt: skip


@click.group("executions")
def executions() -> None:
    """Executions: one attempt of a job each."""


@executions.command("list")
@click.option("--status", help="running, completed, failed or timeout (a,b for several)")
@click.option("--job", "job_id", help="executions of this job")
@click.option("--since", help="started since: ISO 8601 time, or 1h / 30m / 2d ago")
@paging_options
@api_command
def list_(
    api: Api, status: str | None, job_id: str | None, since: str | None, **paging: Any
) -> None:
    """List executions, newest first."""
    call = calls.list_executions(
        status, job_id, instant(since) if since else None, paging["page"], paging["size"]
    )
    show_list(api, call, paging["every"], HEADERS, row)


@executions.command("get")
@click.argument("execution_id")
@api_command
def get(api: Api, execution_id: str) -> None:
    """Show one execution."""
    e, found = api.raw(calls.get_execution(execution_id))
    assert isinstance(e, Execution)
    if api.as_json:
        print_json(found.get("data"))
        return
    fields(
        [
            ("id", e.id),
            ("job", e.job_id),
            ("attempt", e.attempt),
            ("trigger", e.trigger),
            ("status", e.status.value),
            ("started", when(e.started_at)),
            ("finished", when(e.finished_at)),
            ("duration ms", e.duration_ms),
            ("worker", e.worker),
            ("error", error_text(e)),
            ("stack", e.error.stack if e.error else None),
            ("http status", e.http_status),
            ("result", e.result),
        ]
    )
