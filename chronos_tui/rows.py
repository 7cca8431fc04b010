"""Table columns and row builders for every list the dashboard shows: resource -> cells.

Pure functions of the data, `now` and the display timezone, shared by the list screens, the
detail screens and the overview.
"""

from __future__ import annotations

from datetime import datetime, tzinfo

from rich.text import Text

from chronos_tui import format as fmt
from chronos_tui.widgets import Cell, Column, Row
from chronos_worker.models import (
    PIPELINE_STATES,
    TERMINAL_STATES,
    Execution,
    HandlerStats,
    Job,
    JobStatus,
    Schedule,
    Stats,
    Workers,
)

TOTAL_KEY = "*total*"
NO_HANDLER = "(no handler)"
QUEUE_STATES = (*PIPELINE_STATES, *TERMINAL_STATES)
SHORT = {
    JobStatus.PENDING: "pend",
    JobStatus.ADMITTING: "admit",
    JobStatus.QUEUED: "queue",
    JobStatus.READY: "ready",
    JobStatus.RUNNING: "run",
    JobStatus.RETRYING: "retry",
    JobStatus.COMPLETED: "done",
    JobStatus.FAILED: "fail",
    JobStatus.CANCELLED: "canc",
}
# Fixed, right-aligned count columns (the labels are at most 5 wide, so a space always separates
# them). The table drops its cell padding below 120 columns, and below 90 it leaves out the two
# least telling states — `admitting` lasts one transaction, `cancelled` is the operator's own
# doing — so that 80 columns hold the handler, seven states, `oldest` and the two worker columns.
QUEUE_NARROW = 90
QUEUE_COLUMNS = [
    Column("handler", "handler"),
    *(
        Column(
            s.value,
            SHORT[s],
            width=6,
            justify="right",
            min_width=QUEUE_NARROW if s in (JobStatus.ADMITTING, JobStatus.CANCELLED) else 0,
        )
        for s in QUEUE_STATES
    ),
    Column("oldest", "oldest", width=10, justify="right"),
    Column("workers", "wkrs", width=5, justify="right"),
    Column("credits", "free", width=5, justify="right"),
]
WORKER_COLUMNS = ("workers", "credits")
QUEUE_COMPACT_BELOW = 120
# Activity, the queue panel's order: work due or in flight now, plus failures in the window.
ACTIVE_STATES = (
    JobStatus.ADMITTING,
    JobStatus.QUEUED,
    JobStatus.READY,
    JobStatus.RUNNING,
    JobStatus.RETRYING,
    JobStatus.FAILED,
)
EXECUTION_COLUMNS = [
    Column("started", "started", width=8),
    Column("job", "job", width=8),
    Column("attempt", "#", width=2, justify="right"),
    Column("status", "status", width=9),
    Column("duration", "duration", width=8, justify="right"),
    Column("trigger", "trigger", width=12, min_width=96),
    Column("worker", "worker", width=18, min_width=120),
    Column("outcome", "outcome"),
]
JOB_COLUMNS = [
    Column("name", "name"),
    Column("handler", "handler"),
    Column("status", "status", width=9),
    Column("attempts", "tries", width=5, justify="right"),
    Column("run_at", "run at", width=10),
    Column("finished", "finished", width=8, min_width=96),
    Column("id", "id", width=8, min_width=110),
]
SCHEDULE_COLUMNS = [
    Column("name", "name"),
    Column("status", "status", width=8),
    Column("handler", "handler"),
    Column("cadence", "cron / interval"),
    Column("next", "next run", width=9),
    Column("runs", "runs", justify="right", min_width=90),
    Column("timezone", "timezone", min_width=100),
]


def clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def activity_rank(h: HandlerStats) -> tuple[int, int, bool, str]:
    """Sort key, busiest first: jobs admitting, queued, ready, running or retrying plus those
    failed in the window; then completed in the window; then by name (no handler last)."""
    busy = sum(h.count(s) for s in ACTIVE_STATES)
    return (-busy, -h.count(JobStatus.COMPLETED), h.handler is None, h.handler or "")


