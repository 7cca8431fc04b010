"""Detail screens for one schedule, job or execution, and the operator actions on them.

The actions are module functions taking the screen they run from, so the list screens offer the
same keys on their highlighted row: archive (asks first) and run now for a schedule; cancel (asks
first) and re-run for a job. Each detail re-fetches every tick, so a job's executions appear as
they start and finish.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from rich.console import RenderableType
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Footer, Header, Static

from chronos_tui import format as fmt
from chronos_tui.api import rerun_body
from chronos_tui.base import Env, LiveScreen
from chronos_tui.rows import EXECUTION_COLUMNS, JOB_COLUMNS, execution_row, job_row
from chronos_tui.widgets import LiveTable
from chronos_worker.models import CANCELLABLE_STATES, Execution, Job, Schedule, ScheduleStatus

Field = tuple[str, RenderableType | str | None]


def fields(pairs: Sequence[Field]) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    for name, value in pairs:
        if value is None or isinstance(value, str):
            value = Text("—" if value is None else value)  # plain text, never markup
        grid.add_row(name, value)
    return grid


def json_block(value: object) -> RenderableType:
    if value is None:
        return Text("—")
    return Syntax(fmt.pretty_json(value), "json", theme="ansi_dark", background_color="default")


def archive_schedule(screen: LiveScreen, schedule: Schedule) -> None:
    async def call() -> str:
        done = await screen.api.archive_schedule(schedule.id)
        return f"Archived schedule “{done.name}”"

    question = f"Archive schedule “{schedule.name}”?\nIts jobs that have not started are cancelled."
    screen.act(question, call)


def pause_or_resume_schedule(screen: LiveScreen, schedule: Schedule) -> None:
    """Pause an active schedule, resume a paused one (extension; resume follows its catch-up
    policy for the slots missed meanwhile)."""
    if schedule.status is not ScheduleStatus.ACTIVE:
        screen.notify(
            f"A {schedule.status} schedule cannot be paused.", severity="warning", markup=False
        )
        return

    async def call() -> str:
        if schedule.paused_at is not None:
            done = await screen.api.resume_schedule(schedule.id)
            return f"Resumed schedule “{done.name}”"
        done = await screen.api.pause_schedule(schedule.id)
        return f"Paused schedule “{done.name}”: it spawns nothing until resumed"

    screen.act(None, call)


def run_schedule(screen: LiveScreen, schedule: Schedule) -> None:
    async def call() -> str:
        job = await screen.api.run_schedule(schedule.id)
        return f"Spawned job {fmt.short_id(job.id)} from “{schedule.name}”"

    screen.act(None, call)


def cancel_job(screen: LiveScreen, job: Job) -> None:
    if job.status not in CANCELLABLE_STATES:
        screen.notify(f"A {job.status} job cannot be cancelled.", severity="warning", markup=False)
        return

    async def call() -> str:
        done = await screen.api.cancel_job(job.id)
        return f"Cancelled job “{done.name}” ({fmt.short_id(done.id)})"

    screen.act(f"Cancel job “{job.name}” ({fmt.short_id(job.id)}, {job.status})?", call)


def rerun_job(screen: LiveScreen, job: Job) -> None:
    if not job.finished:
        screen.notify(
            f"Only finished jobs can be re-run; this one is {job.status}.",
            severity="warning",
            markup=False,
        )
        return

    async def call() -> str:
        new = await screen.api.create_job(rerun_body(job))
        return f"Re-run: new job {fmt.short_id(new.id)} “{new.name}”"

    screen.act(None, call)


class DetailScreen(LiveScreen):
    """Fields on top, a related list below; Esc goes back."""

    TITLE_TEXT = ""
    TABLE_TITLE = ""
    COLUMNS = EXECUTION_COLUMNS

    def __init__(self, env: Env, item_id: str) -> None:
        super().__init__(env)
        self.item_id = item_id

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="fields-box") as box:
            box.border_title = self.TITLE_TEXT
            yield Static("loading…", id="fields")
        table = LiveTable(self.COLUMNS, id="related")
        table.border_title = self.TABLE_TITLE
        yield table
        yield from self.status_line()
        yield Footer(compact=True, show_command_palette=False)

    def show_fields(self, title: str, pairs: Sequence[Field]) -> None:
        self.query_one("#fields-box").border_title = title
        self.query_one("#fields", Static).update(fields(pairs))

    def describe(self) -> str:
        return "Esc back"


class ScheduleDetail(DetailScreen):
    BINDINGS = [
        Binding("a", "archive", "Archive"),
        Binding("p", "pause", "Pause/resume"),
        Binding("r", "run", "Run now"),
    ]
    TITLE_TEXT = "Schedule"
    TABLE_TITLE = "Its newest jobs"
    COLUMNS = JOB_COLUMNS
    schedule: Schedule | None = None

    async def load(self) -> None:
        schedule, jobs = await asyncio.gather(
            self.api.get_schedule(self.item_id),
            self.api.list_jobs(schedule_id=self.item_id, size=50),
        )
        self.schedule = schedule
        self.env.schedule_names.remember([schedule])
        now, tz = self.env.now(), self.env.tz
        s = schedule
        self.show_fields(
            f"Schedule “{s.name}”",
            [
                ("id", s.id),
                ("status", fmt.status(fmt.schedule_state(s))),
                ("paused", fmt.clock(s.paused_at, tz)),
                ("description", s.description),
                ("handler", s.handler),
                ("cadence", fmt.cadence(s)),
                ("timezone", s.timezone),
                (
                    "next run",
                    f"{fmt.clock(s.next_run_at, tz)}  ({fmt.relative(s.next_run_at, now)})",
                ),
                ("last run", fmt.clock(s.last_run_at, tz)),
                ("runs", f"{s.run_count} of {s.runs or 'unlimited'}"),
                ("stop at", fmt.clock(s.stop_at, tz)),
                ("timeout / retries", f"{s.timeout} s / {s.max_retries}"),
                ("catch-up / overlap", fmt.policies(s)),
                ("delivery", fmt.compact_json(s.delivery, 200)),
                ("payload", json_block(s.payload)),
                ("created", fmt.clock(s.created_at, tz)),
                ("archived", fmt.clock(s.archived_at, tz)),
            ],
        )
        self.query_one("#related", LiveTable).sync([job_row(j, now, tz) for j in jobs.items])

    def action_archive(self) -> None:
        if self.schedule is not None:
            archive_schedule(self, self.schedule)

    def action_run(self) -> None:
        if self.schedule is not None:
            run_schedule(self, self.schedule)

    def action_pause(self) -> None:
        if self.schedule is not None:
            pause_or_resume_schedule(self, self.schedule)

    @on(DataTable.RowSelected, "#related")
    def _open_job(self, event: DataTable.RowSelected) -> None:
        self.app.push_screen(JobDetail(self.env, str(event.row_key.value)))


class JobDetail(DetailScreen):
    BINDINGS = [
        Binding("c", "cancel", "Cancel job"),
        Binding("r", "rerun", "Re-run"),
    ]
    TITLE_TEXT = "Job"
    TABLE_TITLE = "Executions"
    job: Job | None = None

    async def load(self) -> None:
        job, executions = await asyncio.gather(
            self.api.get_job(self.item_id),
            self.api.list_executions(job_id=self.item_id, size=100),
        )
        self.job = job
        schedule = await self.schedule_text(job)
        now, tz = self.env.now(), self.env.tz
        self.show_fields(
            f"Job “{job.name}”",
            [
                ("id", job.id),
                ("status", fmt.status(job.status.value)),
                ("handler", job.handler),
                ("schedule", schedule),
                ("description", job.description),
                (
                    "attempts",
                    f"{job.attempt_count} of {job.max_retries + 1} (timeout {job.timeout} s)",
                ),
                ("scheduled for", fmt.clock(job.scheduled_for, tz)),
                ("run at", f"{fmt.clock(job.run_at, tz)}  ({fmt.relative(job.run_at, now)})"),
                ("finished", fmt.clock(job.finished_at, tz)),
                ("idempotency key", job.idempotency_key),
                ("delivery", fmt.compact_json(job.delivery, 200)),
                ("payload", json_block(job.payload)),
            ],
        )
        table = self.query_one("#related", LiveTable)
        width = table.free_width()
        table.sync([execution_row(e, now, tz, width) for e in executions.items])

    async def schedule_text(self, job: Job) -> str:
        """The schedule's name and short id (fetched once per schedule), or `one-off`."""
        if job.schedule_id is None:
            return "one-off"
        name = await self.env.schedule_names.name(self.api, job.schedule_id)
        if name is None:
            return f"{job.schedule_id} (not found)"
        return f"{name} ({fmt.short_id(job.schedule_id)})"

    def action_cancel(self) -> None:
        if self.job is not None:
            cancel_job(self, self.job)

    def action_rerun(self) -> None:
        if self.job is not None:
            rerun_job(self, self.job)

    @on(DataTable.RowSelected, "#related")
    def _open_execution(self, event: DataTable.RowSelected) -> None:
        self.app.push_screen(ExecutionDetail(self.env, str(event.row_key.value)))


