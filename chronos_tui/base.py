"""What every dashboard screen shares: the environment, the refresh loop, the status line,
the `/` filter, and running an operator action with its notification.

Refresh: a `set_interval` tick starts one `@work(exclusive=True)` fetch unless one is still in
flight (a slow server is never hit by a pile of requests); screens not on view do not fetch.
A failed fetch only changes the status line: the tables keep their last rows, so an unreachable
server never blanks the dashboard, and the next tick tries again — except after HTTP 429, when
ticks wait out `Retry-After` (the rate limit is per API key, shared with any worker on that key).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import ClassVar

from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Static

from chronos_tui.api import APIError, DashboardAPI, RequestFailed
from chronos_tui.format import Filter, parse_filter
from chronos_tui.names import ScheduleNames
from chronos_tui.widgets import ConfirmScreen, FilterBar


@dataclass(frozen=True)
class Env:
    """What screens are built with: the API, the clock and timezone used for display, the pace,
    and what the screens share (schedule names)."""

    api: DashboardAPI
    now: Callable[[], datetime]
    tz: tzinfo | None
    refresh_seconds: float
    schedule_names: ScheduleNames = field(default_factory=ScheduleNames)


class LiveScreen(Screen[None]):
    """A screen that re-fetches its data every `refresh_seconds` while on view."""

    BINDINGS = [Binding("escape", "back", "Back", show=False)]
    AUTO_FOCUS = "LiveTable"

    def __init__(self, env: Env) -> None:
        super().__init__()
        self.env = env
        self.loads = 0  # completed fetches; tests wait on it
        self._in_flight = 0  # a count, not a flag: an exclusive restart overlaps the old fetch
        self._quiet_until = 0.0  # monotonic time before which ticks do not fetch (HTTP 429)

    @property
    def api(self) -> DashboardAPI:
        return self.env.api

    def status_line(self) -> ComposeResult:
        yield Static("connecting…", id="status")

    def on_mount(self) -> None:
        self.set_interval(self.env.refresh_seconds, self.tick)
        self.reload()

    def on_screen_resume(self) -> None:
        self.tick()

    def tick(self) -> None:
        if self.is_current and not self._in_flight and time.monotonic() >= self._quiet_until:
            self.reload()

    @work(exclusive=True, group="reload")
    async def reload(self) -> None:
        self._in_flight += 1
        try:
            await self.load()
        except RequestFailed as exc:
            if exc.retry_after is None:
                self._show_status(f"⚠ {exc} — retrying", error=True)
            else:  # rate limited: the key's budget is shared with workers, so stay quiet a while
                self._quiet_until = time.monotonic() + exc.retry_after
                text = f"⚠ rate limited by the server: next refresh in {exc.retry_after:g} s"
                self._show_status(text, error=True)
        except APIError as exc:
            self._show_status(f"⚠ {exc} — retrying", error=True)
        else:
            self._show_status(self.describe())
        finally:
            self._in_flight -= 1
            self.loads += 1

    async def load(self) -> None:
        """Fetch and show this screen's data; raise `APIError` to report a problem."""
        raise NotImplementedError

    def describe(self) -> str:
        """The status line after a good fetch."""
        return ""

    def _show_status(self, text: str, *, error: bool = False) -> None:
        stamp = self.env.now().astimezone(self.env.tz).strftime("%H:%M:%S")
        line = self.query_one("#status", Static)
        line.set_class(error, "error")
        line.update(Text(f"{'⚠' if error else '●'} {stamp}  {text.removeprefix('⚠ ')}"))

    def action_back(self) -> None:
        if len(self.app.screen_stack) > 1:
            self.app.pop_screen()

    def act(self, confirm: str | None, call: Callable[[], Awaitable[str]]) -> None:
        """Run an operator action (after a yes/no question if `confirm`), then notify."""

        def answered(yes: bool | None) -> None:
            if yes:
                self._act(call)

        if confirm is None:
            self._act(call)
        else:
            self.app.push_screen(ConfirmScreen(confirm), answered)

    @work(group="action")
    async def _act(self, call: Callable[[], Awaitable[str]]) -> None:
        try:
            done = await call()
        except APIError as exc:
            self.notify(str(exc), title="Refused", severity="error", timeout=6, markup=False)
        else:
            self.notify(done, timeout=4, markup=False)
            self.reload()


class ListScreen(LiveScreen):
    """A `LiveScreen` with a `/` filter over status words and a handler name."""

    STATUSES: ClassVar[tuple[str, ...]] = ()
    REST_LABEL: ClassVar[str] = "handler"
    # A priority binding runs while the app reads the key, so keys typed right after `/` (a
    # paste, a fast typist, tmux send-keys) already go to the filter bar, not to the table.
    BINDINGS = [Binding("slash", "filter", "Filter", priority=True)]

    def __init__(self, env: Env, text: str = "") -> None:
        super().__init__(env)
        self.filter_text = text
        self.filter: Filter = parse_filter(text, self.STATUSES)

    def check_filter(self, wanted: Filter) -> Filter:
        """Adjust (and explain) a filter this screen cannot apply as typed."""
        return wanted

    def filter_bar(self) -> ComposeResult:
        bar = FilterBar(id="filter")
        bar.display = False
        yield bar

    def action_filter(self) -> None:
        bar = self.query_one(FilterBar)
        if self.focused is bar:
            # The priority binding also sees a `/` typed into the filter: hand it back through
            # the bar's queue, behind the keys typed before it.
            bar.post_message(events.Key("slash", "/"))
            return
        hint = f"{'/'.join(self.STATUSES)} and/or a {self.REST_LABEL}; Enter applies, Esc closes"
        bar.open(self.filter_text, hint)

    @on(FilterBar.Applied)
    def _apply_filter(self, event: FilterBar.Applied) -> None:
        self.filter_text = event.text
        self.filter = self.check_filter(parse_filter(event.text, self.STATUSES))
        self.reload()
