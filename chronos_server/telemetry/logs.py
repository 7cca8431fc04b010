"""Logging: the format (`--log-format text|json`), the start-up summary, the failure lines and
the store's outages.

JSON (python-json-logger) is one object per line: `level`, `logger`, `message`, the ids the
line is about (`job_id`, `execution_id`, `handler`, `attempt`, ... passed as `extra`) and
`time` (UTC, ISO 8601). Text is one line, the ids written into the message.

What is logged, and at which level:
- INFO: every execution that ends in failure or timeout (`attempt_failed`: handler, job,
  execution, attempt, the error or HTTP status, whether it will be retried), each store outage
  (WARNING when it begins) and recovery (`StoreHealth`), the start-up summary (`startup_line`).
- DEBUG: every job state change the server makes (created, started, finished, cancelled, moved
  by admission), see `state_change`.
- `--access-log`: one INFO line per HTTP request on the `chronos.access` logger.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import fields
from importlib.metadata import PackageNotFoundError, version
from typing import Any, TextIO

import trio
from pythonjsonlogger.json import JsonFormatter

from chronos_server.core.models import ExecutionStatus, JobStatus, Outcome
from chronos_server.settings import Settings

log = logging.getLogger("chronos")
failures = logging.getLogger("chronos.executions")
states = logging.getLogger("chronos.states")
access = logging.getLogger("chronos.access")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def json_formatter() -> logging.Formatter:
    return JsonFormatter(
        "%(levelname)s %(name)s %(message)s",
        rename_fields={"levelname": "level", "name": "logger"},
        timestamp="time",
    )


def configure_logging(
    level: str, fmt: str, *, access_log: bool = False, stream: TextIO | None = None
) -> None:
    """One handler on the root logger (stderr), in `fmt`; `access_log` lets `chronos.access`
    lines through (the server only writes them when asked, so off costs nothing)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(json_formatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    access.setLevel(logging.INFO if access_log else logging.WARNING)


def chronos_version() -> str:
    try:
        return version("chronos")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


_SECRET_SETTINGS = frozenset({"bootstrap_api_key", "bootstrap_signing_secret", "database_url"})


def startup_line(settings: Settings, url: str, dialect: str, metrics_url: str | None) -> str:
    """Version, store, bind, processes and every setting that differs from its default
    (secrets shown as `set`), on one line."""
    default = Settings()
    changed = []
    for f in fields(Settings):
        if f.name in ("host", "port", "workers", "reuse_port", "database_url"):
            continue
        value = getattr(settings, f.name)
        if value != getattr(default, f.name):
            shown = "set" if f.name in _SECRET_SETTINGS else _show(value)
            changed.append(f"{f.name}={shown}")
    parts = [
        f"Chronos {chronos_version()} listening on {url}",
        f"store {dialect}",
        f"workers {settings.workers}",
    ]
    if metrics_url:
        parts.append(f"metrics {metrics_url}/metrics")
    parts.append("settings changed: " + (", ".join(changed) if changed else "none"))
    return "; ".join(parts)


def _show(value: object) -> str:
    if value is None:
        return "off"
    rate = getattr(value, "limit", None)
    if rate is not None:
        return f"{rate}/{getattr(value, 'window_seconds', 0):g}s"
    return str(value)


def describe_error(outcome: Outcome) -> str:
    if outcome.http_status is not None:
        return f"HTTP {outcome.http_status}"
    if outcome.error is not None:
        name = outcome.error.name
        return f"{name}: {outcome.error.message}" if name else outcome.error.message
    return outcome.status.value


def attempt_failed(
    *,
    delivery: str,
    job_id: str,
    execution_id: str,
    attempt: int,
    outcome: ExecutionStatus,
    handler: str | None,
    job_status: JobStatus | None,
    error: str,
    http_status: int | None = None,
) -> None:
    """The INFO line of an execution that ended in failure or timeout. `job_status` is the job's
    state after it (None if unknown): `retrying` means it will be retried."""
    if not failures.isEnabledFor(logging.INFO):
        return
    if job_status is JobStatus.RETRYING:
        then = f"will be retried (attempt {attempt + 1})"
    elif job_status is None:
        then = "retry unknown (job not read)"
    else:
        then = f"will not be retried (job {job_status.value})"
    failures.info(
        "%s execution %s of job %s (handler %s, attempt %d) %s: %s; %s",
        delivery,
        execution_id,
        job_id,
        handler or "-",
        attempt,
        "timed out" if outcome is ExecutionStatus.TIMEOUT else "failed",
        error,
        then,
        extra=ids(
            job_id=job_id,
            execution_id=execution_id,
            handler=handler,
            attempt=attempt,
            delivery=delivery,
            outcome=outcome.value,
            error=error,
            http_status=http_status,
            will_retry=None if job_status is None else job_status is JobStatus.RETRYING,
            job_status=None if job_status is None else job_status.value,
        ),
    )


class StoreHealth:
    """One WARNING when the store becomes unavailable (as the loops see it), one INFO when it
    answers again, instead of a line per failed call."""

    def __init__(self) -> None:
        self.down_since: float | None = None

    def failed(self, where: str, exc: Exception) -> None:
        if self.down_since is None:
            self.down_since = trio.current_time()
            log.warning(
                "store unavailable (%s, noticed by %s); retrying until it answers",
                exc,
                where,
                extra=ids(event="store_outage", noticed_by=where),
            )
        else:
            log.debug("%s: store still unavailable (%s)", where, exc)

    def ok(self) -> None:
        if self.down_since is not None:
            seconds = trio.current_time() - self.down_since
            self.down_since = None
            log.info(
                "store reachable again after %.1f s",
                seconds,
                extra=ids(event="store_recovered", outage_seconds=round(seconds, 3)),
            )


def state_change(message: str, *args: object, **extra: Any) -> None:
    """A DEBUG line for a job state change (callers check `states_enabled()` first when the
    arguments cost something to build)."""
    states.debug(message, *args, extra=ids(**extra))


def states_enabled() -> bool:
    return states.isEnabledFor(logging.DEBUG)


def ids(**values: Any) -> dict[str, Any]:
    """`extra` for a log call: the ids that are known (None left out)."""
    return {k: v for k, v in values.items() if v is not None}
