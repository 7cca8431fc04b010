"""The Schedules, Jobs and Executions screens: filtered lists, newest first, with row actions.

Each keeps the items of its last fetch by id, so an action key works on the highlighted row
without another request, and Enter opens that row's detail.
"""

from __future__ import annotations

import re
from typing import ClassVar, Generic, TypeVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Header

from chronos_tui.base import ListScreen
from chronos_tui.details import (
    ExecutionDetail,
    JobDetail,
    ScheduleDetail,
    archive_schedule,
    cancel_job,
    rerun_job,
    run_schedule,
)
from chronos_tui.format import Filter
from chronos_tui.models import Execution, ExecutionStatus, Job, JobStatus, Schedule, ScheduleStatus
from chronos_tui.rows import (
    EXECUTION_COLUMNS,
    JOB_COLUMNS,
    SCHEDULE_COLUMNS,
    execution_row,
    job_row,
    schedule_row,
)
from chronos_tui.widgets import Column, LiveTable, Row

LIST_SIZE = 100
UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
Item = TypeVar("Item", Schedule, Job, Execution)


class ResourceList(ListScreen, Generic[Item]):
    """A title, the filter bar and one `LiveTable` of `Item`s."""

    NAME: ClassVar[str] = ""
    COLUMNS: ClassVar[list[Column]] = []

    items: dict[str, Item]
    total = 0

    def compose(self) -> ComposeResult:
        self.items = {}
        yield Header()
        yield from self.filter_bar()
        table = LiveTable(self.COLUMNS, id="list")
        table.border_title = self.NAME
        yield table
        yield from self.status_line()
        yield Footer(compact=True, show_command_palette=False)

    def show(self, items: tuple[Item, ...], total: int, rows: list[Row]) -> None:
        self.items = {item.id: item for item in items}
        self.total = total
        table = self.query_one("#list", LiveTable)
        table.border_title = f"{self.NAME} · {self.filter.describe(self.REST_LABEL)}"
        table.border_subtitle = f"{len(items)} of {total}"
        table.sync(rows)

    def selected(self) -> Item | None:
        key = self.query_one("#list", LiveTable).selected_key
        return None if key is None else self.items.get(key)

    def describe(self) -> str:
        return "/ filter · Enter detail"


class SchedulesScreen(ResourceList[Schedule]):
    NAME = "Schedules"
    COLUMNS = SCHEDULE_COLUMNS
    STATUSES = tuple(s.value for s in ScheduleStatus)
    BINDINGS = [Binding("a", "archive", "Archive"), Binding("r", "run", "Run now")]

    async def load(self) -> None:
        wanted = self.filter.statuses
        one = wanted[0] if len(wanted) == 1 else None
        page = await self.api.list_schedules(
            status=one, handler=self.filter.handler, size=LIST_SIZE
        )
        items = tuple(s for s in page.items if not wanted or s.status in wanted)
        now = self.env.now()
        self.show(items, page.total, [schedule_row(s, now) for s in items])

    def action_archive(self) -> None:
        if (schedule := self.selected()) is not None:
            archive_schedule(self, schedule)

    def action_run(self) -> None:
        if (schedule := self.selected()) is not None:
            run_schedule(self, schedule)

    @on(DataTable.RowSelected, "#list")
    def _open(self, event: DataTable.RowSelected) -> None:
        self.app.push_screen(ScheduleDetail(self.env, str(event.row_key.value)))


class JobsScreen(ResourceList[Job]):
    NAME = "Jobs"
    COLUMNS = JOB_COLUMNS
    STATUSES = tuple(s.value for s in JobStatus)
    BINDINGS = [Binding("c", "cancel", "Cancel job"), Binding("r", "rerun", "Re-run")]

    async def load(self) -> None:
        page = await self.api.list_jobs(
            statuses=self.filter.statuses, handler=self.filter.handler, size=LIST_SIZE
        )
        now, tz = self.env.now(), self.env.tz
        self.show(page.items, page.total, [job_row(j, now, tz) for j in page.items])

    def action_cancel(self) -> None:
        if (job := self.selected()) is not None:
            cancel_job(self, job)

    def action_rerun(self) -> None:
        if (job := self.selected()) is not None:
            rerun_job(self, job)

    @on(DataTable.RowSelected, "#list")
    def _open(self, event: DataTable.RowSelected) -> None:
        self.app.push_screen(JobDetail(self.env, str(event.row_key.value)))


class ExecutionsScreen(ResourceList[Execution]):
    """Executions have no handler: a word that is not a status is taken as a job id."""

    NAME = "Executions"
    COLUMNS = EXECUTION_COLUMNS
    STATUSES = tuple(s.value for s in ExecutionStatus)
    REST_LABEL = "job"

    def check_filter(self, wanted: Filter) -> Filter:
        if wanted.handler is not None and not UUID.match(wanted.handler):
            self.notify(
                f"“{wanted.handler}” is neither an execution status nor a job id",
                severity="warning",
                markup=False,
            )
            return Filter(wanted.statuses)
        return wanted

    async def load(self) -> None:
        page = await self.api.list_executions(
            job_id=self.filter.handler, statuses=self.filter.statuses, size=LIST_SIZE
        )
        now, tz = self.env.now(), self.env.tz
        width = self.query_one("#list", LiveTable).free_width()
        rows = [execution_row(e, now, tz, width) for e in page.items]
        self.show(page.items, page.total, rows)

    @on(DataTable.RowSelected, "#list")
    def _open(self, event: DataTable.RowSelected) -> None:
        self.app.push_screen(ExecutionDetail(self.env, str(event.row_key.value)))
