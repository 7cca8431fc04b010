"""Table columns and row builders for every list the dashboard shows: resource -> cells.

Pure functions of the data, `now` and the display timezone, shared by the list screens, the
detail screens and the overview.
"""

from __future__ import annotations

from datetime import datetime, tzinfo

from rich.text import Text

from chronos_tui import format as fmt
from chronos_tui.models import (
    PIPELINE_STATES,
    TERMINAL_STATES,
    Execution,
    HandlerStats,
    Job,
    JobStatus,
    Schedule,
    Stats,
)
from chronos_tui.widgets import Cell, Column, Row

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
# Fixed, right-aligned count columns so all nine states fit 80 columns (the table drops its cell
# padding below 100 columns; the labels are at most 5 wide, so a space always separates them).
QUEUE_COLUMNS = [
    Column("handler", "handler"),
    *(Column(s.value, SHORT[s], width=6, justify="right") for s in QUEUE_STATES),
    Column("oldest", "oldest", width=10, justify="right"),
]
QUEUE_COMPACT_BELOW = 100
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


def queue_rows(stats: Stats) -> list[Row]:
    """One row per handler, plus an `all handlers` row when there are several."""
    rows: list[Row] = [(h.handler or NO_HANDLER, _queue_cells(h)) for h in stats.handlers]
    if len(stats.handlers) > 1:
        cells = _queue_cells(HandlerStats(handler=None, counts=stats.totals))
        ages = [h.oldest_ready_age_ms for h in stats.handlers if h.oldest_ready_age_ms is not None]
        cells[0] = Text("all", style="italic")
        cells[-1] = fmt.oldest_ready(max(ages) if ages else None)
        rows.append((TOTAL_KEY, cells))
    return rows


def _queue_cells(h: HandlerStats) -> list[Cell]:
    name = Text(h.handler or NO_HANDLER, style="bold")
    counts = [fmt.count(h.count(s), s.value) for s in QUEUE_STATES]
    return [name, *counts, fmt.oldest_ready(h.oldest_ready_age_ms)]


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
        fmt.status(s.status.value),
        clip(s.handler or "(push)", 16),
        clip(fmt.cadence(s), 16),
        fmt.relative(s.next_run_at, now),
        Text(runs, justify="right"),
        s.timezone,
    ]
    return (s.id, cells)