def queue_rows(stats: Stats, workers: Workers | None = None) -> list[Row]:
    """One row per handler, busiest first, plus an `all` row when there are several.

    With `workers` (the server has `GET /v1/workers`), a handler that has worker channels but no
    jobs gets a row too, so a connected worker is seen before its first job.
    """
    handlers = list(stats.handlers)
    if workers is not None:
        known = {h.handler for h in handlers}
        handlers += [
            HandlerStats(handler=w.handler, counts={})
            for w in workers.handlers
            if w.handler not in known
        ]
    handlers.sort(key=activity_rank)
    rows: list[Row] = [
        (h.handler or NO_HANDLER, _queue_cells(h, _worker_cells(h.handler, workers)))
        for h in handlers
    ]
    if len(handlers) > 1:
        ages = [h.oldest_ready_age_ms for h in handlers if h.oldest_ready_age_ms is not None]
        total = HandlerStats(
            handler=None, counts=stats.totals, oldest_ready_age_ms=max(ages) if ages else None
        )
        cells = _queue_cells(total, _all_worker_cells(workers))
        cells[0] = Text("all", style="italic")
        rows.append((TOTAL_KEY, cells))
    return rows


def _queue_cells(h: HandlerStats, worker_cells: list[Cell]) -> list[Cell]:
    name = Text(h.handler or NO_HANDLER, style="bold")
    if h.limits is not None:  # the handler's limits, loud while they hold jobs in `queued`
        name.append(" ")
        name.append_text(fmt.limits(h.limits.max_running, h.limits.max_per_second, h.limited))
    counts = [fmt.count(h.count(s), s.value) for s in QUEUE_STATES]
    return [name, *counts, fmt.oldest_ready(h.oldest_ready_age_ms), *worker_cells]


def _worker_cells(handler: str | None, workers: Workers | None) -> list[Cell]:
    found = None if workers is None or handler is None else workers.for_handler(handler)
    if found is None:
        return [fmt.count(0, ""), Text("—", style="grey35", justify="right")]
    return [fmt.workers(found.channels), fmt.credits(found.credits)]


def _all_worker_cells(workers: Workers | None) -> list[Cell]:
    if workers is None or not workers.channels:
        return [fmt.count(0, ""), Text("—", style="grey35", justify="right")]
    return [fmt.workers(len(workers.channels)), fmt.credits(workers.credits)]


def execution_row(e: Execution, now: datetime, tz: tzinfo | None, outcome_width: int) -> Row:
    cells: list[Cell] = [
        fmt.clock(e.started_at, tz, now),
        fmt.short_id(e.job_id),
        Text(str(e.attempt), justify="right"),
        fmt.status(e.status.value),
        Text(fmt.duration(e.duration_ms), justify="right"),
        e.trigger,
        clip(e.worker or "—", 18),
        fmt.outcome(e, outcome_width),
    ]
    return (e.id, cells)


def job_row(job: Job, now: datetime, tz: tzinfo | None) -> Row:
    cells: list[Cell] = [
        clip(job.name, 24),
        clip(job.handler or "(push)", 16),
        fmt.status(job.status.value),
        Text(f"{job.attempt_count}/{job.max_retries + 1}", justify="right"),
        fmt.clock(job.run_at, tz, now) if job.finished else fmt.relative(job.run_at, now),
        fmt.clock(job.finished_at, tz, now),
        fmt.short_id(job.id),
    ]
    return (job.id, cells)


def schedule_row(s: Schedule, now: datetime) -> Row:
    runs = f"{s.run_count}" if s.runs is None else f"{s.run_count}/{s.runs}"
    cells: list[Cell] = [
        clip(s.name, 22),
        fmt.status(fmt.schedule_state(s)),
        clip(s.handler or "(push)", 16),
        clip(fmt.cadence(s), 16),
        fmt.relative(s.next_run_at, now),
        Text(runs, justify="right"),
        s.timezone,
    ]
    return (s.id, cells)