class ExecutionDetail(DetailScreen):
    BINDINGS = [Binding("j", "open_job", "Open job")]
    TITLE_TEXT = "Execution"
    TABLE_TITLE = "Other attempts of the job"
    execution: Execution | None = None

    async def load(self) -> None:
        e = await self.api.get_execution(self.item_id)
        siblings = await self.api.list_executions(job_id=e.job_id, size=100)
        self.execution = e
        now, tz = self.env.now(), self.env.tz
        error = e.error
        self.show_fields(
            f"Execution {fmt.short_id(e.id)} · attempt {e.attempt}",
            [
                ("id", e.id),
                ("job", e.job_id),
                ("status", fmt.status(e.status.value)),
                ("trigger", e.trigger),
                ("started", fmt.clock(e.started_at, tz)),
                ("finished", fmt.clock(e.finished_at, tz)),
                ("duration", fmt.duration(e.duration_ms)),
                ("lease expires", fmt.clock(e.lease_expires_at, tz)),
                ("worker", e.worker),
                ("http status", None if e.http_status is None else str(e.http_status)),
                ("result", json_block(e.result) if e.result is not None else None),
                ("error", None if error is None else f"{error.name or 'Error'}: {error.message}"),
                ("stack", None if error is None or not error.stack else Text(error.stack)),
                ("response body", e.response_body),
            ],
        )
        table = self.query_one("#related", LiveTable)
        width = table.free_width()
        table.sync([execution_row(x, now, tz, width) for x in siblings.items])

    def action_open_job(self) -> None:
        if self.execution is not None:
            self.app.push_screen(JobDetail(self.env, self.execution.job_id))

    @on(DataTable.RowSelected, "#related")
    def _open_execution(self, event: DataTable.RowSelected) -> None:
        key = str(event.row_key.value)
        if key != self.item_id:
            self.app.push_screen(ExecutionDetail(self.env, key))
