"""The home screen: live queues per handler, throughput sparklines, the newest executions.

One tick = three requests made concurrently: `GET /v1/stats`, the first page of
`GET /v1/executions` and `GET /v1/workers` (the worker channels per handler; against a server
without it the client stops asking and the worker columns stay hidden). The queue panel ranks
handlers busiest first (see `rows.activity_rank`) and scrolls; a handler with limits shows them
after its name (`≤2` running, `5/s` started), in yellow while they hold jobs in `queued`. Enter
on a handler opens its jobs, Enter on an execution opens its detail. Plus `GET /v1/account`
every `ACCOUNT_REFRESH_SECONDS` (the rate limit is per key, shared with workers, and a rotation
is rare and long): during a signing-secret rotation the status line says until when the
previous secret is still sent.
"""

from __future__ import annotations

import asyncio
from time import monotonic

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Footer, Header, Label, Sparkline

from chronos_tui.api import RequestFailed
from chronos_tui.base import LiveScreen
from chronos_tui.details import ExecutionDetail
from chronos_tui.format import clock, relative
from chronos_tui.lists import JobsScreen
from chronos_tui.rows import (
    EXECUTION_COLUMNS,
    NO_HANDLER,
    QUEUE_COLUMNS,
    QUEUE_COMPACT_BELOW,
    TOTAL_KEY,
    WORKER_COLUMNS,
    execution_row,
    queue_rows,
)
from chronos_tui.widgets import LiveTable
from chronos_worker.models import Account, Execution, Stats, Workers

WINDOW_MINUTES = 60
FEED_SIZE = 30
ACCOUNT_REFRESH_SECONDS = 30.0


class OverviewScreen(LiveScreen):
    _handlers = 0
    _account: Account | None = None
    _account_due = 0.0  # monotonic time of the next `GET /v1/account`

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="overview"):
            queues = LiveTable(
                QUEUE_COLUMNS,
                id="queues",
                compact_below=QUEUE_COMPACT_BELOW,
                hidden=WORKER_COLUMNS,  # until the server says it has `GET /v1/workers`
            )
            queues.border_title = f"Queues · finished: last {WINDOW_MINUTES} min"
            yield queues
            with Horizontal(id="throughput") as throughput:
                throughput.border_title = f"Throughput per minute · last {WINDOW_MINUTES} min"
                for kind in ("completed", "failed"):
                    with Vertical(classes="spark-box"):
                        yield Label(kind, id=f"{kind}-label")
                        yield Sparkline([], id=f"{kind}-spark")
            feed = LiveTable(EXECUTION_COLUMNS, id="feed", stick_to_top=True)
            feed.border_title = "Newest executions"
            yield feed
        yield from self.status_line()
        yield Footer(compact=True, show_command_palette=False)

    async def load(self) -> None:
        stats, feed, workers, _ = await asyncio.gather(
            self.api.stats(WINDOW_MINUTES),
            self.api.list_executions(size=FEED_SIZE),
            self.api.workers(),
            self._refresh_account(),
        )
        self.show_stats(stats, workers)
        self.show_feed(feed.items)

    def show_stats(self, stats: Stats, workers: Workers | None = None) -> None:
        queues = self.query_one("#queues", LiveTable)
        queues.hide(WORKER_COLUMNS if workers is None else ())
        rows = queue_rows(stats, workers)
        queues.sync(rows)
        self._handlers = len([key for key, _ in rows if key != TOTAL_KEY])
        queues.border_subtitle = "busiest first" if self._handlers > 1 else ""
        for kind in ("completed", "failed"):
            series = [float(getattr(m, kind)) for m in stats.throughput]
            self.query_one(f"#{kind}-spark", Sparkline).data = series
            last = int(series[-1]) if series else 0
            peak, total = int(max(series, default=0)), int(sum(series))
            self.query_one(f"#{kind}-label", Label).update(
                f"{kind} [b]{last}[/b]/min · peak {peak} · {total} in {stats.window_minutes} min"
            )
        self.query_one("#throughput").set_class(
            any(m.failed for m in stats.throughput), "has-failures"
        )

    def show_feed(self, executions: tuple[Execution, ...]) -> None:
        now, tz = self.env.now(), self.env.tz
        table = self.query_one("#feed", LiveTable)
        width = table.free_width()
        table.sync([execution_row(e, now, tz, width) for e in executions])

    async def _refresh_account(self) -> None:
        if monotonic() < self._account_due:
            return
        try:
            self._account = await self.api.account()
        except RequestFailed as exc:
            if exc.status != 404:  # 404: a server without the extension, nothing to show
                raise
        self._account_due = monotonic() + ACCOUNT_REFRESH_SECONDS

    def rotation_note(self) -> str | None:
        """`secret rotation: previous one sent until 11:00:00 (in 2h 00m)` while one runs."""
        state = self._account.signing_secret if self._account else None
        now = self.env.now()
        if state is None or not state.rotating_at(now):
            return None
        until = state.previous_sent_until
        when = f"{clock(until, self.env.tz, now)} ({relative(until, now)})"
        return f"secret rotation: previous one sent until {when}"

    def describe(self) -> str:
        pace = f"every {self.env.refresh_seconds:g} s"
        rotation = self.rotation_note()
        live = f"live · {rotation}" if rotation else "live"
        return f"{live} · {self.api.base_url} · {self._handlers} handler(s) · {pace}"

    @on(DataTable.RowSelected, "#queues")
    def _open_handler(self, event: DataTable.RowSelected) -> None:
        key = str(event.row_key.value)
        text = "" if key in (TOTAL_KEY, NO_HANDLER) else f"handler={key}"
        self.app.push_screen(JobsScreen(self.env, text))

    @on(DataTable.RowSelected, "#feed")
    def _open_execution(self, event: DataTable.RowSelected) -> None:
        self.app.push_screen(ExecutionDetail(self.env, str(event.row_key.value)))
