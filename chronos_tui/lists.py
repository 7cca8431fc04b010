"""The Schedules, Jobs and Executions screens: filtered lists, newest first, with row actions.

Each keeps the items of its last fetch by id, so an action key works on the highlighted row
without another request, and Enter opens that row's detail.

Paging: a list starts with the newest page (`LIST_SIZE` rows); when the highlight reaches the last
loaded row (arrow keys, PgDn, End, a click) and the server has more, the next page is fetched and
appended. Every refresh fetches all the pages loaded, so each row stays live: each page past the
first by the cursor the page before it gave in the same refresh (keyset paging: the thousandth
page costs the server what the first does; one request after the other), or, against a server
without cursors, by page number (concurrently). Home (back to the first row) and a new filter
drop back to the first page. A total the server only estimated shows as `~N`.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable
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
    pause_or_resume_schedule,
    rerun_job,
    run_schedule,
)
from chronos_tui.format import Filter
from chronos_tui.rows import (
    EXECUTION_COLUMNS,
    JOB_COLUMNS,
    SCHEDULE_COLUMNS,
    execution_row,
    job_row,
    schedule_row,
)
from chronos_tui.widgets import Column, LiveTable, Row
from chronos_worker.models import (
    Execution,
    ExecutionStatus,
    Job,
    JobStatus,
    Page,
    Schedule,
    ScheduleStatus,
)

LIST_SIZE = 100
UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
Item = TypeVar("Item", Schedule, Job, Execution)


class ResourceList(ListScreen, Generic[Item]):
    """A title, the filter bar and one `LiveTable` of `Item`s, loaded a page at a time."""

    NAME: ClassVar[str] = ""
    COLUMNS: ClassVar[list[Column]] = []
    items: dict[str, Item]
    total = 0
    pages = 1  # pages loaded and refreshed
    more = False  # the server has rows past the pages loaded

    def compose(self) -> ComposeResult:
        self.items = {}
        yield Header()
        yield from self.filter_bar()
        table = LiveTable(self.COLUMNS, id="list")
        table.border_title = self.NAME
        yield table
        yield from self.status_line()
        yield Footer(compact=True, show_command_palette=False)

    async def fetch(self, page: int, cursor: str | None) -> Page[Item]:
        """Page `page` (from 1) of this list under the current filter, by `cursor` if given."""
        raise NotImplementedError

    def rows(self, items: Iterable[Item]) -> list[Row]:
        raise NotImplementedError

    def keep(self, item: Item) -> bool:
        """Whether a fetched item matches the filter (for filters the server cannot apply)."""
        return True

    async def load(self) -> None:
        pages = self.pages
        found = [await self.fetch(1, None)]
        if found[0].next_cursor is not None:
            # Keyset paging: each page by the cursor of the page before it as fetched now, so
            # rows that moved down a page since the last refresh are neither lost nor doubled.
            while len(found) < pages and found[-1].next_cursor is not None:
                found.append(await self.fetch(len(found) + 1, found[-1].next_cursor))
        elif pages > 1:  # no cursors (an older server): the other pages by number, at once
            found += await asyncio.gather(*(self.fetch(n, None) for n in range(2, pages + 1)))
        # Rows that moved from one page to the next between two requests come twice: keep one.
        items = {i.id: i for p in found for i in p.items if self.keep(i)}
        last = found[-1]
        self.more = last.next_cursor is not None or len(found) * LIST_SIZE < last.total
        self.show(
            tuple(items.values()), last.total, self.rows(items.values()), last.total_estimated
        )

    def show(
        self, items: tuple[Item, ...], total: int, rows: list[Row], estimated: bool = False
    ) -> None:
        self.items = {item.id: item for item in items}
        self.total = total
        table = self.query_one("#list", LiveTable)
        table.border_title = f"{self.NAME} · {self.filter.describe(self.REST_LABEL)}"
        table.border_subtitle = f"{len(items)} of {'~' if estimated else ''}{total}"
        table.sync(rows)

    @on(DataTable.RowHighlighted, "#list")
    def _next_page(self, event: DataTable.RowHighlighted) -> None:
        if self.more and event.cursor_row >= event.data_table.row_count - 1:
            self.more = False  # one page at a time, however often the last row is highlighted
            self.pages += 1
            self.reload()

    @on(LiveTable.WentHome, "#list")
    def _first_page(self) -> None:
        if self.pages > 1:  # back at the top: stop refreshing the pages below
            self.pages = 1
            self.reload()

    def check_filter(self, wanted: Filter) -> Filter:
        self.pages = 1
        return wanted

    def selected(self) -> Item | None:
        key = self.query_one("#list", LiveTable).selected_key
        return None if key is None else self.items.get(key)

    def describe(self) -> str:
        return "/ filter · Enter detail"


class SchedulesScreen(ResourceList[Schedule]):
    NAME = "Schedules"
    COLUMNS = SCHEDULE_COLUMNS
    STATUSES = tuple(s.value for s in ScheduleStatus)
    BINDINGS = [
        Binding("a", "archive", "Archive"),
        Binding("p", "pause", "Pause/resume"),
        Binding("r", "run", "Run now"),
    ]

    async def fetch(self, page: int, cursor: str | None) -> Page[Schedule]:
        wanted = self.filter.statuses
        one = wanted[0] if len(wanted) == 1 else None
        found = await self.api.list_schedules(
            status=one, handler=self.filter.handler, size=LIST_SIZE, page=page, cursor=cursor
        )
        self.env.schedule_names.remember(found.items)
        return found

    def keep(self, item: Schedule) -> bool:
        return not self.filter.statuses or item.status in self.filter.statuses

    def rows(self, items: Iterable[Schedule]) -> list[Row]:
        now = self.env.now()
        return [schedule_row(s, now) for s in items]

    def action_archive(self) -> None:
        if (schedule := self.selected()) is not None:
            archive_schedule(self, schedule)

    def action_run(self) -> None:
        if (schedule := self.selected()) is not None:
            run_schedule(self, schedule)

    def action_pause(self) -> None:
        if (schedule := self.selected()) is not None:
            pause_or_resume_schedule(self, schedule)

    @on(DataTable.RowSelected, "#list")
    def _open(self, event: DataTable.RowSelected) -> None:
        self.app.push_screen(ScheduleDetail(self.env, str(event.row_key.value)))


class JobsScreen(ResourceList[Job]):
    NAME = "Jobs"
    COLUMNS = JOB_COLUMNS
    STATUSES = tuple(s.value for s in JobStatus)
    BINDINGS = [Binding("c", "cancel", "Cancel job"), Binding("r", "rerun", "Re-run")]

    async def fetch(self, page: int, cursor: str | None) -> Page[Job]:
        return await self.api.list_jobs(
            statuses=self.filter.statuses,
            handler=self.filter.handler,
            size=LIST_SIZE,
            page=page,
            cursor=cursor,
        )

    def rows(self, items: Iterable[Job]) -> list[Row]:
        now, tz = self.env.now(), self.env.tz
        return [job_row(j, now, tz) for j in items]

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
        wanted = super().check_filter(wanted)
        if wanted.handler is not None and not UUID.match(wanted.handler):
            self.notify(
                f"“{wanted.handler}” is neither an execution status nor a job id",
                severity="warning",
                markup=False,
            )
            return Filter(wanted.statuses)
        return wanted

    async def fetch(self, page: int, cursor: str | None) -> Page[Execution]:
        return await self.api.list_executions(
            job_id=self.filter.handler,
            statuses=self.filter.statuses,
            size=LIST_SIZE,
            page=page,
            cursor=cursor,
        )

    def rows(self, items: Iterable[Execution]) -> list[Row]:
        now, tz = self.env.now(), self.env.tz
        width = self.query_one("#list", LiveTable).free_width()
        return [execution_row(e, now, tz, width) for e in items]

    @on(DataTable.RowSelected, "#list")
    def _open(self, event: DataTable.RowSelected) -> None:
        self.app.push_screen(ExecutionDetail(self.env, str(event.row_key.value)))
